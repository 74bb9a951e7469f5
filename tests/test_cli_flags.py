"""``pyforkexec flags``: decoding and encoding clone flags, grouped as in the clone-flags notes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from helpers.cli import pfe

from pyforkexec import CloneFlags, FlagGroup
from pyforkexec.cli.flags import HEADINGS


def test_decode_a_number() -> None:
    res = pfe("flags", "0x20020000")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "0x20020000 = CLONE_NEWNS|CLONE_NEWPID"
    assert lines[2] == HEADINGS[FlagGroup.NAMESPACE] + ":"
    assert lines[3].split()[:3] == ["CLONE_NEWNS", "0x00020000", "[mnt]"]
    assert lines[3].endswith(CloneFlags.CLONE_NEWNS.description)
    assert "CLONE_NEWPID" in lines[4] and "[pid]" in lines[4]


@pytest.mark.parametrize("args", [["CLONE_NEWNS,CLONE_NEWPID"], ["newns,newpid"], ["newns", "NEWPID"],
                                  ["CLONE_NEWNS|0x20000000"], ["536870912", "131072"]])
def test_encode_names_and_numbers_alike(args: list[str]) -> None:
    assert pfe("flags", *args).stdout == pfe("flags", "0x20020000").stdout


def test_groups_follow_the_notes() -> None:
    out = pfe("flags", "vm,newuts,vfork,pidfd").stdout
    headings = [line[:-1] for line in out.splitlines() if line.endswith(":")]
    assert headings == [HEADINGS[g] for g in (FlagGroup.SHARING, FlagGroup.NAMESPACE,
                                              FlagGroup.PROCESS_CONTROL, FlagGroup.ADVANCED)]


def test_listing_every_flag_in_the_notes_order() -> None:
    out = pfe("flags").stdout
    names = [line.split()[0] for line in out.splitlines() if line.startswith("  CLONE_")]
    assert sorted(names) == sorted(f.name for f in CloneFlags)
    ns = [n for n in names if CloneFlags[n].group is FlagGroup.NAMESPACE]
    assert ns[:3] == ["CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC"]


def test_exit_signal_byte_is_explained() -> None:
    out = pfe("flags", "0x20020011").stdout
    assert out.splitlines()[0] == "0x20020011 = CLONE_NEWNS|CLONE_NEWPID|0x11"
    assert "Not clone flags: 0x11 (in clone(2) the low byte is the exit signal: SIGCHLD)" in out


def test_json() -> None:
    doc = json.loads(pfe("flags", "--json", "newuts,newuser").stdout)
    assert doc["value"] == int(CloneFlags.CLONE_NEWUTS | CloneFlags.CLONE_NEWUSER)
    assert doc["names"] == "CLONE_NEWUTS|CLONE_NEWUSER"
    assert [f["name"] for f in doc["flags"]] == ["CLONE_NEWUTS", "CLONE_NEWUSER"]
    assert doc["flags"][0] == {"name": "CLONE_NEWUTS", "value": 0x04000000, "hex": "0x04000000",
                               "group": "namespace", "description": CloneFlags.CLONE_NEWUTS.description,
                               "ns_file": "uts"}
    assert doc["unknown_bits"] == 0 and doc["exit_signal"] is None
    every = json.loads(pfe("flags", "--json").stdout)
    assert len(every["flags"]) == len(CloneFlags)


@pytest.mark.parametrize("args", [["CLONE_NEWNS,newpid", "--json"], ["newns", "-j", "newpid"],
                                  ["newns", "--", "newpid"]], ids=" ".join)
def test_options_may_follow_the_values(args: list[str]) -> None:
    """No program follows the values (README: ``flags CLONE_NEWNS,newpid --json``): an option after
    them is read as GNU getopt reads it, not as one more value; ``--`` still ends the options."""
    res = pfe("flags", *args)
    assert res.returncode == 0, res.stderr
    json_asked = "--" not in args
    assert res.stdout == pfe("flags", *(["--json"] if json_asked else []), "0x20020000").stdout


@pytest.mark.parametrize("value", ["newfoo", "0xzz", "CLONE_NEWNS,,newpid"])
def test_bad_values_exit_1(value: str) -> None:
    res = pfe("flags", value)
    assert res.returncode == 1
    assert res.stderr.startswith("pyforkexec flags: ")
    assert value.split(",")[0] in res.stderr or "empty flag" in res.stderr


@pytest.mark.parametrize("args", [["flags", "0x20000"], ["flags", "--json"], ["unshare", "--help"],
                                  ["--version"]], ids=" ".join)
def test_a_write_error_on_standard_output_is_util_linux_s(args: list[str]) -> None:
    """util-linux's close_stdout: ``unshare: write error: No space left on device``, status 1."""
    with open("/dev/full", "w") as full:
        res = pfe(*args, stdout=full, stderr=subprocess.PIPE, capture_output=False)
    assert (res.returncode, res.stderr) == (1, "pyforkexec: write error: No space left on device\n")


def test_bad_option_exits_1() -> None:
    res = pfe("flags", "--yaml")
    assert res.returncode == 1
    assert "--yaml" in res.stderr


def test_a_ctrl_c_while_the_command_is_imported_ends_it_silently() -> None:
    """SIGINT while the command line's modules are imported (an import hook sends it as the failure
    module is looked for): the command ends by SIGINT without a word, as it does once it runs; it
    used to print a KeyboardInterrupt traceback from the middle of the import."""
    script = """
import os, signal, sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "pyforkexec.cli.failure":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv[0] = "/usr/local/bin/pyforkexec"  # as the console script starts
from pyforkexec.cli import main
sys.exit(main(["flags", "0x1"]))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stderr) == (-signal.SIGINT, "")


def test_importing_the_command_line_as_a_library_leaves_ctrl_c_as_it_was() -> None:
    """The quiet start (SIGINT's default action until the command runs) is the command's own: a
    program that imported a part of it (its id map parser, in a test) had its Ctrl-C turned into
    the default action for good, and a later Ctrl-C killed it instead of raising KeyboardInterrupt."""
    script = "import signal; import pyforkexec.cli.idmaps; print(signal.getsignal(signal.SIGINT).__name__)"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout) == (0, "default_int_handler\n"), res


@pytest.mark.parametrize("arg", ["", " "])
def test_an_empty_argument_is_refused(arg: str) -> None:
    res = pfe("flags", arg)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr.startswith("pyforkexec flags: an empty argument: give clone flag names or a number")
