"""A manager=direct service's own files where something else is (made there by hand): a directory
where its spec, pid file or log goes is refused, naming it, before anything changes (a traceback, or
an errno halfway through a removal, before); a FIFO or a long log is read from its end for a failure's
last lines, never waited on or read whole. Real module runs and real daemons (names h138-log*)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_direct, service_start_check
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
from ansible_collections.pyforkexec.isolation.plugins.modules import service, services

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="writes /var/log/pyforkexec and starts daemons: needs root"),
]


@pytest.fixture
def name(run_module):
    made = f"h138-log{os.getpid() % 100000}"
    yield made
    log = paths.log_file(made)
    if os.path.isdir(log) and not os.path.islink(log):
        os.rmdir(log)
    gone = run_module(service, dict(name=made, state="absent"))
    assert gone.get("failed") is not True, gone


@pytest.mark.parametrize("state", ["started", "stopped", "absent"])
@pytest.mark.parametrize(("what", "path_of"), [("spec", paths.spec_path), ("pid file", paths.pid_file),
                                               ("log", paths.log_file), ("hosts file", paths.hosts_path),
                                               ("resolv.conf", paths.resolv_path)])
def test_a_directory_where_a_file_of_the_service_goes_is_refused_before_anything_changes(
        run_module, name, state, what, path_of):
    """A directory at the spec's or pid file's path was a traceback (open, unlink) in 5 of 6 runs; at
    the log's, a removal's traceback after it had stopped the service and removed its spec."""
    started = run_module(service, dict(name=name, argv=["sleep", "60"], manager="direct", start_check=0))
    assert started.get("failed") is not True, started
    path = path_of(name)
    if os.path.lexists(path):
        os.rename(path, f"{path}.h138-aside")
    os.makedirs(path)
    try:
        args = dict(name=name, state=state, manager="direct") if state != "started" else \
            dict(name=name, argv=["sleep", "61"], manager="direct", start_check=0)
        result = run_module(service, args)
        assert result.get("failed") is True
        assert result["msg"] == (f"{path}: is a directory, where service {name}'s {what} goes: not one this "
                                 "module made; remove it by hand")
        assert os.path.isdir(path)
        assert paths.daemon_pid(name) == started["main_pid"]  # still running, unchanged
        assert os.path.exists(paths.spec_path(name)) or what == "spec"
        listed = run_module(services, dict(services=[dict(args, name=name)]))
        assert listed.get("failed") is True and listed["msg"] == f"services[{name}]: {result['msg']}", listed
    finally:
        os.rmdir(path)
        if os.path.lexists(f"{path}.h138-aside"):
            os.rename(f"{path}.h138-aside", path)


@contextlib.contextmanager
def _bounded(seconds):
    """Raises TimeoutError in what blocks longer than ``seconds`` (an open of a FIFO waiting for a writer)."""
    def expired(_signo, _frame):
        raise TimeoutError(f"still blocked after {seconds}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_fifo_at_the_log_s_path_is_no_log_and_never_waited_on(name):
    """The failure's log was read with open(), which waits for a writer of a FIFO: none came (the daemon
    that would have been one was killed at the start timeout), and the module never ended."""
    os.makedirs(paths.LOG_DIR, exist_ok=True)
    os.mkfifo(paths.log_file(name))
    with _bounded(5):
        assert service_direct.log_tail(name) == []
        assert service_start_check.log_since(name, 0) == []


def test_a_long_log_is_read_from_its_end(name, child_env):
    """The last lines of a log of 1 GiB (sparse: its start is NUL bytes) without reading it whole: the
    whole was read, decoded and split (over 2 GiB of memory) for 20 lines."""
    path = paths.log_file(name)
    os.makedirs(paths.LOG_DIR, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(1 << 30)
        f.seek(0, os.SEEK_END)
        f.write(b"".join(b"line %d\n" % i for i in range(5000)))
    size = os.path.getsize(path)
    utils = "ansible_collections.pyforkexec.isolation.plugins.module_utils"
    script = ("import json, resource, sys\n"
              f"from {utils} import service_direct, service_start_check\n"
              "tail = service_direct.log_tail(sys.argv[1])\n"
              "since = service_start_check.log_since(sys.argv[1], int(sys.argv[2]))\n"
              "print(json.dumps([tail, since, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))\n")
    done = subprocess.run([sys.executable, "-c", script, name, str(size - len(b"line 4998\nline 4999\n"))],
                          capture_output=True, text=True, env=child_env, timeout=100, check=True)
    tail, since, maxrss_kib = json.loads(done.stdout)
    assert tail == [f"line {i}" for i in range(4980, 5000)]
    assert since == ["line 4998", "line 4999"]
    assert maxrss_kib < 200 * 1024, f"{maxrss_kib} KiB: the log was read whole"


def test_the_tail_of_a_long_log_starts_with_a_whole_line(name):
    """Read from its end, a log's first line read is left out when the read starts within it, kept when
    the read starts where it does."""
    path = paths.log_file(name)
    os.makedirs(paths.LOG_DIR, exist_ok=True)
    body = b"first...\n" + b"".join(b"%05d\n" % i for i in range(10921)) + b"\n"  # the bytes read: 65536
    assert len(body) == paths.LOG_TAIL_BYTES
    for head, first in ((b"x" * 1000 + b"\n", "first..."), (b"x" * 1000, "00000")):
        with open(path, "wb") as f:
            f.write(head + body)
        lines = paths.log_lines(name, 0, 100000)
        assert lines[0] == first, (head[-1:], lines[:2])
        assert lines[-1] == "" and lines[-2] == "10920"
