"""What a fresh interpreter imports for ``import pyforkexec``, the command line's ``unshare`` and
``nsenter`` paths, its commands that spawn nothing (``--help``, ``flags``), the service launcher
(``exec --spec``) and the daemon (issue 15). Each of these starts a Python every time (a command, a
systemd start, a daemon restart), so a module that the command does not use must not be imported
on the way: ``benchmarks/startup.py`` measures the time; this pins the property, so that a change that
imports a heavy module eagerly again fails here rather than in a slower service start.

Each command runs in a fresh interpreter that reports its ``sys.modules`` as it ends; the modules a
bare ``python -c pass`` of the same interpreter has (``site``, a ``.pth`` finder) are not counted
against the command. No time is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.marks import needs_root

# Heavy modules (each several ms of a start) that none of these commands needs on its way: Python's
# (importlib.metadata: only for --version; ctypes: only for a Landlock or idmapped-mount spawn; socket:
# only for a sync callable; difflib: only for an error's suggestion) and the package's own that the
# command does not run.
NEVER = {
    "importlib.metadata", "email", "zipfile", "ctypes", "socket", "selectors", "subprocess", "difflib",
    "pickle", "traceback", "datetime", "argparse",
    "pyforkexec.run_process", "pyforkexec.clone_fn", "pyforkexec.nsinfo", "pyforkexec.prepared",
    "pyforkexec.netns",
}
# What ``inspect`` loads. ``dataclasses`` imports ``inspect``; the commands' processes put a stand-in in
# its place that loads it on first use (pyforkexec/_startup.py), and nothing on their way uses it. From
# Python 3.12 dataclasses itself reads each class's annotations through inspect (loaded by the first
# public dataclass: the stand-in gains nothing there), so these count only before 3.12.
INSPECT_LOADS = {"ast", "dis", "tokenize", "linecache"} if sys.version_info < (3, 12) else set()
# `import pyforkexec` alone imports no part of the package and none of the machinery of its classes.
IMPORT_ALONE_NEVER = NEVER | {"dataclasses", "inspect", "typing", "enum", "re", "signal", "json"}
UNSHARE = ["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--uts", "--ipc", "--net",
           "/bin/true"]


# Runs ARGS as ``python ARGS`` would (a module with -m, else code with -c) and, as the process ends
# (normally or by os._exit, as the launcher ends with its child's status), writes every module name
# in sys.modules to the fd its first argument names (also before an exec: a launcher without a
# terminal becomes pyforkexec-waiter). ``-X importtime`` would not do: it misses what
# importlib.import_module and ``from package import module`` load.
WRAPPER = """
import os, sys
def dump(out=os.fdopen(int(sys.argv.pop(1)), "w")):
    out.write("\\n".join(sys.modules)); out.flush()
def exit_after_dump(code, real_exit=os._exit):
    dump(); real_exit(code)
os._exit = exit_after_dump
def exec_after_dump(path, args, real_execv=os.execv):  # a launcher handing its child to the waiter
    dump(); real_execv(path, args)
os.execv = exec_after_dump
import atexit; atexit.register(dump)
mode, target, *rest = sys.argv[1:]
if mode == "-m":
    import runpy
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
"""


def imported(args: list[str]) -> set[str]:
    """Every module a fresh ``python ARGS`` has loaded when it ends, less those of ``python -c pass``."""
    def run(argv: list[str]) -> set[str]:
        r, w = os.pipe()
        with os.fdopen(r) as out:
            proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(w), *argv], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, pass_fds=(w,))
            os.close(w)
            modules = set(out.read().split())
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        return modules

    return run(args) - run(["-c", "pass"])


# The public types (attrs.py, sandbox/*): dataclasses as the API promises. Every other class the
# commands import is a plain class (_record.py): a dataclass compiles its methods at each start.
PUBLIC_DATACLASSES = {
    "pyforkexec.attrs." + n for n in ("SysProcIDMap", "Credential", "SetNS", "SysProcAttr", "ProcAttr")
} | {
    "pyforkexec.sandbox." + n for n in ("caps.Capabilities", "cgroup.Cgroup", "landlock.LandlockPath",
                                        "landlock.LandlockPort", "landlock.Landlock", "mounts.Mount",
                                        "rlimits.Rlimit", "seccomp.SeccompFilter")
}
SPEC_DATACLASSES = {"pyforkexec.spec.load.Spec"}  # what spec.read returns (public too)


def dataclasses_defined(modules: set[str]) -> set[str]:
    """The dataclasses that the package's modules among ``modules`` define (imported here too)."""
    import dataclasses
    import importlib

    found = set()
    for name in sorted(m for m in modules if m.startswith("pyforkexec.")):
        module = importlib.import_module(name)
        found |= {f"{name}.{k}" for k, v in vars(module).items()
                  if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == name}
    return found


