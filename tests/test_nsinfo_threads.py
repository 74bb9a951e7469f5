"""Reading another process's namespaces (nsinfo.describe, netns.kernel.net_view_of) from a
multi-threaded caller: a lock another thread holds meanwhile must not hang the call.

A forked helper copies every Python lock as it is at the fork, and one held by another thread stays
held forever in the child: here the import lock of ``pyroute2``, which the helper imported (the
caller had not), held by a thread that is importing pyroute2 itself (a slow import: the collection's
``services`` module and the daemon start services, and import pyroute2, from threads)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from helpers.marks import needs_root

_SCRIPT = textwrap.dedent("""
    import importlib.abc, os, sys, threading, time
    import pyforkexec as fe
    from pyforkexec import nsinfo
    from pyforkexec.netns import kernel

    class SlowImport(importlib.abc.MetaPathFinder):  # a slow disk: pyroute2's import takes a while
        def find_spec(self, name, path, target=None):
            if name == "pyroute2.ipset":
                entered.set()
                time.sleep(3)
            return None

    entered = threading.Event()
    sys.meta_path.insert(0, SlowImport())
    sys_ = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS | fe.CLONE_NEWNET, hostname="pfe-threads")
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=sys_)) as proc:
        try:
            importer = threading.Thread(target=lambda: __import__("pyroute2"))
            importer.start()
            entered.wait()  # the importer holds pyroute2's module lock now
            facts = nsinfo.describe(proc.pid, with_net=kernel.net_view_of)
            importer.join()
        finally:
            proc.kill()
    assert facts["hostname"] == "pfe-threads", facts["hostname"]
    assert sorted(facts["net"]["links"]) == ["lo"], facts["net"]
    mine = {os.stat(f"/proc/self/ns/{k}").st_ino for k in ("net", "uts")}

    def elsewhere():
        out = []
        for task in os.listdir("/proc/self/task"):
            for k in ("net", "uts"):
                try:
                    if os.stat(f"/proc/self/task/{task}/ns/{k}").st_ino not in mine:
                        out.append((task, k))
                except FileNotFoundError:
                    pass  # ended meanwhile
        return out

    # No thread of the caller was left in another namespace. The helper thread that joined one ends
    # there, and the kernel may list it a moment after its Python side was joined (CPython does not
    # pthread_join): it must be gone soon, not linger.
    deadline = time.monotonic() + 5
    while elsewhere() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not elsewhere(), elsewhere()
    print("ok")
""")


@needs_root  # namespaces only root may create or join here
def test_a_lock_held_by_another_thread_does_not_hang_a_namespace_read() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)  # a hang guard, not a timed assertion: it passes in ~3 s
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the caller and its hung helper child
        proc.communicate()
        raise AssertionError("the namespace read hung: its helper waits for a lock another thread held") \
            from None
    assert proc.returncode == 0 and out.strip() == "ok", err


class _SetnsThatDoesNothing:  # a join that silently failed: the thread is still where it was
    @staticmethod
    def setns(fd: int, nstype: int) -> None:
        return None


@needs_root  # namespaces only root may create or join here
def test_a_thread_that_did_not_get_into_the_namespace_reads_nothing(monkeypatch) -> None:
    """Fail closed: the thread checks by inode that it is in the namespace it joined before it reads,
    never the caller's own hostname in its place."""
    import pyforkexec as fe
    from pyforkexec import nsinfo

    sys_ = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUTS, hostname="pfe-threads")
    with fe.start_process("/bin/sleep", ["sleep", "60"], fe.ProcAttr(sys=sys_)) as proc:
        try:
            monkeypatch.setattr(nsinfo, "_child", _SetnsThatDoesNothing)
            path = nsinfo.ns_path(proc.pid, "uts")
            try:
                nsinfo.hostname(proc.pid)
            except OSError as e:
                assert e.filename == path, e
            else:
                raise AssertionError("read a UTS namespace the thread was not in")
        finally:
            proc.kill()
