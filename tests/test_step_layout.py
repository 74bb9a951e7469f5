"""The step layout: Python (steps.py) and C (_child.c) agree member by member and argument by argument,
and the child's steps are emitted in one place (plan.compile_plan) through named builders."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

import pytest

from pyforkexec.child import _child
from pyforkexec.child.steps import CONST, FIELDS, HEADER, OPS, STEP, Blob, Builder
from pyforkexec.errors import ErrorLocation as L
from pyforkexec.sandbox import seccomp

PACKAGE = Path(__file__).resolve().parent.parent / "pyforkexec"
# steps.STEP's format, one entry per member of struct step (HEADER).
MEMBER_FORMATS = ("i", "i", "i", "i", "q", "6q")


def test_struct_step_members_at_the_same_offsets() -> None:
    assert STEP.format.lstrip("=") == "".join(MEMBER_FORMATS)
    for k, name in enumerate(HEADER):
        assert struct.calcsize("=" + "".join(MEMBER_FORMATS[:k])) == CONST[f"STEP_OFFSET_{name}"], name
    assert CONST["STEP_NARGS"] == 6
    assert STEP.size == CONST["STEP_SIZE"]


def test_every_operation_names_its_arguments_as_the_c_table_does() -> None:
    assert set(FIELDS) == set(OPS)
    python = {f"{op}.{name}": j for op, names in FIELDS.items() for j, name in enumerate(names)}
    assert python == _child.FIELDS
    assert all(len(names) <= CONST["STEP_NARGS"] for names in FIELDS.values())


@pytest.mark.parametrize("op", sorted(FIELDS))
def test_a_named_argument_lands_in_its_slot(op: str) -> None:
    b = Builder()
    names = FIELDS[op]
    b._op(op, L.EXECVE, 7, **{name: 100 + j for j, name in enumerate(names)})
    code, loc, index, refs, nr, *a = STEP.unpack(b.steps[0])
    assert (code, loc, index, refs, nr) == (OPS[op], L.EXECVE, 7, 0, 0)
    for name in names:
        assert a[_child.FIELDS[f"{op}.{name}"]] == 100 + names.index(name)
    with pytest.raises(TypeError):
        b._op(op, L.EXECVE, no_such_field=1)


def test_builders_write_their_named_fields() -> None:
    b = Builder()
    b.remount(L.MOUNT, b"/m", attr=b"A" * 32, recursive=True, ms_flags=1, index=3)
    b.map_pipe(L.UNSHARE_USER_READ, close_fd=5, read_fd=6)
    b.seccomp(L.SECCOMP, b"\0" * 16)
    remount, map_pipe, filt = (STEP.unpack(s) for s in b.steps)
    f = _child.FIELDS
    assert remount[0] == OPS["REMOUNT"] and remount[2] == 3
    a = remount[5:]
    assert (b.blobs[a[f["REMOUNT.path"]]], b.blobs[a[f["REMOUNT.attr"]]]) == (b"/m\0", b"A" * 32)
    assert (a[f["REMOUNT.at_flags"]], a[f["REMOUNT.ms_flags"]]) == (CONST["AT_RECURSIVE"], 1)
    assert remount[3] == (1 << f["REMOUNT.path"]) | (1 << f["REMOUNT.attr"])
    a = map_pipe[5:]
    assert (a[f["MAP_PIPE.close_fd"]], a[f["MAP_PIPE.read_fd"]]) == (5, 6)
    a = filt[5:]
    assert a[f["SECCOMP.count"]] == 16 // CONST["SOCK_FILTER_SIZE"]
    assert isinstance(b.blobs[a[f["SECCOMP.filter"]]], Blob)


def test_constants_kept_outside_the_extension_match_it() -> None:
    assert CONST["BPF_MAXINSNS"] == seccomp.BPF_MAXINSNS


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(f"{node.module or ''}.{a.name}".lstrip(".") for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("module", ["mounts", "rlimits", "seccomp", "caps"])
def test_concept_modules_do_not_load_the_child(module: str) -> None:
    imports = _imports(PACKAGE / "sandbox" / f"{module}.py")
    assert not {"steps", "_child"} & {name.split(".")[-1] for name in imports}, imports


def test_steps_are_emitted_in_one_place() -> None:
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "Builder()" in p.read_text())
    assert users == ["child/plan.py"]
