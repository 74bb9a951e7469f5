"""The Python side of tests/test_go_differential.py: pyforkexec.fork_exec + os.waitpid on the ProcAttr
document go_forkexec (main.go) reads, with the same fd names, "session" and "pgid": "caller". Prints one
JSON line: {"status": ...} once the program ran, {"errno": n, "step": ..., "field": ...} for a ChildError
or an OSError, {"refused": text} for a ValueError or TypeError raised before any process exists."""
import fcntl
import json
import os
import sys
import termios

from pyforkexec import Credential, ProcAttr, SysProcAttr, SysProcIDMap, fork_exec
from pyforkexec.errors import ChildError

_opened = {"in": 0, "out": 1, "err": 2}


def _fd(value):
    if isinstance(value, int):
        return value
    if value not in _opened:
        if value == "null":
            _opened[value] = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        elif value == "fa":
            _opened[value] = os.open(os.environ["H_FA"], os.O_RDWR | os.O_CLOEXEC)
        elif value == "cg":
            _opened[value] = os.open(os.environ["H_CG"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        elif value == "hi":
            fd = os.open(os.environ["H_FA"], os.O_RDONLY | os.O_CLOEXEC)
            os.dup2(fd, 40, inheritable=False)
            os.close(fd)
            _opened[value] = 40
        elif value == "pty":
            master, slave = os.openpty()  # O_NOCTTY: openpty never makes it the caller's terminal
            _opened["ptm"] = master
            _opened[value] = slave
        else:
            raise SystemExit(f"unknown fd {value!r}")
    return _opened[value]


def _maps(value):
    return None if value is None else [SysProcIDMap(c, h, s) for c, h, s in value]


def main() -> None:
    doc = json.load(sys.stdin)
    s = doc.get("sys", {})
    if doc.get("session"):  # a session of its own with the pty as its controlling terminal
        os.setsid()
        fcntl.ioctl(_fd("pty"), termios.TIOCSCTTY, 0)
    pgid = s.get("pgid", 0)
    cred = s.get("credential")
    attrs = SysProcAttr(
        chroot=s.get("chroot", ""),
        credential=None if cred is None else Credential(cred["uid"], cred["gid"],
                                                        tuple(cred.get("groups") or ()),
                                                        cred.get("no_setgroups", False)),
        setsid=s.get("setsid", False), setpgid=s.get("setpgid", False),
        pgid=os.getpgrp() if pgid == "caller" else pgid,
        setctty=s.get("setctty", False), noctty=s.get("noctty", False),
        ctty=_fd(s["ctty"]) if "ctty" in s else 0, foreground=s.get("foreground", False),
        pdeathsig=s.get("pdeathsig", 0), cloneflags=s.get("cloneflags", 0),
        unshareflags=s.get("unshareflags", 0),
        uid_mappings=_maps(s.get("uid_mappings")), gid_mappings=_maps(s.get("gid_mappings")),
        gid_mappings_enable_setgroups=s.get("gid_mappings_enable_setgroups", False),
        ambient_caps=tuple(s.get("ambient_caps") or ()), use_cgroup_fd=s.get("use_cgroup_fd", False),
        cgroup_fd=_fd(s["cgroup_fd"]) if "cgroup_fd" in s else 0, pidfd=s.get("pidfd", False))
    attr = ProcAttr(dir=doc.get("dir") or None, env=doc.get("env"), files=[_fd(f) for f in doc["files"]],
                    sys=attrs)
    try:
        pid = fork_exec(doc["argv0"], doc["argv"], attr)
    except ChildError as e:
        out = {"errno": e.errno, "step": e.location.name, "field": e.field}
    except (ValueError, TypeError) as e:
        out = {"refused": f"{type(e).__name__}: {e}"}
    except OSError as e:
        out = {"errno": e.errno, "error": str(e)}
    else:
        try:
            out = {"status": os.waitpid(pid, 0)[1]}
        except OSError as e:
            out = {"wait_errno": e.errno}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
