"""Fixtures shared by the collection's unit tests: Ansible's own argument validation, and modules run
in-process with real arguments (their JSON result captured from stdout, as Ansible reads it)."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def validate_args():
    """validate_args(argspec, params, **rules) -> the parameters with defaults, as AnsibleModule sees them."""

    def validate(argspec, params, **rules):
        result = ArgumentSpecValidator(argspec, **rules).validate(params)
        if result.error_messages:
            raise ValueError("; ".join(result.error_messages))
        return result.validated_parameters

    return validate


# What every module may return without documenting it (Ansible's common return values).
COMMON_RETURNS = {"changed", "failed", "msg", "skipped", "warnings", "deprecations", "invocation", "diff",
                  "exception"}
TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}


def undocumented(returns, result, path=""):
    """What ``result`` holds that its RETURN (``returns``, parsed) does not say: a key it does not
    document, a value of another type than documented, an entry of a list or dict of entries whose
    keys are not in its ``contains``; a key documented as returned ``always`` or on ``success`` that a result
    that did not fail lacks (a failure returns what it knew). A null value is taken as documented (absent)."""
    found = [f"{path}{key}: documented as returned {doc['returned']}, missing"
             for key, doc in returns.items() if key not in result
             and doc.get("returned") in ("always", "success") and not result.get("failed")]
    for key, value in result.items():
        doc = returns.get(key)
        if doc is None:
            if not (path == "" and key in COMMON_RETURNS):
                found.append(f"{path}{key}: returned, not documented")
            continue
        kind = TYPES.get(doc.get("type"))
        if value is None or kind is None:
            continue
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
            found.append(f"{path}{key}: documented as {doc['type']}, returned {value!r}")
            continue
        contains = doc.get("contains")
        if not contains:
            continue
        if isinstance(value, list):
            entries = [(f"{path}{key}[{i}].", e) for i, e in enumerate(value) if isinstance(e, dict)]
        elif value and all(isinstance(v, dict) for v in value.values()) and not set(value) & set(contains):
            entries = [(f"{path}{key}[{k}].", v) for k, v in value.items()]  # a dict of entries by name
        else:
            entries = [(f"{path}{key}.", value)]
        for where, entry in entries:
            found += undocumented(contains, entry, where)
    return found


@pytest.fixture
def run_module(capsys):
    """run_module(module, args, check_mode=False, diff=False) -> the module's result dict, checked
    against the module's RETURN (``undocumented``): every path a unit test runs checks the documentation."""

    def run(module, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
        result = json.loads(capsys.readouterr().out)
        wrong = undocumented(yaml.safe_load(module.RETURN) or {}, result)
        assert not wrong, f"{module.__name__}'s RETURN does not say what it returned: {wrong}"
        return result

    return run


@pytest.fixture
def child_env():
    """The environment for a Python a test starts (``sys.executable -c``) that imports the collection:
    this one's ``sys.path`` as PYTHONPATH, where ansible-test put ``ansible_collections`` (a path its
    pytest plugin adds, which no child inherits)."""
    import sys

    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


@pytest.fixture
def in_pid_namespace(child_env):
    """in_pid_namespace(script, *args) -> the JSON answer of ``script`` run by this Python as PID 1 of a
    PID namespace of its own (pid_reuse.run: beside this file, which the script imports too), in
    child_env; ``mount_proc=False`` keeps this process's /proc there."""
    import importlib.util

    # loaded from its path: ansible-test imports this file as a module of the collection's package,
    # plain pytest as a module of no package, and the two name its neighbours differently
    spec = importlib.util.spec_from_file_location("pid_reuse", os.path.join(os.path.dirname(__file__),
                                                                            "pid_reuse.py"))
    pid_reuse = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pid_reuse)
    return lambda script, *args, **kwargs: pid_reuse.run(script, *args, env=child_env, **kwargs)


@pytest.fixture
def unique_name():
    """A name no other test run uses at the same time (netns, links, services): pfe-ut-PID-N."""
    counter = iter(range(1000))
    return lambda: f"pfe-ut-{os.getpid() % 100000}-{next(counter)}"


@pytest.fixture
def service_names(run_module):
    """service_names(prefix) -> a new service name PREFIX-PID-N; each one that left a pid file or a spec
    is removed (state absent, no grace) after the test."""
    from ansible_collections.pyforkexec.isolation.plugins.module_utils import service_paths as paths
    from ansible_collections.pyforkexec.isolation.plugins.modules import service

    counter = iter(range(100))
    made = []

    def new(prefix):
        made.append(f"{prefix}-{os.getpid() % 100000}-{next(counter)}")
        return made[-1]

    yield new
    for each in made:
        if os.path.exists(paths.pid_file(each)) or os.path.exists(paths.spec_path(each)):
            gone = run_module(service, dict(name=each, state="absent", stop_timeout=0))
            assert gone.get("failed") is not True, gone


@pytest.fixture
def dead_pid():
    """The pid of a process that has exited and been reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


@pytest.fixture
def elsewhere():
    """A sleeping process in user, uts, ipc and net namespaces of its own; yields ``path(kind)``, its
    namespace file of that kind: a join target that is not the host's own (a join of the host's own is
    refused); ``path.pid`` is its pid."""
    import pyforkexec as fe

    flags = fe.CLONE_NEWUSER | fe.CLONE_NEWUTS | fe.CLONE_NEWIPC | fe.CLONE_NEWNET
    attr = fe.ProcAttr(sys=fe.SysProcAttr(cloneflags=flags))
    holder = fe.start_process("/bin/sleep", ["sleep", "600"], attr)

    def path(kind):
        return f"/proc/{holder.pid}/ns/{kind}"

    path.pid = holder.pid
    try:
        yield path
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def thread_id():
    """The id of a thread of this process (not its pid), which runs until the test ends."""
    import threading

    said, done = {}, threading.Event()
    thread = threading.Thread(target=lambda: (said.setdefault("tid", threading.get_native_id()),
                                              done.wait(60)))
    thread.start()
    try:
        while "tid" not in said:
            pass
        yield said["tid"]
    finally:
        done.set()
        thread.join()


# A process whose main thread ends (pthread_exit) while another runs on: /proc shows it as a zombie.
_MAIN_THREAD_EXITS = r"""
import ctypes, threading, time
threading.Thread(target=time.sleep, args=(60,)).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


@pytest.fixture
def main_thread_gone():
    """The pid of a process in UTS and network namespaces of its own whose main thread has exited
    while another thread runs on (its state in /proc is Z by then); killed when the test ends."""
    import subprocess
    import sys

    proc = subprocess.Popen(["unshare", "--uts", "--net", sys.executable, "-c", _MAIN_THREAD_EXITS],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        while True:
            with open(f"/proc/{proc.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
