"""Signal names as util-linux reads and writes them (pyforkexec/signames.py), wherever the command
line, the spec documents and the logs take or show one."""

from __future__ import annotations

import platform
import signal

import pytest

from pyforkexec import signames
from pyforkexec.attrs import SysProcAttr
from pyforkexec.spec.named import named_of


@pytest.mark.parametrize(("text", "number"), [
    ("KILL", signal.SIGKILL), ("sigterm", signal.SIGTERM), ("SIGHUP", signal.SIGHUP),
    ("RTMIN+1", signal.SIGRTMIN + 1), ("SIGRTMAX-2", signal.SIGRTMAX - 2), ("rtmin+0", signal.SIGRTMIN),
    ("RTMIN+99", None), ("RTMAX-99", None), ("NOSUCH", None), ("", None), ("SIG", None),
])
def test_a_name_reads_as_util_linux_reads_it(text: str, number: int | None) -> None:
    assert signames.number(text) == number


@pytest.mark.parametrize(("text", "number"), [
    ("2", signal.SIGINT), ("15", signal.SIGTERM), ("int", signal.SIGINT), ("RTMIN+1", signal.SIGRTMIN + 1),
    ("0", None), (str(signal.NSIG), None), ("32", None), ("-2", None), ("+2", None), ("2.0", None),
    ("\u0662", None),  # a digit to str.isdigit, no number here
])
def test_a_signal_by_name_or_number_reads_as_systemd_and_podman_do(text: str, number: int | None) -> None:
    """(32 and 33: glibc keeps them for itself, not signals a service can be sent by name or number.)"""
    assert signames.parse(text) == number


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"),
                    reason="SIGSTKFLT is 16 on x86_64 and arm64 only")
def test_stkflt_is_named_on_every_python() -> None:
    """Python names SIGSTKFLT from 3.11 only: on Debian 11's 3.9, "STKFLT" read as no signal (a spec's
    pdeathsig and --kill-child refused it) and 16 showed as a number."""
    assert signames.number("STKFLT") == signames.number("sigstkflt") == 16
    assert signames.name(16) == "SIGSTKFLT"


def test_every_signal_has_a_name_that_reads_back() -> None:
    for signo in [*signal.valid_signals()]:  # (glibc keeps 32 and 33 for itself: no name, not valid)
        if signo >= signal.NSIG or not (signo < 32 or signo >= signal.SIGRTMIN):
            continue
        name = signames.name(signo)
        assert signames.number(name) == signo, name


def test_a_spec_document_takes_and_shows_real_time_names() -> None:
    """The spec's pdeathsig refused "RTMIN+1" (--kill-child takes it) and could not show 35."""
    import dataclasses

    field = next(f for f in dataclasses.fields(SysProcAttr) if f.name == "pdeathsig")
    parse, dump = named_of(SysProcAttr, field)
    assert parse("RTMIN+1") == signal.SIGRTMIN + 1 and dump(signal.SIGRTMIN + 1) == "SIGRTMIN+1"
    with pytest.raises(ValueError, match=r"unknown signal 'RTMIN\+99'"):
        parse("RTMIN+99")