def heavy(modules: set[str], never: set[str]) -> list[str]:
    """The modules of ``never`` (or their submodules) among ``modules``."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in never))


def test_import_pyforkexec_imports_nothing_of_the_package() -> None:
    modules = imported(["-c", "import pyforkexec"])
    assert "pyforkexec" in modules  # the measure sees the import it is checking
    assert sorted(m for m in modules if m.startswith("pyforkexec.")) == []
    assert heavy(modules, IMPORT_ALONE_NEVER) == []


def test_the_public_names_still_load_on_first_use() -> None:
    # the lazy names give what the eager imports gave: __all__ (with every CLONE_* of flags), dir(),
    # star-import, __version__, submodules as attributes
    code = ("import json, pyforkexec, pyforkexec.flags as f; from pyforkexec import *; "
            "print(json.dumps([pyforkexec.__all__, sorted(set(pyforkexec.__all__) - set(dir(pyforkexec))), "
            "[n for n in pyforkexec.__all__ if n not in globals()], "
            "pyforkexec.SysProcAttr.__module__, pyforkexec.CLONE_NEWNS is f.CLONE_NEWNS, "
            "pyforkexec.errors.__name__, type(pyforkexec.__version__).__name__]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    names, not_in_dir, not_starred, *attributes = json.loads(proc.stdout)
    import pyforkexec.flags

    assert set(pyforkexec.flags.__all__) <= set(names) and "fork_exec" in names and "SysProcAttr" in names
    assert (not_in_dir, not_starred) == ([], [])
    assert attributes == ["pyforkexec.attrs", True, "pyforkexec.errors", "str"]


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    import pyforkexec

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        pyforkexec.no_such_name  # noqa: B018
    assert not hasattr(pyforkexec, "CLONE_NO_SUCH_FLAG")


# What runs no process: the supervisor, the process and cgroup modules, the public types and their
# checks are only for the commands that spawn; json only for `flags --json`.
SPAWNING = {"pyforkexec.service.supervise", "pyforkexec.process", "pyforkexec.sandbox", "pyforkexec.attrs",
            "pyforkexec.validate", "pyforkexec.forkexec", "pyforkexec.errors", "pyforkexec.cli.values",
            "dataclasses", "threading", "json"}


@pytest.mark.parametrize("args", [["--help"], ["flags", "CLONE_NEWNS,CLONE_NEWPID"], ["flags", "--help"]])
def test_a_command_that_spawns_nothing_imports_none_of_the_spawn_path(args: list[str]) -> None:
    modules = imported(["-m", "pyforkexec", *args])
    assert "pyforkexec.cli.failure" in modules  # the measure saw the command's way
    assert heavy(modules, NEVER | INSPECT_LOADS | SPAWNING) == []


@needs_root
def test_the_unshare_command_imports_only_what_it_runs() -> None:
    modules = imported(["-m", "pyforkexec", "unshare", *UNSHARE])
    assert "pyforkexec.cli.unshare" in modules and "pyforkexec.forkexec" in modules
    never = NEVER | INSPECT_LOADS | {"json", "pyforkexec.spec", "pyforkexec.service.daemon"}
    assert heavy(modules, never) == []
    assert dataclasses_defined(modules) == PUBLIC_DATACLASSES


@needs_root
def test_the_nsenter_command_imports_only_what_it_runs() -> None:
    modules = imported(["-m", "pyforkexec", "nsenter", "--target", str(os.getpid()), "--uts", "/bin/true"])
    assert "pyforkexec.cli.nsenter" in modules and "pyforkexec.forkexec" in modules
    never = NEVER | INSPECT_LOADS | {"json", "pyforkexec.spec", "pyforkexec.service.daemon",
                                     "pyforkexec.cli.unshare"}
    assert heavy(modules, never) == []
    assert dataclasses_defined(modules) == PUBLIC_DATACLASSES


@needs_root
def test_the_service_launcher_imports_only_what_it_runs(tmp_path: Path) -> None:
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"version": 1, "argv": ["/bin/true"],
                                "sys": {"cloneflags": ["CLONE_NEWUTS"]}}))
    modules = imported(["-m", "pyforkexec", "exec", "--spec", str(spec)])
    assert "pyforkexec.cli.exec" in modules and "pyforkexec.spec.load" in modules
    assert "pyforkexec.child.plan" in modules  # it did spawn
    assert heavy(modules, NEVER | INSPECT_LOADS | {"pyforkexec.service.daemon", "yaml"}) == []
    assert dataclasses_defined(modules) == PUBLIC_DATACLASSES | SPEC_DATACLASSES


def test_the_daemon_module_imports_only_what_it_runs() -> None:
    modules = imported(["-c", "import pyforkexec.daemon"])
    assert "pyforkexec.service.daemon" in modules
    assert heavy(modules, NEVER | INSPECT_LOADS | {"pyforkexec.cli"}) == []


@needs_root
def test_the_daemon_imports_only_what_it_runs(tmp_path: Path) -> None:
    # a whole start, to the service's exec (then the daemon execs the waiter, and the dump is taken)
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"version": 1, "argv": ["/bin/true"],
                                "sys": {"cloneflags": ["CLONE_NEWUTS"]}}))
    modules = imported(["-m", "pyforkexec.daemon", "--name", "t", "--spec", str(spec), "--pid-file",
                        str(tmp_path / "d.pid"), "--log-file", str(tmp_path / "d.log"), "--foreground"])
    assert "pyforkexec.service.daemon" in modules and "pyforkexec.child.plan" in modules  # it did spawn
    # argparse (with gettext, locale, shutil) only for --help or a command line not in the plain form
    assert heavy(modules, NEVER | INSPECT_LOADS | {"pyforkexec.cli", "gettext", "locale", "shutil"}) == []
    assert dataclasses_defined(modules) == PUBLIC_DATACLASSES | SPEC_DATACLASSES


def test_loading_a_spec_evaluates_the_type_hints_of_only_the_classes_it_holds(tmp_path: Path) -> None:
    # Each start of the launcher and the daemon loads a spec. Whether a field can be given in a
    # document (the schema has a place for it) must not evaluate the type hints of every dataclass
    # the field's type could hold: ~200 compiled annotations per start. A fresh interpreter: the
    # loader caches that answer per type.
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"version": 1, "argv": ["/bin/true"],
                                "sys": {"cloneflags": ["CLONE_NEWUTS"]}}))
    code = f"""
