"""The isolation options table (module_utils/isolation.py ISOLATION_OPTIONS) against what repeats it:
the doc fragment ``pyforkexec.isolation.isolation`` (static YAML, for ansible-doc) and the role
isolated_service's argument specs of a service. A test fails when they disagree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.pyforkexec.isolation.plugins.doc_fragments.isolation import ModuleDocFragment
from ansible_collections.pyforkexec.isolation.plugins.module_utils import isolation as iso

# What the argument spec and its documentation share (the rules between sub-options are the spec's).
KEYS = ("type", "elements", "choices", "default", "required")


def _collection_root():
    here = Path(__file__).resolve()
    return next(p for p in here.parents if (p / "galaxy.yml").exists())


def _shape(spec, with_defaults=True):
    """An argument spec (or a documented option) reduced to what both must say alike."""
    out = {}
    for key in KEYS:
        value = spec.get(key)
        if key == "required":
            value = bool(value)
        elif key == "default" and (not with_defaults or value is None):
            continue
        elif key == "choices" and value is not None:
            value = list(value)
        if value is not None and value is not False:
            out[key] = value
    subs = spec.get("options") or spec.get("suboptions")
    if subs:
        out["options"] = {name: _shape(sub, with_defaults) for name, sub in subs.items()}
    return out


def test_table_is_the_argument_spec():
    assert list(iso.ISOLATION_ARGSPEC) == [option.name for option in iso.ISOLATION_OPTIONS]
    assert len({option.name for option in iso.ISOLATION_OPTIONS}) == len(iso.ISOLATION_OPTIONS)


def test_table_fields_are_sysprocattr_fields():
    import dataclasses

    import pyforkexec

    have = {f.name for f in dataclasses.fields(pyforkexec.SysProcAttr)}
    for option in iso.ISOLATION_OPTIONS:
        assert set(option.fields + option.also) <= have, option.name


def test_option_of_field_from_table():
    assert iso.OPTION_OF_FIELD["sys.setns"] == "netns/join"
    assert iso.OPTION_OF_FIELD["sys.cloneflags"] == "namespaces/cloneflags"
    assert iso.OPTION_OF_FIELD["sys.pivot_root"] == "rootfs"
    assert iso.OPTION_OF_FIELD["sys.uid_mappings"] == "uid_map"


def test_doc_fragment_documents_the_table():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert list(documented) == list(iso.ISOLATION_ARGSPEC), "the doc fragment lists other options"
    for name, spec in iso.ISOLATION_ARGSPEC.items():
        assert _shape(documented[name]) == _shape(spec), name
        assert documented[name].get("description"), name


def _role_service_options():
    path = _collection_root() / "roles/isolated_service/meta/argument_specs.yml"
    specs = yaml.safe_load(path.read_text())
    return specs["argument_specs"]["main"]["options"]["isolated_service_services"]["options"]


def _without_options(shape):
    return {k: v for k, v in shape.items() if k != "options"}


def _without_path(shape):
    return dict(shape, options={k: v for k, v in shape["options"].items() if k != "path"})


# Role service options that are the module's under the same name but say less (defaults are never
# compared: the role takes them from its own variables, isolated_service_namespaces, the user...).
ROLE_DIFFERS = {
    "seccomp": _without_options,  # passed through as it is: the module's argument spec checks it
    "cgroup": _without_path,  # the role's service cgroup is always its unit's (or the daemon's own)
}


@pytest.mark.parametrize("name", [option.name for option in iso.ISOLATION_OPTIONS])
def test_role_service_option_matches_the_table(name):
    role = _role_service_options()
    if name not in role:
        pytest.skip(f"the role has no service option {name}")
    expected = _shape(iso.ISOLATION_ARGSPEC[name], with_defaults=False)
    expected = ROLE_DIFFERS.get(name, lambda shape: shape)(expected)
    assert _shape(role[name], with_defaults=False) == expected


# One value of each option that differs from its default: the builder must turn it into exactly the
# SysProcAttr fields the option's row names (``fields`` and ``also``). A new row without a value here
# fails test_every_option_has_an_example.
EXAMPLES = {
    "namespaces": ["uts"],
    "cloneflags": ["CLONE_NEWIPC"],
    "unshareflags": ["CLONE_NEWUTS"],
    "uid_map": [{"container_id": 0, "host_id": 100000, "size": 10}],
    "gid_map": [{"container_id": 0, "host_id": 100000, "size": 10}],
    "map_root_user": True,
    "setgroups": "allow",
    "hostname": "web",
    "domainname": "example.org",
    "netns": "web",
    "join": [{"pid": 1, "namespaces": ["uts"]}],
    "credential": {"uid": 1000, "gid": 1000},
    "capabilities": {"keep": ["CAP_NET_BIND_SERVICE"]},
    "no_new_privs": True,
    "seccomp": {"deny": ["ptrace"]},
    "restrict_suid_sgid": False,
    "restrict_namespaces": ["net"],
    "landlock": {"paths": [{"path": "/usr", "access": ["read", "execute"]}],
                 "ports": [{"port": 8080, "access": ["bind"]}]},
    "rootfs": "/srv/web/root",
    "readonly_root": True,
    "mounts": [{"type": "tmpfs", "target": "/tmp"}],
    "mount_propagation": "slave",
    "cgroup": {"pids_max": 10},
    "rlimits": {"nofile": 1024},
}


def _validated(params):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    result = ArgumentSpecValidator(iso.ISOLATION_ARGSPEC).validate(params)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def _built_fields(params):
    import dataclasses

    base = iso.build_sysprocattr(_validated({}), cgroup_path="/sys/fs/cgroup/t", on_host=False)
    attr = iso.build_sysprocattr(_validated(params), cgroup_path="/sys/fs/cgroup/t", on_host=False)
    return {f.name for f in dataclasses.fields(attr) if getattr(attr, f.name) != getattr(base, f.name)}


def test_every_option_has_an_example():
    assert set(EXAMPLES) == set(iso.ISOLATION_ARGSPEC)


@pytest.mark.parametrize("option", iso.ISOLATION_OPTIONS, ids=lambda option: option.name)
def test_an_option_builds_the_fields_its_row_names(option):
    needs = {"setgroups": {"namespaces": ["user"], "gid_map": [{"container_id": 0, "host_id": 0}]}}
    changed = _built_fields({**needs.get(option.name, {}), option.name: EXAMPLES[option.name]})
    changed -= set(_built_fields(needs[option.name])) if option.name in needs else set()
    named = set(option.fields + option.also)
    assert changed, f"{option.name} changed no field"
    assert changed <= named, f"{option.name} also changed {sorted(changed - named)}: its row must say so"
    if option.name != "namespaces":  # namespaces is reported for cloneflags, which it shares
        assert changed == named, f"{option.name} did not build {sorted(named - changed)}"
