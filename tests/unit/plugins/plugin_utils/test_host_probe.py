"""The role's look at a host (plugin_utils/host_probe.py), run as the action sends it: the file's source
as ``python -c`` with the host's Python, here this machine's."""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import platform
import pwd
import subprocess
import sys

from ansible_collections.pyforkexec.isolation.plugins.plugin_utils import host_probe


def _probe(venv, accounts=(), roots=(), links=()):
    with open(host_probe.__file__) as f:
        source = f.read()
    done = subprocess.run(
        [sys.executable, "-c", source, str(venv), json.dumps(list(accounts)), json.dumps(list(roots)),
         json.dumps(list(links))],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_it_reads_python_accounts_and_roots(tmp_path):
    root = pwd.getpwuid(0)
    found = _probe(
        tmp_path / "venv", ["root", "pfe-no-such-account"], [str(tmp_path), str(tmp_path / "nope")]
    )
    assert found["version"] == "{}.{}".format(*sys.version_info[:2])
    assert found["machine"] == platform.machine()
    assert found["passwd"] == {
        "root": [root.pw_passwd, "0", str(root.pw_gid), root.pw_gecos, root.pw_dir, root.pw_shell]
    }
    assert found["rootfs"] == {str(tmp_path): True, str(tmp_path / "nope"): False}
    assert found["systemd"] == os.path.isdir("/run/systemd/system")
    assert (found["venv"], found["venv_ok"], found["wheels"]) == (False, False, None)


def test_a_virtualenv_is_ok_when_it_holds_what_the_modules_import(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "wheels.source").write_text("0123abcd\n")
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for dist, package in (
        ("pyforkexec-0.1.0", "pyforkexec"),
        ("pyroute2-0.9.7", "pyroute2"),
        ("Jinja2-3.1.2", None),
    ):
        (site / f"{dist}.dist-info").mkdir(parents=True)
        if package:
            (site / package).mkdir()
            (site / package / "__init__.py").write_text("")
    found = _probe(venv)
    assert (found["venv"], found["venv_ok"], found["jinja2"], found["wheels"]) == (
        True,
        True,
        False,
        "0123abcd",
    )
    (site / "jinja2").mkdir()
    (site / "jinja2" / "__init__.py").write_text("")
    assert _probe(venv)["jinja2"] is True
    (site / "pyroute2" / "__init__.py").unlink()  # installed, but its files are gone
    assert _probe(venv)["venv_ok"] is False
    (venv / "bin" / "python").unlink()
    assert (_probe(venv)["venv"], _probe(venv)["venv_ok"]) == (False, False)


def test_it_sees_the_link_to_the_runtime_in_use_and_the_runtimes_left(tmp_path):
    """The role's layout (files/runtime_switch.py): VENV a link into VENV.runtimes/; the others there
    are left for a converge to remove, a directory of the layout before is no link (due for the move)."""
    venv, runtimes = tmp_path / "venv", tmp_path / "venv.runtimes"
    venv.mkdir()
    found = _probe(venv)
    assert (found["venv_link"], found["runtimes_left"]) == (False, [])
    venv.rmdir()
    for name in ("a.1", "b.2", ".removing-c.3"):
        (runtimes / name).mkdir(parents=True)
    venv.symlink_to("venv.runtimes/b.2")
    found = _probe(venv)
    assert (found["venv_link"], found["runtimes_left"]) == (True, ["a.1"])


def test_pip_and_its_version_are_this_pythons():
    found = _probe("/nonexistent")
    has_pip = importlib.util.find_spec("pip") is not None
    assert found["pip"] == has_pip
    if has_pip:
        from importlib import metadata

        assert found["pip_version"] == metadata.version("pip")


def test_it_names_the_accounts_each_spec_runs_as(tmp_path):
    """A spec's uid map (its host ranges) or else its credential names the accounts it runs as; a spec
    that cannot be read is named apart (then nobody knows who uses what)."""
    root, nobody = pwd.getpwuid(0), pwd.getpwnam("nobody")
    maps = dict(uid_mappings=[dict(container_id=0, host_id=nobody.pw_uid, size=1)], credential=dict(uid=0))
    (tmp_path / "mapped.json").write_text(json.dumps(dict(version=1, argv=["/bin/true"], sys=maps)))
    cred = dict(version=1, argv=["/bin/true"], sys=dict(credential=dict(uid=0)))
    (tmp_path / "cred.json").write_text(json.dumps(cred))
    (tmp_path / "plain.json").write_text(json.dumps(dict(version=1, argv=["/bin/true"])))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "odd.json").write_text(json.dumps(dict(sys=dict(uid_mappings=[dict(host_id="x")]))))
    specs, unreadable = host_probe.spec_accounts(str(tmp_path))
    assert specs == {"cred": {root.pw_name: root.pw_gecos}, "mapped": {nobody.pw_name: nobody.pw_gecos},
                     "plain": {}}
    assert unreadable == ["broken", "odd"]


def test_it_reads_the_host_links_the_services_would_take(tmp_path):
    """The host links of the names the services' veths and bridges take, that exist: their alias and
    whether each is a bridge (plugin_utils/role_problems.host_problems refuses someone else's)."""
    found = _probe(tmp_path / "venv", links=["lo", "pfe-no-such-link", "../lo"])
    assert list(found["links"]) == ["lo"] and found["links"]["lo"]["bridge"] is False


def test_it_names_the_group_of_each_accounts_gid():
    root, nobody = pwd.getpwuid(0), pwd.getpwnam("nobody")
    found = _probe("/nonexistent", ["root", "nobody", "pfe-no-such-account"])
    assert found["primary_groups"] == {"root": grp.getgrgid(root.pw_gid).gr_name,
                                       "nobody": grp.getgrgid(nobody.pw_gid).gr_name}
    assert host_probe.primary_group(["x", "0", "4294967294"]) is None  # (a gid no group has)