import typing, json
evaluated, real = [], typing.get_type_hints
def counting(obj, *args, **kwargs):
    evaluated.append(obj.__name__)
    return real(obj, *args, **kwargs)
typing.get_type_hints = counting
from pyforkexec.spec.load import read
read({str(spec)!r})
print(json.dumps(sorted(set(evaluated))))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["ProcAttr", "SysProcAttr"]


def test_the_command_line_modules_compile_no_type_strings() -> None:
    # typing turns a string in a runtime annotation (Union[..., "Name"], a NamedTuple class's fields
    # under `from __future__ import annotations`) into a ForwardRef, which compile()s it; the first
    # compile() of a process sets up the compiler's AST types, ~0.8 ms of every command's start.
    code = """
import builtins, json
real, evaluated = builtins.compile, []
def counting(source, filename, mode, *args, **kwargs):
    if mode == "eval":  # not the import system's compile of a module without bytecode ("exec")
        evaluated.append(str(source))
    return real(source, filename, mode, *args, **kwargs)
builtins.compile = counting
import pyforkexec.cli, pyforkexec.cli.unshare, pyforkexec.cli.nsenter, pyforkexec.forkexec
import pyforkexec.run_process
print(json.dumps(evaluated))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_importing_every_submodule_leaves_every_public_name_what_it_was() -> None:
    """A submodule named as a public name (pyforkexec/run.py and run()) becomes the package's attribute
    once imported (``import pyforkexec.run``, or a Ctrl-C between that import and the lazy
    __getattr__'s store): ``pyforkexec.run([...])`` then raised "'module' object is not callable"."""
    script = """
import importlib, pkgutil, types, pyforkexec
for info in pkgutil.walk_packages(pyforkexec.__path__, "pyforkexec."):
    skip = info.name.endswith(("__main__", ".daemon")) or ".cli" in info.name or "netns" in info.name
    if not skip:
        importlib.import_module(info.name)
wrong = [n for n in pyforkexec.__all__ if isinstance(getattr(pyforkexec, n), types.ModuleType)]
print(wrong)
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert res.stdout == "[]\n", res.stdout
