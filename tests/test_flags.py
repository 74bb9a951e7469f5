"""CloneFlags: values against Go's constants, the grouping of the clone-flags notes, describe/parse."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import pytest

from pyforkexec import flags
from pyforkexec.flags import NAMESPACE_FLAGS, NAMESPACE_PROC_FILES, CloneFlags, FlagGroup

# The grouping of seed 000 (the project's notes on clone flags), section by section.
EXPECTED_GROUPS = {
    FlagGroup.SHARING: {"VM", "FS", "FILES", "SIGHAND", "SYSVSEM", "THREAD", "IO"},
    FlagGroup.NAMESPACE: {"NEWNS", "NEWUTS", "NEWIPC", "NEWPID", "NEWNET", "NEWUSER", "NEWCGROUP", "NEWTIME"},
    FlagGroup.PROCESS_CONTROL: {
        "VFORK", "PARENT", "PTRACE", "UNTRACED", "CHILD_SETTID", "PARENT_SETTID", "CHILD_CLEARTID", "SETTLS",
        "DETACHED",
    },
    FlagGroup.ADVANCED: {"PIDFD", "CLEAR_SIGHAND", "INTO_CGROUP"},
}


def _go_exec_linux() -> Path | None:
    roots = [os.environ.get("GOROOT", ""), *sorted(glob.glob("/usr/lib/go-1.*"), reverse=True), "/usr/lib/go",
             "/usr/local/go"]
    for root in filter(None, roots):
        path = Path(root, "src/syscall/exec_linux.go")
        if path.is_file():
            return path
    return None


def test_values_equal_go_constants():
    path = _go_exec_linux()
    if path is None:
        pytest.skip("Go's src/syscall/exec_linux.go is not installed")
    constants = re.finditer(r"^\s*(CLONE_\w+)\s*=\s*(0x[0-9a-fA-F]+)", path.read_text(), re.M)
    go = {m[1]: int(m[2], 16) for m in constants}
    assert len(go) >= 27, f"could not parse the CLONE_* block of {path}"
    assert {m.name: int(m) for m in CloneFlags} == go


def test_every_flag_is_one_distinct_bit():
    values = [int(m) for m in CloneFlags]
    assert len(CloneFlags.__members__) == 27
    assert all(v and v & (v - 1) == 0 for v in values)
    assert len(set(values)) == len(values)
    assert CloneFlags.CLONE_NEWTIME == 0x80
    assert CloneFlags.CLONE_CLEAR_SIGHAND == 0x100000000
    assert CloneFlags.CLONE_INTO_CGROUP == 0x200000000


def test_module_constants_and_all():
    for member in CloneFlags:
        assert getattr(flags, member.name) is member
        assert member.name in flags.__all__
    assert all(hasattr(flags, name) for name in flags.__all__)


def test_grouping_matches_expected():
    got = {g: {m.name[len("CLONE_"):] for m in CloneFlags if m.group is g} for g in FlagGroup}
    assert got == EXPECTED_GROUPS


def _seed_groups(text: str) -> list[set[str]]:
    # Sections are the "# 1." .. "## 4." headings; flags are the first column of their tables.
    sections: list[set[str]] = []
    for line in text.splitlines():
        if re.match(r"^#+\s*\d\.", line):
            sections.append(set())
        elif sections and (m := re.match(r"^\|\s*CLONE_(\w+)\s*\|", line)):
            sections[-1].add(m[1])
    return sections


def test_grouping_matches_seed_notes():
    seeds = glob.glob(os.path.join(os.environ.get("PYFORKEXEC_SEEDS", "/work/shared/seeds"), "000_*.txt"))
    if not seeds:
        pytest.skip("the clone-flags notes (seed 000) are not on this machine")
    assert _seed_groups(Path(seeds[0]).read_text(encoding="utf-8")) == list(EXPECTED_GROUPS.values())


def test_group_of_a_combination():
    assert (CloneFlags.CLONE_NEWNS | CloneFlags.CLONE_NEWPID).group is FlagGroup.NAMESPACE
    with pytest.raises(ValueError, match=re.escape("CLONE_VM|CLONE_NEWNS")):
        _ = (CloneFlags.CLONE_NEWNS | CloneFlags.CLONE_VM).group
    with pytest.raises(ValueError):
        _ = CloneFlags(0).group


def test_descriptions_are_one_english_line():
    for member in CloneFlags:
        text = member.description
        assert text.isascii() and "\n" not in text and text.endswith("."), member.name
    with pytest.raises(ValueError, match="not a single flag"):
        _ = (CloneFlags.CLONE_NEWNS | CloneFlags.CLONE_NEWPID).description


def test_namespace_names():
    assert NAMESPACE_FLAGS["mount"] is NAMESPACE_FLAGS["mnt"] is CloneFlags.CLONE_NEWNS
    namespaced = {m for m in CloneFlags if m.group is FlagGroup.NAMESPACE}
    assert set(NAMESPACE_FLAGS.values()) == namespaced
    assert set(NAMESPACE_PROC_FILES) == namespaced
    assert NAMESPACE_PROC_FILES[CloneFlags.CLONE_NEWNS] == "mnt"
    for name, flag in NAMESPACE_FLAGS.items():
        assert flag.ns_file == (name if name != "mount" else "mnt")
    assert CloneFlags.CLONE_VM.ns_file is None


def test_proc_ns_files_exist():
    present = set(os.listdir("/proc/self/ns"))
    missing = set(NAMESPACE_PROC_FILES.values()) - present
    # time namespaces need Linux 5.6 and cgroup namespaces 4.6; anything else is a wrong name.
    assert missing <= {"time", "cgroup"}, missing


def test_describe():
    assert CloneFlags.describe(0x20020000) == "CLONE_NEWNS|CLONE_NEWPID"
    assert CloneFlags.describe(0) == "0"
    assert CloneFlags.describe(0x11) == "0x11"
    assert CloneFlags.describe(CloneFlags.CLONE_NEWUSER | 0x11) == "CLONE_NEWUSER|0x11"
    assert CloneFlags.describe(CloneFlags.CLONE_INTO_CGROUP | 0x80) == "CLONE_NEWTIME|CLONE_INTO_CGROUP"
    assert CloneFlags.describe(1 << 40) == hex(1 << 40)


@pytest.mark.parametrize("bad", [-1, 1 << 64])
def test_describe_out_of_range(bad):
    with pytest.raises(ValueError, match="64 unsigned bits"):
        CloneFlags.describe(bad)


@pytest.mark.parametrize("bad", ["CLONE_NEWNS", 1.0, None, True])
def test_describe_type(bad):
    with pytest.raises(TypeError):
        CloneFlags.describe(bad)


def test_split_and_unknown_bits():
    value = CloneFlags.CLONE_NEWPID | CloneFlags.CLONE_VM | 0x11
    assert CloneFlags.split(value) == (CloneFlags.CLONE_VM, CloneFlags.CLONE_NEWPID)
    assert CloneFlags.unknown_bits(value) == 0x11
    assert CloneFlags.split(0) == ()


@pytest.mark.parametrize(
    "text, value",
    [
        ("CLONE_NEWNS,newpid|0x10", 0x20020010),
        ("clone_newuser", 0x10000000),
        (" NewUts | NEWIPC ", 0x0C000000),
        ("0x20000,131072", 0x20000),
        ("0o200", 0x80),
        ("", 0),
        ("  ", 0),
        ("VM|fs|Files", 0x700),
    ],
)
def test_parse(text, value):
    parsed = CloneFlags.parse(text)
    assert isinstance(parsed, CloneFlags)
    assert parsed == value


def test_parse_describe_round_trip():
    for value in [0, 0x20020000, 0x3FFFFFF80, 0x10000011, sum(CloneFlags)]:
        assert CloneFlags.parse(CloneFlags.describe(value)) == value
    for member in CloneFlags:
        assert CloneFlags.parse(member.name) is member
        assert CloneFlags.describe(member) == member.name


@pytest.mark.parametrize(
    "text, token",
    [
        ("CLONE_NEWNS,bogus", "'bogus'"),
        ("NEWNS|CLONE_", "'CLONE_'"),
        ("net", "'net'"),  # namespace short names live in NAMESPACE_FLAGS, not here
        ("0xzz", "'0xzz'"),
        ("-1", "'-1'"),
        (hex(1 << 64), hex(1 << 64)),
        ("NEWNS,,NEWPID", "empty flag"),
        ("NEWNS|", "empty flag"),
    ],
)
def test_parse_errors_name_the_token(text, token):
    with pytest.raises(ValueError, match=re.escape(token)):
        CloneFlags.parse(text)


def test_parse_needs_a_string():
    with pytest.raises(TypeError):
        CloneFlags.parse(0x20000)  # type: ignore[arg-type]


@pytest.mark.parametrize("token", ["\u0663", "1_000", "0x", "0b2", "0o8", "+-1", "0x1_0", "\uff11"])
def test_a_number_is_ascii_digits_of_one_base(token: str) -> None:
    """int(x, 0) took non-ASCII digits and underscores (and said "invalid literal for int()" of
    ``0x``): each is a bad number, naming the token."""
    with pytest.raises(ValueError, match=rf"^CloneFlags\.parse: bad number {re.escape(repr(token))} in .*: "
                                          "not a decimal, 0x, 0o or 0b integer of ASCII digits$"):
        CloneFlags.parse(token)


@pytest.mark.parametrize(("token", "value"), [("010", 10), ("0x10", 16), ("0X1f", 31), ("0o17", 15),
                                              ("0b101", 5), ("+7", 7), ("-0", 0)])
def test_numbers_of_each_base(token: str, value: int) -> None:
    assert int(CloneFlags.parse(token)) == value
