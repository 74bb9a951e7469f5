"""A pyforkexec daemon run by a test: --foreground, so that the test is its parent and can wait for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


class Daemon:
    def __init__(self, tmp_path: Path, argv: list[str], *options: str, sys_attr: dict | None = None,
                 proc: dict | None = None, top: dict | None = None):
        self.spec, self.log = tmp_path / "s.json", tmp_path / "d.log"
        self.pid_file = tmp_path / "run" / "d.pid"
        doc: dict = {"version": 1, "argv": argv}
        if sys_attr:
            doc["sys"] = sys_attr
        if proc:
            doc["proc"] = proc
        doc.update(top or {})  # other top-level fields ("wait")
        self.spec.write_text(json.dumps(doc))
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyforkexec.daemon", "--name", "t", "--spec", str(self.spec), "--pid-file",
             str(self.pid_file), "--log-file", str(self.log), "--ready-fd", str(w), "--foreground",
             "--restart-sec", "0.01", *options],
            pass_fds=(w,), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            self.ready = f.read().decode().strip()

    def wait(self) -> int:
        code = self.proc.wait(timeout=60)
        self.proc.stderr.close()
        return code

    def log_lines(self) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [line.split(": ", 1)[1] for line in lines if "pyforkexec-daemon[" in line]
