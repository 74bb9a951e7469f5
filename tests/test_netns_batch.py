"""Several network namespaces of one host converged in one ``pyforkexec.netns.batch`` (what the services
module does for a host's services), on the real kernel, and the sockets made inside a namespace by a
thread (``nsinfo.socket_in``, which every converge now reads a namespace through).

A batch holds the host lock once and reads the host's links once until a converge changes them: the
second of two namespaces on one new bridge must see the bridge the first made (a kept, stale read would
create it again and fail), and the result must be what converging them one by one gives.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.bridged import bridged_names
from helpers.cli import run
from helpers.marks import needs_root

from pyforkexec import netns, nsinfo
from pyforkexec.netns import options as netns_options

pytestmark = needs_root

PID = os.getpid() % 100000
SUBNET = "10.214.7"


@pytest.fixture
def names() -> Iterator[dict]:
    """Two namespaces with a veth each on one bridge (unique names), removed whatever happens."""
    with bridged_names("bt", 2) as found:
        yield found


def doc(names: dict, i: int) -> dict:
    return netns_options.load(dict(
        name=names["netns"][i],
        bridges=[dict(name=names["bridge"], addresses=[f"{SUBNET}.1/24"])],
        veths=[dict(name="eth0", peer=names["peers"][i], bridge=names["bridge"],
                    addresses=[f"{SUBNET}.{10 + i}/24"])],
        gateway=[f"{SUBNET}.1"]))


def ns_links(name: str) -> dict[str, list[str]]:
    """{link: its addresses} inside netns ``name``, read with iproute2."""
    res = run(["ip", "-n", name, "-j", "address", "show"])
    assert res.returncode == 0, res.stderr
    return {link["ifname"]: sorted(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                                   if a["family"] == "inet")
            for link in json.loads(res.stdout)}


def host_master(link: str) -> str:
    res = run(["ip", "-j", "link", "show", link])
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)[0].get("master")


def test_a_batch_wires_two_namespaces_on_one_new_bridge_as_one_by_one_does(names: dict) -> None:
    with netns.batch():
        planned = [netns.converge(name, doc(names, i), check=True) for i, name in enumerate(names["netns"])]
        first, second = (netns.converge(name, doc(names, i)) for i, name in enumerate(names["netns"]))
    assert f"create_bridge {names['bridge']}" in first.actions
    assert not any(line.startswith("create_bridge") for line in second.actions), second.actions
    assert [p.actions for p in planned] == [first.actions, second.actions]  # check mode foresaw both
    for i, name in enumerate(names["netns"]):
        assert ns_links(name)["eth0"] == [f"{SUBNET}.{10 + i}/24"]
        assert host_master(names["peers"][i]) == names["bridge"]
    # nothing left to do, in a batch or one by one
    def rerun() -> list[list[str]]:
        return [netns.converge(name, doc(names, i)).actions for i, name in enumerate(names["netns"])]

    with netns.batch():
        assert rerun() == [[], []]
    assert rerun() == [[], []]
    # a change of the bridge they share: made once, by the first; check mode says so too
    def moved(i: int) -> dict:
        wanted = doc(names, i)
        wanted["bridges"][0]["addresses"] = [f"{SUBNET}.1/24", f"{SUBNET}.254/24"]
        return wanted

    with netns.batch():
        planned = [netns.converge(name, moved(i), check=True) for i, name in enumerate(names["netns"])]
        done = [netns.converge(name, moved(i)) for i, name in enumerate(names["netns"])]
    assert [d.actions for d in done] == [[f"add_addr host {names['bridge']} {SUBNET}.254/24"], []]
    assert [p.actions for p in planned] == [d.actions for d in done]
    # removed in a batch: the first removal keeps the bridge (the second's veth is on it), the second
    # sees the first's veth gone and removes the bridge too; check mode foresees it
    with netns.batch():
        foreseen = [netns.converge(name, None, check=True).actions for name in names["netns"]]
        gone = [netns.converge(name, None) for name in names["netns"]]
    assert foreseen == [g.actions for g in gone]
    assert not any(line.startswith("del_bridge") for line in gone[0].actions), gone[0].actions
    assert f"del_bridge {names['bridge']}" in gone[1].actions
    assert run(["ip", "link", "show", names["bridge"]]).returncode != 0


def lock_taken_elsewhere() -> bool:
    """Whether another process finds the host lock of the netns converges taken (other tests of a
    parallel run may hold it for a moment: only "taken" is a sure answer)."""
    return subprocess.run(["flock", "-n", netns.LOCK_PATH, "true"], check=False).returncode != 0


def lock_free_for_others() -> bool:
    """Whether another process gets the lock within a minute (once no converge holds it)."""
    return subprocess.run(["flock", "-w", "60", netns.LOCK_PATH, "true"], check=False).returncode == 0


def test_a_batch_holds_the_host_lock_for_its_whole_length(names: dict) -> None:
    if shutil.which("flock") is None:
        pytest.skip("flock (util-linux) is not installed")
    with netns.batch():
        netns.converge(names["netns"][0], doc(names, 0))
        assert lock_taken_elsewhere()
        with netns.batch():  # nested: the outer one stands
            netns.converge(names["netns"][1], doc(names, 1))
        assert lock_taken_elsewhere()
    assert lock_free_for_others()


def test_socket_in_makes_a_socket_of_the_namespace_and_leaves_the_caller_where_it_was(names: dict) -> None:
    netns.converge(names["netns"][0], doc(names, 0))
    mine = os.stat("/proc/thread-self/ns/net").st_ino
    fds = sorted(os.listdir("/proc/self/fd"))
    path = netns.netns_path(names["netns"][0])
    with nsinfo.socket_in(path, "net", socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # bound in the namespace, its address is the namespace's own
        sock.bind((f"{SUBNET}.10", 0))
        with pytest.raises(OSError):  # no such address on the host
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind((f"{SUBNET}.10", 0))
    assert os.stat("/proc/thread-self/ns/net").st_ino == mine
    assert sorted(os.listdir("/proc/self/fd")) == fds


def test_an_ipv6_address_made_in_a_namespace_can_be_bound_at_once(names: dict) -> None:
    """A service started right after the wiring binds its IPv6 address: no duplicate address detection
    holds it tentative (EADDRNOTAVAIL for a second or two, which failed every such service's start)."""
    wanted = doc(names, 0)
    wanted["veths"][0]["addresses"].append("fd14:7::10/64")
    netns.converge(names["netns"][0], netns_options.load(dict(wanted, name=names["netns"][0])))
    path = netns.netns_path(names["netns"][0])
    with nsinfo.socket_in(path, "net", socket.AF_INET6, socket.SOCK_STREAM) as sock:
        sock.bind(("fd14:7::10", 0))
    res = run(["ip", "-n", names["netns"][0], "-6", "address", "show", "dev", "eth0"])
    line = next(x for x in res.stdout.splitlines() if "fd14:7::10/64" in x)
    assert "tentative" not in line, res.stdout


def test_socket_in_a_namespace_that_is_not_there_fails_and_leaves_nothing_open() -> None:
    fds = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        nsinfo.socket_in(f"/run/netns/pfe-missing-{PID}", "net", socket.AF_NETLINK, socket.SOCK_DGRAM)
    with pytest.raises(OSError):  # not a namespace file
        nsinfo.socket_in("/dev/null", "net", socket.AF_NETLINK, socket.SOCK_DGRAM)
    with pytest.raises(ValueError, match="network or UTS namespaces only"):
        nsinfo.socket_in("/proc/self/ns/mnt", "mount", socket.AF_UNIX, socket.SOCK_STREAM)
    assert sorted(os.listdir("/proc/self/fd")) == fds


def test_create_makes_a_namespace_in_a_thread_and_leaves_the_caller_where_it_was(
        names: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """No forked helper (pyroute2's netns.create forks one and gives up after 2 s on a busy host):
    with os.fork refused, the namespace is still made, and is neither the host's nor the caller's."""
    from pyforkexec.netns import kernel

    name = names["netns"][0]
    mine = os.stat("/proc/thread-self/ns/net").st_ino
    fds = sorted(os.listdir("/proc/self/fd"))

    def no_fork() -> int:
        raise AssertionError("netns creation forked")

    monkeypatch.setattr(os, "fork", no_fork)
    os.close(kernel.create(*kernel._pyroute2(), name))  # (an fd of what it made: netns._Pin)
    monkeypatch.undo()
    made = os.stat(netns.netns_path(name)).st_ino
    assert made not in (mine, nsinfo.host_inode("net"))
    assert os.path.ismount(netns.netns_path(name))
    assert os.stat("/proc/thread-self/ns/net").st_ino == mine
    assert sorted(os.listdir("/proc/self/fd")) == fds
    # the namespace is usable: its loopback is there, down
    assert "lo" in run(["ip", "-n", name, "-o", "link"]).stdout

    # a second create of the same name fails and leaves the first one as it was
    with pytest.raises(FileExistsError):
        kernel.create(*kernel._pyroute2(), name)
    assert os.stat(netns.netns_path(name)).st_ino == made
    assert os.path.ismount(netns.netns_path(name))


def test_create_as_an_unprivileged_uid_fails_and_leaves_nothing(names: dict, unprivileged: Any) -> None:
    from pyforkexec.netns import kernel

    name = names["netns"][1]

    def attempt() -> str:
        try:
            kernel.create(*kernel._pyroute2(), name)
        except OSError as e:
            return f"{type(e).__name__} {e.errno}"
        return "created"

    assert unprivileged(attempt) == "PermissionError 1"
    assert not os.path.lexists(netns.netns_path(name))


def test_create_interrupted_goes_on_once_the_namespace_is_made(names: dict) -> None:
    """A KeyboardInterrupt that reaches the caller while the creating thread works waits for that
    thread: the namespace is made (its mount is there to remove), no thread is left, the caller's
    namespace is its own."""
    import signal
    import threading
    import time

    from pyforkexec.netns import kernel

    real = kernel._pyroute2()[1]
    name = names["netns"][0]
    mine = os.stat("/proc/thread-self/ns/net").st_ino

    class InterruptedMeanwhile:
        """pyroute2's netns, with SIGINT sent to the caller's thread just before the real attach."""

        def attach(self, netns: str, pid: str, libc: Any) -> None:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(0.05)  # the caller is interrupted in its wait meanwhile
            real.attach(netns, pid, libc=libc)

    assert threading.current_thread() is threading.main_thread()
    fds = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(KeyboardInterrupt):
        kernel.create(kernel._pyroute2()[0], InterruptedMeanwhile(), name)
    assert os.path.ismount(netns.netns_path(name))
    assert sorted(os.listdir("/proc/self/fd")) == fds  # (the fd of what it made, closed by the undo)
    assert not [t for t in threading.enumerate() if t.name == "pyforkexec-netns-create"]
    assert os.stat("/proc/thread-self/ns/net").st_ino == mine


def test_a_namespace_has_its_mark_before_its_name(names: dict) -> None:
    """The alias that makes a namespace ours (on its lo) was set after the namespace was attached at
    /run/netns/NAME: a converge killed outright in between left a namespace under that name that
    absent took for one made by hand and kept for good (a SIGKILL sweep found it). The creating
    thread now marks it before the attach names it: this attach looks from inside, at that moment."""
    import threading

    from pyforkexec.netns import kernel
    from pyforkexec.netns.model import NETNS_ALIAS

    pyroute2, real = kernel._pyroute2()
    name = names["netns"][0]
    seen: list[object] = []

    class LookingAtAttach:
        """pyroute2's netns, reading lo's alias in the creating thread just before the real attach."""

        def attach(self, netns: str, pid: str, libc: Any) -> None:
            assert threading.current_thread().name == "pyforkexec-netns-create"
            with pyroute2.IPRoute() as ns:  # the thread's namespace: the new one
                seen.append(ns.get_links(ns.link_lookup(ifname="lo")[0])[0].get_attr("IFLA_IFALIAS"))
            real.attach(netns, pid, libc=libc)

    os.close(kernel.create(pyroute2, LookingAtAttach(), name))
    assert seen == [NETNS_ALIAS]
    assert f"alias {NETNS_ALIAS}" in run(["ip", "-n", name, "link", "show", "lo"]).stdout


def test_a_namespace_made_and_removed_starts_no_ldconfig(names: dict, monkeypatch: Any) -> None:
    """pyroute2's netns functions find libc with ctypes.util.find_library (``ldconfig -p``, a process
    per module run) unless given one: create and remove give this process's own."""
    import ctypes.util

    from pyforkexec.netns import kernel

    def refused(name: str) -> None:
        raise AssertionError(f"find_library({name!r}) called")

    pyroute2_netns = kernel._pyroute2()[1]
    monkeypatch.setattr(pyroute2_netns, "__libc", None)  # what an earlier lookup of this process kept
    monkeypatch.setattr(ctypes.util, "find_library", refused)
    name = names["netns"][0]
    assert "create_netns" in netns.converge(name, doc(names, 0)).actions[0]
    assert os.path.ismount(netns.netns_path(name))
    assert any(a.startswith("delete_netns") for a in netns.converge(name, None).actions)
    assert not os.path.lexists(netns.netns_path(name))


def _host_links() -> set[str]:
    return {link["ifname"] for link in json.loads(run(["ip", "-j", "link", "show"]).stdout)}


def test_a_bridge_on_a_subnet_the_host_has_is_refused_before_anything_changes(names: dict) -> None:
    """A bridge whose subnet another host link's address covers: the host would route it to both
    links, and which one wins changes when either flaps (the host could lose its own network).
    Refused naming both, in check mode too, with nothing made; and so is a second bridge of one batch
    on a subnet the first just took."""
    taken, peer = f"pfeov{PID}a", f"pfeov{PID}b"
    other = f"{names['bridge']}2"
    assert run(["ip", "link", "add", taken, "type", "veth", "peer", "name", peer]).returncode == 0
    try:
        assert run(["ip", "address", "add", f"{SUBNET}.200/24", "dev", taken]).returncode == 0
        for check in (True, False):
            with pytest.raises(netns.ModelError, match=rf"^bridges: {SUBNET}\.1/24 on host link "
                               rf"{names['bridge']} overlaps {SUBNET}\.200/24 of host link {taken}: "):
                netns.converge(names["netns"][0], doc(names, 0), check=check)
        assert not os.path.lexists(netns.netns_path(names["netns"][0]))
        assert not {names["bridge"], names["peers"][0]} & _host_links()
        run(["ip", "link", "del", taken])

        def on_other(i: int) -> dict:
            d = doc(names, i)
            d["bridges"][0]["name"] = d["veths"][0]["bridge"] = other
            return d

        for check in (True, False):
            with netns.batch():
                netns.converge(names["netns"][0], doc(names, 0), check=check)
                with pytest.raises(netns.ModelError, match=rf"^bridges: {SUBNET}\.1/24 on host link {other} "
                                   rf"overlaps {SUBNET}\.1/24 of host link {names['bridge']}: "):
                    netns.converge(names["netns"][1], on_other(1), check=check)
        assert not os.path.lexists(netns.netns_path(names["netns"][1])) and other not in _host_links()
    finally:
        run(["ip", "link", "del", taken])
        run(["ip", "link", "del", other])


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_a_netns_name_whose_file_is_no_namespace_is_refused_and_left(names: dict, kind: str) -> None:
    """/run/netns/NAME that is no network namespace (a mount point whose mount went away: made in
    another mount namespace, or an ``ip netns add`` cut short): neither made nor removed over it, a
    ModelError naming the path rather than EINVAL from a setns halfway."""
    path = netns.netns_path(names["netns"][0])
    os.makedirs(netns.NETNS_DIR, exist_ok=True)
    if kind == "file":
        open(path, "x").close()
    else:
        os.mkdir(path)
    try:
        for options in (doc(names, 0), None):
            for check in (True, False):
                with pytest.raises(netns.ModelError, match=rf"^name: {path} is not a network namespace \(a "):
                    netns.converge(names["netns"][0], options, check=check)
        assert os.path.lexists(path) and names["bridge"] not in _host_links()
    finally:
        (os.rmdir if kind == "directory" else os.unlink)(path)


# In a network and mount namespace of its own (util-linux unshare), with a private /run/netns: the name
# "h" bound to that namespace itself, as `ip netns attach h PID` binds a process's. The script prints
# the default route and a sysctl before and after `netns --check up` and `netns up` of a document that
# sets the sysctl and has no gateway (the converge's plan deletes a default route it finds inside).
_OWN_NETNS_SCRIPT = """
mount -t tmpfs h /run/netns && ip link set lo up && ip route add default dev lo || exit 99
ip netns attach h $$ || exit 99
echo '{"name": "h", "sysctls": {"net.ipv4.conf.all.arp_announce": 2}}' > /run/netns/doc.json
state() { echo "$(ip route show default | wc -l) $(cat /proc/sys/net/ipv4/conf/all/arp_announce)"; }
state
"$0" netns --check up /run/netns/doc.json 2>&1; echo "rc=$?"
"$0" netns up /run/netns/doc.json 2>&1; echo "rc=$?"
state
"""


def test_a_netns_name_bound_to_the_callers_own_namespace_is_refused() -> None:
    """/run/netns/NAME bound to the converging process's own network namespace: the converge took it
    for the named one, and planned (and made) its changes there: the default route deleted, the sysctl
    written, on the host. A ModelError naming the path now, before anything changes."""
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("ip") is None:
        pytest.skip("util-linux unshare and iproute2 ip are needed")
    from helpers.cli import PYFORKEXEC

    res = run([unshare, "--mount", "--net", "sh", "-c", _OWN_NETNS_SCRIPT, PYFORKEXEC])
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and lines[0] == "1 0", (res.stdout, res.stderr)
    refusal = "pyforkexec: netns h: name: /run/netns/h is this process's own network namespace"
    assert lines[1].startswith(refusal) and lines[2] == "rc=125", res.stdout
    assert lines[3].startswith(refusal) and lines[4] == "rc=125", res.stdout
    assert lines[5:] == ["1 0"], res.stdout  # the route and the sysctl as they were


def test_a_thread_that_must_join_another_namespace_refuses_the_callers_own(tmp_path) -> None:
    """The join of a named netns's thread (socket_in, _in_netns) refuses a file that is the caller's
    own namespace, told from the fd it joins: a name rebound after the converge looked at it."""
    path = str(tmp_path / "own")
    open(path, "x").close()
    assert run(["mount", "--bind", "/proc/self/ns/net", path]).returncode == 0
    try:
        with pytest.raises(OSError, match="is this process's own net namespace") as e:
            nsinfo.socket_in(path, "net", socket.AF_NETLINK, socket.SOCK_DGRAM, 0, others_only=True)
        assert e.value.errno == errno.EEXIST
        nsinfo.socket_in(path, "net", socket.AF_NETLINK, socket.SOCK_DGRAM, 0).close()  # (not asked: joined)
    finally:
        run(["umount", path])


def test_a_ctrl_c_during_a_converge_is_raised_once_its_plan_is_carried_out(
        names: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted between a bridge's creation and the alias that makes it ours, the converge left a
    bridge the next one took for someone else's (and a removal left on the host): the signal is
    raised once the plan is carried out, and the namespace is whole, ours, and removed whole."""
    import signal

    from pyforkexec.netns import kernel

    real_index, sent = kernel._Handles.index, []

    def index(self: Any, side: str, ifname: str) -> int:
        if ifname == names["bridge"] and not sent:  # looked up between the link's add and its alias
            sent.append(ifname)
            os.kill(os.getpid(), signal.SIGINT)
        return real_index(self, side, ifname)

    monkeypatch.setattr(kernel._Handles, "index", index)
    with pytest.raises(KeyboardInterrupt):
        netns.converge(names["netns"][0], doc(names, 0))
    monkeypatch.undo()
    assert sent and netns.converge(names["netns"][0], doc(names, 0)).actions == []
    netns.converge(names["netns"][0], None)
    assert not {names["bridge"], names["peers"][0]} & _host_links()


def test_a_ctrl_c_during_the_open_of_the_host_lock_leaves_it_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT handled right after the host lock's file is opened, before its fd is stored: the fd (and
    with it the lock, once taken) must not stay open in the caller."""
    import signal

    real_open, opened = os.open, []

    def open_then_signal(name, *args, **kwargs):
        fd = real_open(name, *args, **kwargs)
        if name == netns.LOCK_PATH:
            opened.append(fd)
            signal.raise_signal(signal.SIGINT)
        return fd

    monkeypatch.setattr(os, "open", open_then_signal)
    with pytest.raises(KeyboardInterrupt):
        netns.converge(f"pfe-lock-{os.getpid()}", None)
    monkeypatch.undo()
    assert opened
    left = os.path.exists(f"/proc/self/fd/{opened[0]}") and os.readlink(f"/proc/self/fd/{opened[0]}")
    assert left != netns.LOCK_PATH, "the lock file's fd was left open"


def test_the_host_lock_is_where_no_other_user_can_take_it_first(tmp_path, monkeypatch) -> None:
    """In the world-writable /run/lock any user could make the lock file first and hold its lock: every
    converge (boot units included) then waited for ever. Its directory is root's alone, and one that
    is not (a /run a container made 1777, a directory another user made first) is refused."""
    from pyforkexec import host_lock

    with host_lock.host_lock("netns"):
        st = os.stat(os.path.dirname(netns.LOCK_PATH))
        assert st.st_uid == 0 and not st.st_mode & 0o022, oct(st.st_mode)
    shared = tmp_path / "locks"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setattr(host_lock, "LOCK_DIR", str(shared))
    with pytest.raises(OSError, match=r"is not a directory root's alone"), host_lock.host_lock("netns"):
        pass
    assert os.listdir(shared) == []
