"""systemd's journal line on a unit's main process exit, in the daemon's words: the start check's
cause for a systemd service that did not stay up (the unit's properties may already show its restart)."""

from __future__ import annotations

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_start_check as check


@pytest.mark.parametrize("line, words", [
    ("pyforkexec-web.service: Main process exited, code=exited, status=1/FAILURE", "exited with status 1"),
    ("pyforkexec-web.service: Main process exited, code=exited, status=127/n/a", "exited with status 127"),
    ("pyforkexec-web.service: Main process exited, code=killed, status=9/KILL", "killed by SIGKILL"),
    ("pyforkexec-web.service: Main process exited, code=dumped, status=6/ABRT",
     "killed by SIGABRT (core dumped)"),
    ("pyforkexec-web.service: Main process exited, code=killed, status=40", "killed by signal 40"),
    ("pyforkexec-web.service: Failed with result 'exit-code'.", None),
    ("pyforkexec: fork/exec /x: no such file or directory (at execve)", None),
])
def test_systemd_s_exit_line_in_the_daemon_s_words(line, words):
    assert check.main_exit_words(line) == words
