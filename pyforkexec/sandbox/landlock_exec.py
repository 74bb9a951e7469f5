"""Whether a Landlock policy lets its own program start: execve opens the program (and a script's
interpreter, and an ELF program's dynamic loader) to read and execute it, which the ``read_file`` and
``execute`` rights of rules on the file or directories above it must allow; the dynamic loader then
reads each shared library (``read_file``). A policy that denies one of them lets no process run: the
start fails at execve (EACCES), or the loader before main. ``denied_to_run`` tells it from the files,
as this process sees them, without starting anything (``exec --check``, the modules' check mode).

Judged as the kernel grants: a right on a file is one the policy does not restrict, or one a rule
allows on the file itself or on a directory on its real path (a rule is on an inode: a bind mount
carries it). A library is judged denied only when every file of its name in the directories the
loader may search (its RPATH/RUNPATH, ``LD_LIBRARY_PATH``, ld.so.conf's, the defaults) is denied;
one found nowhere is left to the start. Not judged: a rule on a directory a mount covers (reached
only through another mount), ``LD_PRELOAD`` and ``/etc/ld.so.preload``, ``$LIB``/``$PLATFORM``.
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterable, Sequence
from typing import BinaryIO, Optional

from .landlock import FS_RIGHTS, ResolvedLandlock

EXECUTE, READ_FILE = FS_RIGHTS["execute"][0], FS_RIGHTS["read_file"][0]
MAX_INTERPRETERS = 4  # BINPRM_MAX_RECURSION: a script's interpreter may itself be a script, this deep
PATH_MAX = 4096
BINPRM_BUF_SIZE = 256  # the kernel reads the "#!" line from this many first bytes
DEFAULT_LIBRARY_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/lib32", "/usr/lib32")
PT_DYNAMIC, PT_INTERP, PT_LOAD = 2, 3, 1
DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 1, 5, 15, 29


class Rules:
    """The rights a resolved policy grants on a file: the rules' masks by the inode they are on."""

    def __init__(self, policy: ResolvedLandlock):
        self.handled = policy.fs
        self.by_inode: dict[tuple[int, int], int] = {}
        for _, path, access in policy.paths:
            try:
                st = os.stat(path)
            except OSError:  # (checked by check_landlock: gone since)
                continue
            key = (st.st_dev, st.st_ino)
            self.by_inode[key] = self.by_inode.get(key, 0) | access

    def missing(self, path: str, rights: int) -> list[str]:
        """The names of ``rights`` the policy denies on the file ``path`` (its symbolic links followed):
        each is granted by a rule on the file or on any directory above it."""
        wanted = rights & self.handled
        real = os.path.realpath(path)
        while wanted:
            try:
                st = os.stat(real)
            except OSError:
                return []  # (not judged)
            wanted &= ~self.by_inode.get((st.st_dev, st.st_ino), 0)
            if real == "/":
                break
            real = os.path.dirname(real)
        return [name for name, (bit, _) in FS_RIGHTS.items() if wanted & bit]


def denied_to_run(policy: ResolvedLandlock, program: str,
                  env: Optional[Sequence[str]] = None) -> Optional[str]:
    """Why ``policy`` keeps ``program`` (an absolute path, or one relative to this working directory,
    as this process sees it) from starting: the file it denies and the right, or None when nothing
    is seen denied. ``env``: the program's environment ("K=V"; None: this process's)."""
    if not policy.fs:
        return None
    rules = Rules(policy)
    chain, elf = execve_files(program)
    for path in chain:  # execve opens each to read and execute it
        what = "the program" if path == program else "its interpreter"
        denied = rules.missing(path, EXECUTE | READ_FILE)
        if denied:
            return _reason(f"executing {what} {path}", denied)
    if elf is None or elf.interp is None:  # static, or not ELF (binfmt_misc): nothing more is loaded
        return None
    path = chain[-1]
    denied = rules.missing(elf.interp, EXECUTE | READ_FILE)
    if denied:
        return _reason(f"executing the dynamic loader {elf.interp} of {path}", denied)
    return _denied_library(rules, path, elf, _environ(env).get("LD_LIBRARY_PATH", ""))


def execve_files(program: str, root: str = "") -> tuple[list[str], Optional[Elf]]:
    """What execve opens to start ``program`` (a path as this process sees it, or in the directory
    ``root``, a chroot, when given): the program, then each script's interpreter its "#!" line names
    (an absolute one: a relative one is the child's working directory's), up to the kernel's depth;
    and the ELF headers of the last of them (None: not ELF, or not there), whose dynamic loader
    (``interp``) execve opens too. The paths are as the files name them (in ``root``)."""
    def here(path: str) -> str:
        return os.path.join(root, path.lstrip("/")) if root else path

    chain = [program]
    for _ in range(MAX_INTERPRETERS):
        interpreter = _shebang(here(chain[-1]))
        if interpreter is None or not os.path.isabs(interpreter):
            break
        chain.append(interpreter)
    return chain, _read_elf(here(chain[-1]))


def _reason(what: str, denied: list[str]) -> str:
    return f"denies {what}: no rule allows {' and '.join(denied)} on it or a directory above it"


class Elf:
    def __init__(self, interp: Optional[str], needed: list[str], rpath: list[str], runpath: list[str]):
        self.interp, self.needed, self.rpath, self.runpath = interp, needed, rpath, runpath


