"""A caller in a PID namespace of its own whose /proc is an ancestor namespace's (a container or
``unshare --pid --fork`` without its own /proc): there its pids (os.getpid(), a child's) are not the
numbers /proc gives the processes, and a file the parent writes or binds for its child by
``/proc/PID`` must be found by the number /proc has for it (pyforkexec.proc_pid), not be another
process's. Each test runs a script as PID 1 of such a namespace (util-linux unshare, no --mount-proc)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a PID namespace, mounts)"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare"),
]


def in_pid_namespace(script: str, *args: str) -> dict:
    """``script`` run by this Python as PID 1 of a new PID namespace that keeps this /proc, in a mount
    namespace of its own (its binds go with it): its JSON answer (its last line on stdout)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    res = subprocess.run(["unshare", "--pid", "--fork", "--mount", "--propagation=private", sys.executable,
                          "-c", textwrap.dedent(script), *args],
                         capture_output=True, text=True, timeout=120, check=False, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def test_the_scripts_proc_is_not_its_namespace_s() -> None:
    # What the other tests rest on: os.getpid() is 1 there, /proc/self another number.
    out = in_pid_namespace("""
        import json, os
        from pyforkexec.proc_pid import own_proc, proc_pid
        print(json.dumps(dict(pid=os.getpid(), self=os.readlink("/proc/self"), own=own_proc(),
                              found=proc_pid(os.getpid()))))
    """)
    assert out["pid"] == 1 and not out["own"]
    assert out["found"] == int(out["self"]) != 1


def test_a_user_namespace_child_gets_the_maps_the_parent_writes() -> None:
    # More than one id: the parent writes the maps, by /proc/PID of the child (Go's order).
    out = in_pid_namespace("""
        import json, os
        import pyforkexec as fe
        m = [fe.SysProcIDMap(container_id=0, host_id=100000, size=65536)]
        attr = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER, uid_mappings=m, gid_mappings=m)
        try:
            res = fe.run(["/bin/cat", "/proc/self/uid_map"], sys=attr, capture_output=True, text=True)
            print(json.dumps(dict(rc=res.returncode, map=res.stdout.split())))
        except OSError as e:
            print(json.dumps(dict(error=str(e))))
    """)
    assert out == dict(rc=0, map=["0", "100000", "65536"])


def test_unshare_binds_the_namespace_of_its_command(tmp_path) -> None:
    # pyforkexec unshare --uts=FILE binds /proc/PID/ns/uts of the command it started: the command's.
    target = tmp_path / "uts"
    target.touch()
    out = in_pid_namespace("""
        import json, os, subprocess, sys
        target = sys.argv[1]
        res = subprocess.run([sys.executable, "-m", "pyforkexec", "unshare", f"--uts={target}", "--",
                              "/bin/readlink", "/proc/self/ns/uts"], capture_output=True, text=True)
        bound = os.stat(target).st_ino if os.path.ismount(target) else None
        print(json.dumps(dict(rc=res.returncode, err=res.stderr, ns=res.stdout.strip(), bound=bound)))
    """, str(target))
    assert out["rc"] == 0, out["err"]
    assert out["ns"] == f"uts:[{out['bound']}]"


def test_a_lock_s_holder_is_named_by_its_pid_here(tmp_path) -> None:
    # host_lock.holders reads every process's fds in /proc: the holder (a child given the lock's fd) is
    # given by its pid in the caller's namespace, the one kill and pidfd_open take.
    out = in_pid_namespace("""
        import fcntl, json, os, subprocess, sys
        from pyforkexec import host_lock
        fd = os.open(os.path.join(sys.argv[1], "h128.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                  stdin=subprocess.PIPE, pass_fds=(fd,))
        os.close(fd)
        fd = os.open(os.path.join(sys.argv[1], "h128.lock"), os.O_RDONLY | os.O_CLOEXEC)
        found = [h.pid for h in host_lock.holders(fd)]
        holder.stdin.close()
        holder.wait()
        print(json.dumps(dict(found=found, holder=holder.pid)))
    """, str(tmp_path))
    assert out["found"] == [out["holder"]]


def test_a_daemon_s_name_is_held_by_its_pid_here(tmp_path) -> None:
    # singleton.held_by, asked with the pid file's pid (the daemon's own os.getpid()) or without: the
    # holder found is that pid, which the service module signals.
    out = in_pid_namespace("""
        import json, os, signal, sys
        from pyforkexec.service import singleton
        pid_file = os.path.join(sys.argv[1], "h128.pid")
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            singleton.claim(pid_file)
            os.write(w, b".")
            signal.pause()  # holds the name until killed
            os._exit(0)
        os.close(w)
        os.read(r, 1)
        hinted, found = singleton.held_by(pid_file, child), singleton.held_by(pid_file)
        os.kill(child, 9)
        os.waitpid(child, 0)
        print(json.dumps(dict(child=child, hinted=hinted and hinted.pid, found=found and found.pid)))
    """, str(tmp_path))
    assert out["hinted"] == out["found"] == out["child"]


def test_nsenter_enters_the_namespaces_and_root_of_one_process() -> None:
    # pyforkexec nsenter --target=PID -a: the namespaces through a pidfd of PID (this namespace's pid),
    # the root, working directory and environment through /proc: the same process's.
    out = in_pid_namespace("""
        import json, subprocess, sys
        target = subprocess.Popen(["unshare", "--uts", "--mount", "--propagation=private", "sh", "-c",
                                   "hostname h128-t && mount -t tmpfs none /mnt && touch /mnt/h128-inside "
                                   "&& echo ready && exec sleep 60"], stdout=subprocess.PIPE, text=True)
        target.stdout.readline()
        res = subprocess.run([sys.executable, "-m", "pyforkexec", "nsenter", f"--target={target.pid}", "-a",
                              "--", "sh", "-c", "hostname; ls /mnt"], capture_output=True, text=True)
        target.kill()
        target.wait()
        print(json.dumps(dict(rc=res.returncode, out=res.stdout.split(), err=res.stderr)))
    """)
    assert (out["rc"], out["err"]) == (0, "")
    assert out["out"] == ["h128-t", "h128-inside"]


def test_an_idmapped_mount_maps_to_the_child_s_user_namespace(tmp_path) -> None:
    # Mount.bind(idmap=True): the mount is idmapped to a user namespace like the child's, opened by the
    # parent through /proc/PID/ns/user of a helper child: the helper's, not another process's.
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    (shared / "host-root").touch()
    out = in_pid_namespace("""
        import json, os, sys
        import pyforkexec as fe
        from pyforkexec.sandbox.caps import Capabilities
        maps = [fe.SysProcIDMap(0, 100000, 65536)]
        attr = fe.SysProcAttr(cloneflags=fe.CLONE_NEWUSER | fe.CLONE_NEWNS, credential=fe.Credential(0, 0),
                              uid_mappings=maps, gid_mappings=maps, capabilities=Capabilities(),
                              mounts=[fe.Mount.bind(sys.argv[1], "/mnt", mkdir=False, idmap=True)])
        script = "stat -c %u:%g /mnt/host-root; touch /mnt/made && stat -c %u:%g /mnt/made"
        res = fe.run(["/bin/sh", "-c", script], sys=attr, capture_output=True, text=True)
        st = os.stat(os.path.join(sys.argv[1], "made")) if res.returncode == 0 else None
        print(json.dumps(dict(rc=res.returncode, err=res.stderr, seen=res.stdout.split(),
                              host=st and f"{st.st_uid}:{st.st_gid}")))
    """, str(shared))
    assert (out["rc"], out["err"]) == (0, "")
    assert out["seen"] == ["0:0", "0:0"] and out["host"] == "0:0"  # host root is the child's root
