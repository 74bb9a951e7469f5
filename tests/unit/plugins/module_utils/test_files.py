"""A file the modules write: a write that fails leaves the old file as it was and no temporary file; a
file is never seen with another mode than its own; a mode changed by hand is put back."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import files


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "web.json"
    path.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):  # the text cannot be written: as a full disk, mid-write
        files.write(str(path), "new \udcff\n", 0o644)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["web.json"]


def test_a_failing_fdopen_leaves_no_fd(tmp_path, monkeypatch):
    """os.fdopen failing (MemoryError) after the temporary file was opened: the file went, its fd
    stayed open."""
    path = tmp_path / "web.json"
    before = set(os.listdir("/proc/self/fd"))

    def fail(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(os, "fdopen", fail)
    with pytest.raises(MemoryError):
        files.write(str(path), "new\n", 0o644)
    monkeypatch.undo()
    assert set(os.listdir("/proc/self/fd")) == before
    assert os.listdir(tmp_path) == []


class _Module:
    check_mode = False


def _modes_seen_while(action, path):
    """Every mode ``path`` had while ``action`` ran (polled from a thread)."""
    import threading

    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            mode = files.mode_of(str(path))
            if mode is not None:
                seen.add(mode)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        action()
    finally:
        done.set()
        watcher.join()
    return seen


def test_a_secret_file_is_never_readable_by_others(tmp_path):
    """The spec (0600: its env may hold secrets) was renamed in with the umask's 0644, then chmodded:
    readable by every user for a moment, and for good when the run was killed in between."""
    path = tmp_path / "web.json"
    old = os.umask(0o022)
    try:
        for n in range(200):
            seen = _modes_seen_while(lambda n=n: files.write(str(path), f"secret {n}\n", 0o600), path)
            assert seen <= {0o600}, seen
    finally:
        os.umask(old)
    assert path.read_text() == "secret 199\n"


def test_a_file_whose_mode_was_changed_is_put_back(tmp_path):
    path = tmp_path / "web.json"
    done = files.Files(_Module())
    assert done.sync(str(path), "x\n", 0o600)
    assert not done.sync(str(path), "x\n", 0o600) and len(done.actions) == 1
    os.chmod(path, 0o644)
    assert not files.Files.differ({str(path): ("x\n", 0o600)})  # its text: what a reader reads
    assert not done.sync(str(path), "x\n", 0o600)  # no text written
    assert files.mode_of(str(path)) == 0o600 and done.actions[-1] == f"chmod 0600 {path}"
    actions = len(done.actions)
    assert not done.sync(str(path), "x\n", 0o600) and len(done.actions) == actions


@pytest.mark.parametrize("call", ["fsync", "replace", "open"])
def test_a_ctrl_c_during_a_write_leaves_no_temporary_file_and_no_fd(tmp_path, monkeypatch, call):
    """SIGINT handled right after one of the write's calls returned (before the try that removes the
    temporary file, or before an fd was stored): PATH.tmp-PID stayed (5 of 3,000 interrupted writes),
    and fds leaked. The signal acts once the file is written."""
    import signal

    path = tmp_path / "web.json"
    real = getattr(os, call)

    def then_signal(*args, **kwargs):
        result = real(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return result

    fds = set(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, call, then_signal)
    with pytest.raises(KeyboardInterrupt):
        files.write(str(path), "new\n", 0o600)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["web.json"] and path.read_text() == "new\n"
    assert set(os.listdir("/proc/self/fd")) == fds


def _killed_writing(path):
    """A process killed outright (SIGKILL) in files.write between its temporary file and the rename, as
    a module run killed by the OOM killer or a controller's timeout: the temporary file stays."""
    import subprocess
    import sys

    code = ("import os, signal, sys\n"
            "from ansible_collections.pyforkexec.isolation.plugins.module_utils import files\n"
            "os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)\n"
            "files.write(sys.argv[1], 'secret\\n', 0o600)\n")
    killed = subprocess.Popen([sys.executable, "-c", code, str(path)],
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert killed.wait() == -9
    left = [name for name in os.listdir(path.parent) if name.startswith(f"{path.name}.tmp-")]
    assert left == [f"{path.name}.tmp-{killed.pid}"]


def test_a_write_killed_outright_leaves_nothing_once_the_next_run_writes_the_file(tmp_path):
    """The temporary file of a run killed with SIGKILL (PATH.tmp-PID) was removed only by a later run of
    the same pid: it stayed beside the file for good, with the text it was written with."""
    path = tmp_path / "web.json"
    path.write_text("old\n")
    _killed_writing(path)
    assert files.Files(_Module()).sync(str(path), "new\n", 0o600)
    assert os.listdir(tmp_path) == ["web.json"] and path.read_text() == "new\n"


def test_a_write_killed_outright_leaves_nothing_once_the_file_is_removed(tmp_path):
    """state=absent after a run killed in the first write of a new file (no file, its temporary one):
    the temporary file stayed."""
    path = tmp_path / "web.json"
    _killed_writing(path)
    files.Files(_Module()).remove(str(path))
    assert os.listdir(tmp_path) == []


def test_the_temporary_file_of_a_running_writer_is_left_alone(tmp_path):
    path = tmp_path / "web.json"
    other = tmp_path / f"web.json.tmp-{os.getppid()}"  # (a live process's: another run writing it now)
    other.write_text("theirs\n")
    files.write(str(path), "new\n", 0o600)
    files.Files(_Module()).remove(str(path))
    assert os.listdir(tmp_path) == [other.name]