def _read_elf(path: str) -> Optional[Elf]:
    """The loader and the dynamic section's names of the ELF file ``path``; None if it is not one.
    Reads its headers, loader path, dynamic section and the names, not the whole file."""
    try:
        with open(path, "rb") as f:
            return _parse_elf(f)
    except (OSError, struct.error, ValueError):
        return None


def _parse_elf(f: BinaryIO) -> Optional[Elf]:
    def read(offset: int, size: int) -> bytes:
        f.seek(offset)
        data = f.read(size)
        if len(data) < size:
            raise ValueError("truncated")
        return data

    head = f.read(64)
    if head[:4] != b"\x7fELF" or len(head) < 64 or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    wide, end = head[4] == 2, "<" if head[5] == 1 else ">"
    if wide:
        phoff = struct.unpack_from(end + "Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
        ph, dyn = end + "IIQQQQQQ", end + "qQ"
    else:
        phoff = struct.unpack_from(end + "I", head, 28)[0]
        phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
        ph, dyn = end + "IIIIIIII", end + "iI"
    size = struct.calcsize(ph)
    if phentsize < size or phnum > 4096:
        return None
    table = read(phoff, phentsize * phnum)
    headers = []
    for i in range(phnum):
        fields = struct.unpack_from(ph, table, i * phentsize)
        if wide:  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz
            headers.append((fields[0], fields[2], fields[3], fields[5]))
        else:  # p_type, p_offset, p_vaddr, p_paddr, p_filesz
            headers.append((fields[0], fields[1], fields[2], fields[4]))
    interp = None
    entries: list[tuple[int, int]] = []
    step = struct.calcsize(dyn)
    for kind, offset, _, filesz in headers:
        if kind == PT_INTERP and filesz <= PATH_MAX:
            interp = os.fsdecode(read(offset, filesz).split(b"\0")[0])
        elif kind == PT_DYNAMIC and filesz <= 1 << 20:
            section = read(offset, filesz)
            for at in range(0, filesz - step + 1, step):
                tag, value = struct.unpack_from(dyn, section, at)
                if tag == 0:
                    break
                entries.append((tag, value))
    strtab = next((_file_offset(headers, v) for t, v in entries if t == DT_STRTAB), None)
    if strtab is None:
        return Elf(interp, [], [], [])

    def string(offset: int) -> str:
        f.seek(strtab + offset)
        return os.fsdecode(f.read(PATH_MAX).split(b"\0")[0])

    def dirs(tag: int) -> list[str]:
        return [d for t, v in entries if t == tag for d in string(v).split(":") if d]

    return Elf(interp, [string(v) for t, v in entries if t == DT_NEEDED], dirs(DT_RPATH), dirs(DT_RUNPATH))


def _file_offset(headers: list[tuple[int, int, int, int]], address: int) -> Optional[int]:
    for kind, offset, vaddr, size in headers:
        if kind == PT_LOAD and vaddr <= address < vaddr + size:
            return address - vaddr + offset
    return None


def _shebang(path: str) -> Optional[str]:
    """The interpreter a "#!" line of ``path`` names, as the kernel reads it; None for no such line."""
    try:
        with open(path, "rb") as f:
            head = f.read(BINPRM_BUF_SIZE)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n")[0].lstrip(b" \t")
    name = line.split(b" ")[0].split(b"\t")[0]
    return os.fsdecode(name) if name else None


def _environ(env: Optional[Sequence[str]]) -> dict[str, str]:
    if env is None:
        return dict(os.environ)
    return dict(os.fsdecode(e).partition("=")[::2] for e in env)


def _denied_library(rules: Rules, program: str, elf: Elf, library_path: str) -> Optional[str]:
    """The first shared library (of the program, or of a library it loads) whose every file the loader
    may find is denied read_file, as a reason; None when each has one it may read (or none is found)."""
    system = _system_library_dirs()
    seen: set[str] = set()
    todo: list[tuple[str, Elf]] = [(program, elf)]
    while todo:
        owner, owner_elf = todo.pop()
        origin = os.path.dirname(os.path.realpath(owner))
        search = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in (
            *([] if owner_elf.runpath else owner_elf.rpath), *library_path.split(":"), *owner_elf.runpath)]
        for name in owner_elf.needed:
            if name in seen:
                continue
            seen.add(name)
            candidates = [name] if "/" in name else [
                os.path.join(d, name) for d in dict.fromkeys((*search, *system)) if d]
            found = [c for c in candidates if os.path.isfile(c)]
            readable = [c for c in found if not rules.missing(c, READ_FILE)]
            if found and not readable:
                return _reason(f"reading the shared library {found[0]} that {owner} needs", ["read_file"])
            for library in readable[:1]:
                library_elf = _read_elf(library)
                if library_elf is not None:
                    todo.append((library, library_elf))
    return None


def _system_library_dirs() -> list[str]:
    """The directories of /etc/ld.so.conf (and what it includes), then the defaults."""
    out: list[str] = []
    _conf("/etc/ld.so.conf", out, set())
    return [*out, *DEFAULT_LIBRARY_DIRS]


def _conf(path: str, out: list[str], read: set[str]) -> None:
    if path in read:
        return
    read.add(path)
    try:
        with open(path) as f:
            lines: Iterable[str] = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for line in lines:
        line = line.split("#")[0].strip()
        if line.startswith("include") and line[7:8] in (" ", "\t"):
            for pattern in line[8:].split():
                pattern = pattern if os.path.isabs(pattern) else os.path.join(os.path.dirname(path), pattern)
                for included in sorted(glob.glob(pattern)):
                    _conf(included, out, read)
        elif line:
            out.append(line)
