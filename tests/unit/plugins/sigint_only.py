"""A service program that is PID 1 of its own PID namespace and ends on SIGINT only (KeyboardInterrupt,
as ``python3 -m http.server`` does): the kernel drops the SIGTERM it does not handle. Its argument is a
mark file: "up" once it runs, "interrupted" once a SIGINT ended it. Shared by the repository's daemon
tests and the collection's stop_signal tests (plain Python, no Ansible: see pid_reuse.py)."""

PROGRAM = """
import pathlib, sys, time
mark = pathlib.Path(sys.argv[1])
mark.write_text("up")
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    mark.write_text("interrupted")
"""
