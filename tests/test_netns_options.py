"""The options document of ``pyforkexec netns up`` (and of the netns module's persisted file): loaded
with every option filled in, refused with the option named, and dumped so that it loads back."""

from __future__ import annotations

import json

import pytest

from pyforkexec.netns import options as o


def test_load_fills_in_every_option():
    options = o.load({"name": "web", "veths": [{"name": "eth0", "peer": "v0", "addresses": ["10.0.0.2/24"]}]})
    assert options == dict(
        name="web", loopback=True, bridges=[], routes=[], gateway=[], sysctls={},
        veths=[dict(name="eth0", peer="v0", bridge=None, mtu=None, mac=None, peer_mac=None,
                    addresses=["10.0.0.2/24"], peer_addresses=[])])


@pytest.mark.parametrize(("doc", "error"), [
    ([], "the document must be an object, got a list"),
    ({}, "name: missing"),
    ({"name": "web", "vethz": []}, "vethz: unknown field (did you mean veths?)"),
    ({"name": "web", "veths": [{"name": "eth0"}]}, "veths[0].peer: missing"),
    ({"name": "web", "veths": [{"name": "eth0", "peer": "v", "mtu": "big"}]},
     'veths[0].mtu: expected an integer or null, got the string "big"'),
    ({"name": "web", "loopback": "yes"}, 'loopback: expected a boolean, got the string "yes"'),
    ({"name": "web", "routes": [{"dst": "default", "metric": 1.5}]}, "routes[0].metric: expected an integer"),
    ({"name": "web", "sysctls": {"net.x": [1]}}, "sysctls.net.x: expected a string or an integer"),
])
def test_load_names_the_option(doc, error):
    with pytest.raises(o.OptionsError) as e:
        o.load(doc)
    assert str(e.value).startswith(error)


def test_dump_leaves_other_keys_out_and_loads_back(tmp_path):
    params = dict(name="web", state="present", persist=True, gateway=["10.0.0.1"],
                  sysctls={"net.ipv4.ip_forward": True})
    text = o.dump(params)
    assert "state" not in json.loads(text) and "persist" not in json.loads(text)
    path = tmp_path / "web.json"
    path.write_text(text)
    assert o.read(str(path)) == o.load({k: v for k, v in params.items() if k not in ("state", "persist")})
    assert o.dump(o.read(str(path))) == text


def test_read_names_the_file(tmp_path):
    with pytest.raises(o.OptionsError, match=r"cannot read .*/nothing\.json: No such file"):
        o.read(str(tmp_path / "nothing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{name: web}")
    with pytest.raises(o.OptionsError, match=r"bad\.json: not valid JSON"):
        o.read(str(bad))
