"""Every bad input ends the CLI cleanly: one line on stderr (util-linux's pointer to ``--help`` at its end
for a command line getopt refuses), the documented status, no traceback, and no process started for a
bad document or option.

The corpus (tests/corpus: spec documents in specs/ with the expected message in specs.txt, netns
documents in netns/ with theirs in netns.txt, command lines in options.txt) runs through the real
console script, as root and, where privileges matter, as uid 65534, each command in a PID namespace
of its own that counts the processes it made. The properties below feed random documents and command
lines to the loaders and the option parsers in process (faster): each either succeeds or fails with a
clean error naming a field or an option; nsenter's command lines run through the console script
against a live target, ran or refused naming an option.
``PYFORKEXEC_FUZZ_EXAMPLES`` raises their example count (default 150).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shlex
import subprocess
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import pytest
from helpers.cli import PYFORKEXEC, Background, Counted, counted, pfe, util_linux
from helpers.forked import NOBODY
from helpers.marks import needs_root
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pyforkexec import cli, netns, spec, validate
from pyforkexec.attrs import ProcAttr, SysProcAttr
from pyforkexec.cli import nsenter as cli_nsenter
from pyforkexec.cli import unshare as cli_unshare
from pyforkexec.cli.blame import blamer
from pyforkexec.cli.failure import Failure, explain, one_line, run_command
from pyforkexec.cli.options import ANSWERS, UsageError
from pyforkexec.flags import CloneFlags
from pyforkexec.netns import options as netns_options
from pyforkexec.spec.named import named_of

CORPUS = Path(__file__).parent / "corpus"
# A fixed seed by default (CI runs the same examples every time); PFE_HYPOTHESIS_EXAMPLES=N runs N
# with a random seed.
_ENV_EXAMPLES = os.environ.get("PFE_HYPOTHESIS_EXAMPLES") or os.environ.get("PYFORKEXEC_FUZZ_EXAMPLES")
EXAMPLES = int(_ENV_EXAMPLES or "150")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=_ENV_EXAMPLES is None,
                suppress_health_check=[HealthCheck.too_slow])


# ---- the corpus, through the console script -----------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    uid: Optional[int]  # None: root
    status: int
    text: str  # what the first stderr line contains (for a document: what follows "pyforkexec: ")
    document: bool = False


def _rows(name: str) -> list[list[str]]:
    rows = []
    for line in (CORPUS / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append([part.strip() for part in (line + " ").split(" | ")])  # " " for an empty last column
    return rows


def _expand(text: str) -> str:
    text = re.sub(r"\{digits:(\d+)\}", lambda m: "9" * int(m[1]), text)
    return text.replace("{nl}", "\n")


def spec_cases() -> list[Case]:
    cases = []
    for name, text in _rows("specs.txt"):
        path = str(CORPUS / "specs" / name)
        cases.append(Case(f"specs/{name}", (PYFORKEXEC, "exec", "--spec", path), None, 1,
                          text.replace("{file}", path), document=True))
    return cases


def option_cases() -> list[Case]:
    cases = []
    for status, who, text, command in _rows("options.txt"):
        argv = (PYFORKEXEC, *(_expand(word) for word in shlex.split(command)))
        for uid in {"root": [None], "nobody": [NOBODY], "any": [None, NOBODY]}[who]:
            label = f"{command[:60]} as {'root' if uid is None else 'nobody'}"
            cases.append(Case(label, argv, uid, int(status), _expand(text).replace("\n", "\\n")))
    return cases


SPEC_CASES, OPTION_CASES = spec_cases(), option_cases()


def assert_clean(res: Counted, status: int) -> list[str]:
    """The status, no traceback, nothing on stdout, and one line on stderr; returns the lines."""
    assert "Traceback" not in res.stderr, res.stderr
    assert (res.returncode, res.stdout) == (status, ""), res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and res.stderr == lines[0] + "\n", res.stderr
    prog = lines[0].split(": ", 1)[0]
    if "help" in lines[0]:
        assert lines[0].endswith(f"; try '{prog} --help' for more information"), res.stderr
    return lines


def test_every_corpus_document_is_listed() -> None:
    listed = {case.id for case in SPEC_CASES}
    assert listed == {f"specs/{p.name}" for p in (CORPUS / "specs").iterdir()}


@needs_root
@pytest.mark.parametrize("case", SPEC_CASES, ids=[c.id for c in SPEC_CASES])
def test_a_bad_document_is_one_line_and_starts_nothing(case: Case) -> None:
    res = counted(case.argv, case.uid)
    lines = assert_clean(res, 1)
    assert lines == [lines[0]]  # no usage pointer: the options were right
    assert lines[0].startswith(f"pyforkexec: {case.text}"), lines[0]
    assert res.processes == 1, "the launcher started a process for a refused document"


@needs_root
@pytest.mark.parametrize("case", OPTION_CASES, ids=[c.id for c in OPTION_CASES])
def test_a_bad_command_line_is_one_line(case: Case) -> None:
    res = counted(case.argv, case.uid)
    lines = assert_clean(res, case.status)
    assert case.text in lines[0], lines[0]
    if case.status == 1:
        assert res.processes == 1, "a process was started for a refused command line"


# ---- spec documents, in process ----------------------------------------------------------------

_NoneType = type(None)
FLAG_WORDS = [f.name for f in CloneFlags] + ["newuts", "newpid|newns", "bogus", "0x11", ""]
WORDS = ["", "x", "/", "/tmp", "rel/path", "SIGTERM", "kill", "max", "nofile", "cap_sys_admin",
         "write", "allow", "errno", "private", "proc", "a\nb", "0", "1",
         "\ud800", "a\udfff", "/tmp/\udcff"]  # half a surrogate pair (a JSON escape); a non-UTF-8 name's byte


def _field_names() -> list[str]:
    names, todo, seen = set(spec.TOP_FIELDS), [ProcAttr], set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for f in dataclasses.fields(cls):
            names.add(f.name)
            todo += [t for t in _types_in(typing.get_type_hints(cls)[f.name]) if dataclasses.is_dataclass(t)]
    return sorted(names)


def _types_in(hint: Any) -> list[Any]:
    return [hint, *(t for a in typing.get_args(hint) for t in _types_in(a))]


KEYS = st.sampled_from(_field_names()) | st.text(max_size=6)
LEAVES = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
          | st.sampled_from(WORDS + FLAG_WORDS) | st.text(max_size=8))
JUNK = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8)
BOUNDS = [2**31 - 1, 2**32 - 2, 2**32 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1]
INTS = st.integers(-1, 70) | st.sampled_from(BOUNDS)


def shaped(hint: Any) -> st.SearchStrategy:
    """Values mostly of the shape ``hint`` asks for (so that the loader gets deep), sometimes not."""
    return st.one_of(_shaped(hint), _shaped(hint), _shaped(hint), JUNK)


def _shaped(hint: Any) -> st.SearchStrategy:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return st.one_of([_shaped(a) for a in args])
    simple = {_NoneType: st.none(), bool: st.booleans(), int: INTS, float: st.floats(),
              str: st.sampled_from(WORDS) | st.text(max_size=8)}
    if hint in simple:
        return simple[hint]
    if dataclasses.is_dataclass(hint):
        return st.deferred(lambda: _dataclass(hint))
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return st.dictionaries(st.text(max_size=6), shaped(args[1]), max_size=3)
    if isinstance(origin, type) and issubclass(origin, Sequence):
        return st.lists(shaped(args[0]), max_size=3)
    return JUNK  # a callable, a file object: nothing a document can hold


def _dataclass(cls: type, skip: Sequence[str] = ()) -> st.SearchStrategy:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in skip]
    by_name = {}
    for f in fields:
        values = shaped(hints[f.name])
        if named_of(cls, f) is not None:  # flags and signals by name
            values = values | st.sampled_from([*FLAG_WORDS, "SIGKILL", "9"]) | st.lists(
                st.sampled_from(FLAG_WORDS) | INTS, max_size=3)
        by_name[f.name] = values
    obj = st.fixed_dictionaries({}, optional=by_name)
    positional = st.lists(JUNK, max_size=len(fields))
    return obj | obj | positional


DOCUMENTS = st.fixed_dictionaries(
    {"version": st.just(1) | JUNK, "argv": st.just(["true"]) | st.just(["true"]) | shaped(Sequence[str])},
    optional={"argv0": shaped(Optional[str]), "wait": shaped(bool), "sys": shaped(Optional[SysProcAttr]),
              "proc": _dataclass(ProcAttr, ("sys",)) | JUNK, "extra": JUNK},
) | JUNK


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="the schema oracle needs jsonschema")
    return jsonschema.Draft202012Validator(spec.schema())


def assert_names_a_field(err: spec.SpecError, doc: object) -> None:
    message = str(err)
    assert one_line(message) == message, message
    assert message.startswith("spec: "), message
    if not isinstance(doc, dict):
        return  # "the document must be an object"
    if err.path.startswith('["'):  # a key written as JSON: not a plain word
        head = json.JSONDecoder().raw_decode(err.path[1:])[0]
    else:
        head = re.split(r"[.\[]", err.path, maxsplit=1)[0]
    assert err.path and (head in doc or head in spec.TOP_FIELDS), f"{message!r} names no field of {doc!r}"


@FUZZ
@given(doc=DOCUMENTS)
def test_a_document_loads_only_as_the_schema_says_or_names_the_field(doc: object) -> None:
    # A loaded document is one the published schema accepts (no wrong type slips through, "proc": []
    # included); any other ends in a SpecError naming the field, never another exception.
    try:
        spec.check(spec.load_spec(doc))
    except spec.SpecError as e:
        assert_names_a_field(e, doc)
        return
    errors = [e.message for e in _validator().iter_errors(doc)]
    assert not errors, f"loaded, but the schema refuses it: {errors}"


ODD = "/nonexistent/pfe-a\nb\x1b[31m"  # a line break and a terminal's colour change in a path


@pytest.mark.parametrize(("sys_attr", "field"), [
    ({"chroot": ODD}, "sys.chroot"),
    ({"setns": [{"target": ODD}]}, "sys.setns[0]"),
    ({"cloneflags": "newns", "mounts": [{"source": ODD, "target": "/mnt", "flags": "bind"}]},
     "sys.mounts[0].source"),
    ({"landlock": {"paths": [{"path": ODD, "access": ["read"]}]}}, "sys.landlock.paths[0].path"),
    (None, "proc.dir"),
])
def test_a_path_the_host_refuses_is_quoted_in_one_line(sys_attr: Optional[dict], field: str) -> None:
    doc: dict = {"version": 1, "argv": ["/bin/true"]}
    if sys_attr is None:
        doc["proc"] = {"dir": ODD}
    else:
        doc["sys"] = sys_attr
    with pytest.raises(spec.SpecError) as raised:  # (a Landlock rule's path is opened by check already)
        loaded = spec.load_spec(doc)
        spec.check(loaded)
        spec.check_on_host(loaded)
    assert raised.value.path == field and str(raised.value).startswith(f"spec: {field}: "), raised.value
    assert one_line(str(raised.value)) == str(raised.value) and "pfe-a\\nb\\x1b[31m" in str(raised.value)


@FUZZ
@given(doc=DOCUMENTS)
def test_what_the_host_tells_of_a_document_names_the_field_in_one_line(doc: object) -> None:
    # check_on_host quotes paths as the document gives them (a chroot "a\nb" that is not a
    # directory): one line still, as the module's msg and the daemon's log get it.
    try:
        loaded = spec.load_spec(doc)
        spec.check(loaded)
        spec.check_on_host(loaded)
    except spec.SpecError as e:
        assert_names_a_field(e, doc)


@FUZZ
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
       name=st.sampled_from(["s.json", "s.yaml", "-"]))
def test_any_bytes_load_or_fail_with_a_spec_error(data: bytes, name: str) -> None:
    try:
        spec.check(spec.loads(data, name))
    except spec.SpecError as e:
        assert one_line(str(e)) == str(e), str(e)


YAML_TAGS = ["!!bool", "!!int", "!!float", "!!timestamp", "!!str", "!!null", "!!binary", "!!set", "!!omap",
             "!!pairs", "!!seq", "!!map", "!<tag:yaml.org,2002:bool>", "!custom", "!!python/name:os.system"]
YAML_SCALARS = ["", "y", "x", "-", "+", "_", "0x", "0b", "1", "1.5", ".nan", "10000-01-01", "2001-13-45",
                "2001-02-03t04:05:06-99:99", "@@", "[1]", "{a: 1}", "[]", "9" * 30]


@FUZZ
@given(tag=st.sampled_from(YAML_TAGS), value=st.sampled_from(YAML_SCALARS), quoted=st.booleans(),
       where=st.sampled_from(["wait: {}", "argv0: {}", "sys:\n  pgid: {}", "sys: [{}]"]))
def test_a_tagged_yaml_value_loads_or_fails_with_a_spec_error(tag: str, value: str, quoted: bool,
                                                              where: str) -> None:
    # A scalar tagged by hand that PyYAML's constructor of that tag cannot read fails there in other
    # ways than a YAML error (a KeyError for "!!bool y"): still a SpecError, never another exception.
    shown = json.dumps(value) if quoted else value
    text = "version: 1\nargv: [/bin/true]\n" + where.format(f"{tag} {shown}") + "\n"
    try:
        spec.check(spec.loads(text.encode(), "s.yaml"))
    except spec.SpecError as e:
        assert one_line(str(e)) == str(e), str(e)


@FUZZ
@given(doc=DOCUMENTS, name=st.sampled_from(["s.json", "-"]))
def test_a_document_as_text_loads_as_the_object_does(doc: object, name: str) -> None:
    # The JSON parser's stand-ins (an integer of 5,000 digits, NaN) give the messages the values do.
    try:
        text = json.dumps(doc)
    except ValueError:  # an integer json cannot write (4300 digits): not text then
        return
    try:
        direct: Any = spec.load_spec(doc)
    except spec.SpecError as e:
        direct = e
    try:
        parsed: Any = spec.loads(text.encode(), name)
    except spec.SpecError as e:
        parsed = e
    assert type(parsed) is type(direct), (direct, parsed)
    if isinstance(direct, spec.SpecError):
        assert str(parsed) == str(direct)


# Documents that load: each field from values it takes, so that the round trips below get examples.
def _obj(required: dict, **optional: st.SearchStrategy) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(required, optional=optional)


_NAMES = st.sampled_from(["newuts", "CLONE_NEWPID", "newipc", "NEWNS", "newuser", "newnet", "newcgroup"])
_MAP = st.tuples(st.integers(0, 10), st.integers(0, 2**32 - 2), st.integers(1, 5)).map(list) | _obj(
    {"container_id": st.integers(0, 9), "host_id": st.just(1000), "size": st.just(1)})
_MOUNT = _obj({"target": st.sampled_from(["/mnt", "/tmp/a b", "/x/\u00e9"])}, fstype=st.just("tmpfs"),
              source=st.just("tmpfs"), flags=st.sampled_from(["ro", ["nosuid", "nodev"], 0]),
              data=st.just("size=1m"), mkdir=st.booleans())
_RLIMIT = _obj({"resource": st.sampled_from(["nofile", "RLIMIT_CORE", 4]),
                "soft": st.sampled_from([0, 64, "unlimited"]), "hard": st.sampled_from([64, "infinity", -1])})
_RULE = _obj({"path": st.sampled_from(["/usr", "/tmp"]),
              "access": st.lists(st.sampled_from(["read", "execute"]), min_size=1, max_size=2)})
VALID_SYS = _obj(
    {}, cloneflags=st.lists(_NAMES, max_size=3) | st.sampled_from(["newuts|newpid", 0, 0x4000000]),
    unshareflags=st.lists(_NAMES, max_size=2), hostname=st.text("abc-1", min_size=1, max_size=8),
    setsid=st.booleans(), setpgid=st.booleans(),
    pdeathsig=st.sampled_from(["SIGTERM", "SIGKILL", "sigusr1", 9, 0]),
    uid_mappings=st.lists(_MAP, min_size=1, max_size=2),
    credential=_obj({"uid": st.integers(0, 2**32 - 2), "gid": st.integers(0, 5)},
                    groups=st.lists(st.integers(0, 9), max_size=2), no_setgroups=st.booleans()),
    mounts=st.lists(_MOUNT, max_size=2), rlimits=st.lists(_RLIMIT, max_size=2),
    ambient_caps=st.lists(st.integers(0, 40), max_size=2), no_new_privs=st.booleans(),
    seccomp=_obj({}, deny=st.lists(st.sampled_from(["ptrace", "mount", 101]), max_size=2)),
    landlock=_obj({}, paths=st.lists(_RULE, max_size=2)),
    cgroup=_obj({"path": st.sampled_from(["pfe-a", "pfe-a/b"])}, pids_max=st.sampled_from([10, "max"]),
                remove=st.booleans()))
VALID_DOCUMENTS = _obj(
    {"version": st.just(1), "argv": st.lists(st.text(max_size=5), max_size=2).map(lambda a: ["/bin/x", *a])},
    argv0=st.just("/bin/true"), wait=st.booleans(), sys=VALID_SYS,
    proc=_obj({}, dir=st.just("/tmp"), env=st.lists(st.text("AB=xy", min_size=1, max_size=4), max_size=2),
              files=st.just([0, 1, 2, None])))


def _loaded(s: spec.Spec) -> tuple:
    return s.program, s.argv, s.attr, s.wait


def _shuffled(value: Any, order: st.DataObject) -> Any:
    if isinstance(value, dict):
        keys = order.draw(st.permutations(list(value)))
        return {k: _shuffled(value[k], order) for k in keys}
    if isinstance(value, list):
        return [_shuffled(v, order) for v in value]
    return value


@FUZZ
@given(doc=VALID_DOCUMENTS, order=st.data())
def test_a_document_dumps_loads_and_reads_the_same_in_json_yaml_and_any_key_order(
        doc: dict, order: st.DataObject) -> None:
    # load -> dump -> load gives what load gave, and dump of that is the same document again (the
    # normalized form); the same document as JSON text, as YAML text and with its keys in another order
    # loads the same (what the hidden harness of spec documents draws).
    try:
        loaded = spec.load_spec(doc)
    except spec.SpecError as e:  # (a value the rules refuse: a map the loader checks, a mkdir without fs)
        assert_names_a_field(e, doc)
        event("refused")
        return
    event("loaded")
    dumped = spec.dump(loaded.argv0, loaded.argv, loaded.attr, wait=loaded.wait)
    again = spec.loads(json.dumps(dumped).encode(), "s.json")
    assert _loaded(again) == _loaded(loaded), dumped
    assert spec.dump(again.argv0, again.argv, again.attr, wait=again.wait) == dumped
    yaml = pytest.importorskip("yaml")
    for text, name in ((json.dumps(doc), "s.json"), (yaml.safe_dump(doc), "s.yaml"),
                       (json.dumps(_shuffled(doc, order)), "s.json")):
        assert _loaded(spec.loads(text.encode(), name)) == _loaded(loaded), text


# Fields of sys with two values each, either of which loads (so that which one won shows).
MERGED_FIELDS = {"cloneflags": (["newuts"], []), "setsid": (True, False), "hostname": ("h-a", "h-b"),
                 "pdeathsig": ("SIGTERM", "SIGKILL"), "unshareflags": (["newipc"], [])}


@settings(FUZZ, max_examples=min(EXAMPLES, 60))
@given(parts=st.lists(st.dictionaries(st.sampled_from(sorted(MERGED_FIELDS)), st.booleans(), max_size=3),
                      min_size=1, max_size=3),
       own=st.dictionaries(st.sampled_from(sorted(MERGED_FIELDS)), st.booleans(), max_size=2),
       as_list=st.booleans(), duplicate_key=st.sampled_from([None, *sorted(MERGED_FIELDS)]))
def test_a_yaml_merge_loads_as_every_yaml_library_reads_it_or_names_the_field(
        parts: list[dict], own: dict, as_list: bool, duplicate_key: Optional[str]) -> None:
    # ``sys`` built from merged mappings (``<<: [{...}, {...}]``) and keys of its own: a key of its own
    # wins over the merged ones (every YAML library agrees); a key two merged mappings give, a merge
    # key or any key given twice, whose winner differs between libraries (PyYAML 6.0.4 takes the last
    # of a merge list, YAML's merge spec the first), is refused naming the field, never loaded.
    def mapping(keys: dict) -> str:
        return "{" + ", ".join(f"{k}: {json.dumps(MERGED_FIELDS[k][int(v)])}" for k, v in keys.items()) + "}"
    lines = ["version: 1", "argv: [/bin/true]", "sys:"]
    if as_list or len(parts) == 1:
        lines.append(f"  <<: [{', '.join(mapping(p) for p in parts)}]")
    else:
        lines += [f"  <<: {mapping(p)}" for p in parts]  # the merge key itself given more than once
    lines += [f"  {k}: {json.dumps(MERGED_FIELDS[k][int(v)])}" for k, v in own.items()]
    if duplicate_key is not None:
        lines.append(f"  {duplicate_key}: {json.dumps(MERGED_FIELDS[duplicate_key][0])}")
    text = "\n".join(lines) + "\n"
    merged_keys, own_keys = [k for p in parts for k in p], {*own, duplicate_key}
    refusals = {f"sys.{k}" for k in merged_keys if merged_keys.count(k) > 1 and k not in own_keys}
    if len(parts) > 1 and not as_list:
        refusals.add('sys["<<"]')
    if duplicate_key is not None and duplicate_key in own:
        refusals.add(f"sys.{duplicate_key}")
    try:
        loaded = spec.loads(text.encode(), "s.yaml")
    except spec.SpecError as e:
        assert e.path in refusals, (text, str(e))  # one of the reasons there are, named by its field
        return
    assert not refusals, f"loaded a document whose meaning depends on the YAML library:\n{text}"
    resolved: dict = {}
    for p in parts:
        resolved.update(p)
    resolved.update(own)
    if duplicate_key is not None:
        resolved[duplicate_key] = False
    want = spec.load_spec({"version": 1, "argv": ["/bin/true"],
                           "sys": {k: MERGED_FIELDS[k][int(v)] for k, v in resolved.items()}})
    assert loaded.attr.sys == want.attr.sys, text


# ---- netns documents (pyforkexec netns up FILE) ----------------------------------------------------

# An object with a valid name (the model checks it first), so that the values after it are reached.
NETNS_DOCUMENTS = st.fixed_dictionaries({"name": st.just("pfe-fuzz")}, optional={
    f.name: shaped(typing.get_type_hints(netns_options.Options)[f.name])
    for f in dataclasses.fields(netns_options.Options) if f.name != "name"}) | JUNK


@FUZZ
@given(doc=NETNS_DOCUMENTS)
def test_a_netns_document_loads_or_names_the_option(doc: object) -> None:
    # What `netns up FILE` does before it changes anything: the options, then the model of the
    # namespace they describe; a bad value is an OptionsError or a ModelError (status 1), never another
    # exception (a UnicodeEncodeError of a link name told nothing of where it was).
    try:
        netns.model.desired(netns.load(doc))
    except (netns.OptionsError, netns.ModelError) as e:
        assert str(e)  # (a link's name may hold a control character, which the CLI's one line escapes)


NETNS_VALID = {"name": "pfe-fuzz", "bridges": [{"name": "pfe-fz-br", "addresses": ["10.42.0.1/24"]}],
               "veths": [{"name": "eth0", "peer": "pfe-fz-v", "bridge": "pfe-fz-br",
                          "mac": "02:00:00:00:00:01", "addresses": ["10.42.0.10/24"],
                          "peer_addresses": ["fd42::1/64"]}],
               "routes": [{"dst": "10.99.0.0/16", "gateway": "10.42.0.254", "dev": "eth0"}],
               "gateway": ["10.42.0.1"], "sysctls": {"net.ipv4.ip_forward": 1}}


def _strings(doc: Any, path: tuple = ()) -> list[tuple]:
    """The paths of the strings in ``doc`` (a mapping's keys as ("KEY", key))."""
    if isinstance(doc, str):
        return [path]
    if isinstance(doc, dict):
        keys = [(*path, ("KEY", k)) for k in doc] if path else []
        return [*keys, *(p for k, v in doc.items() for p in _strings(v, (*path, k)))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _strings(v, (*path, i))]
    return []


@FUZZ
@given(where=st.sampled_from(_strings(NETNS_VALID)), text=st.sampled_from(WORDS) | st.text(max_size=8))
def test_any_string_of_a_netns_document_loads_or_names_the_option(where: tuple, text: str) -> None:
    # Each string of a valid document (a value, a sysctl's name) replaced, one at a time: the model
    # reads every one (as a name of a link, an address...), and must refuse what it cannot take.
    doc = json.loads(json.dumps(NETNS_VALID))
    holder = doc
    for step in where[:-1]:
        holder = holder[step]
    last = where[-1]
    if isinstance(last, tuple):
        holder[text] = holder.pop(last[1])
    else:
        holder[last] = text
    test_a_netns_document_loads_or_names_the_option.hypothesis.inner_test(doc)


NETNS_CASES = [Case(f"netns/{name}", (PYFORKEXEC, "netns", "--check", "up", str(CORPUS / "netns" / name)),
                    None, 1, text) for name, text in _rows("netns.txt")]


def test_every_netns_corpus_document_is_listed() -> None:
    assert {case.id for case in NETNS_CASES} == {f"netns/{p.name}" for p in (CORPUS / "netns").iterdir()}


@needs_root
@pytest.mark.parametrize("case", NETNS_CASES, ids=[c.id for c in NETNS_CASES])
def test_a_bad_netns_document_is_one_line_and_starts_nothing(case: Case) -> None:
    res = counted(case.argv, case.uid)
    lines = assert_clean(res, 1)
    assert lines[0].startswith(f"pyforkexec: {case.argv[-1]}: {case.text}"), lines[0]
    assert res.processes == 1


# ---- command lines, in process ------------------------------------------------------------------

VALUES = ["", "0", "1", "-1", " 5", "+5", "1_0", "\u0663", "4294967294", "4294967295", "9" * 30, "9" * 5000,
          "x", "auto", "all", "subids", "0:0:1", "0:100000:10", "5:100000:10", "1:2:0", "0,0,99999999999999",
          "0:0:4294967295", "SIGTERM", "kill", "follow", "/", "/proc", "/nonexistent", "a\nb", "allow",
          "deny", "private", "slave", "--", "-"]
# Messages about no single option (the combination lacks something).
NO_OPTION = ("no target PID specified", "no namespace specified", "options --monotonic and --boottime",
             'exec: "')


def words(options: Sequence[Any]) -> st.SearchStrategy:
    spellings = [f"--{o.long}" for o in options] + [f"-{o.short}" for o in options if o.short]
    word = st.sampled_from(spellings) | st.sampled_from(VALUES)
    attached = st.tuples(st.sampled_from(spellings), st.sampled_from(VALUES)).map(
        lambda t: f"{t[0]}={t[1]}" if t[0].startswith("--") else t[0] + t[1])
    return st.lists(word | attached, max_size=6).map(lambda argv: [*argv, "true"])


def assert_names_an_option(err: Exception, argv: Sequence[str], options: Sequence[Any]) -> None:
    """A usage or failure status, and one line that names an option of ``argv``."""
    message, status, _ = explain(err)
    assert status in (1, 125, 127), message
    assert_line_names_an_option(one_line(message), argv, options)


def assert_line_names_an_option(shown: str, argv: Sequence[str], options: Sequence[Any]) -> None:
    """The line of a failure names an option of ``argv`` (as written, or its long form), unless it is
    about what the whole lacks."""
    assert "internal error" not in shown, shown
    assert "\n" not in shown
    shorts = {o.short: o for o in options if o.short}
    names = set()
    for word in argv:
        if word.startswith("--") and len(word) > 2:
            name = word[2:].split("=", 1)[0]
            names |= {f"--{name}", *(f"--{o.long}" for o in options if o.long.startswith(name))}
        elif word.startswith("-") and len(word) > 1:
            for char in word[1:]:
                names.add(f"'{char}'")
                if char in shorts:
                    names.add(f"--{shorts[char].long}")
    named = [n for n in names if one_line(n) in shown]
    assert named or any(m in shown for m in NO_OPTION), f"{shown!r} names no option of {argv!r}"


@FUZZ
@given(argv=words(cli_unshare.OPTIONS))
def test_unshare_options_build_or_name_the_option(argv: list[str]) -> None:
    # Everything before the spawn: parse, apply, build, and the library's validation, whose refusal
    # must come back naming the options (as spawn_and_wait restates it), never a computed field.
    try:
        parsed = cli_unshare.CMD.parse(argv)
        _, _, attr = cli_unshare.build(cli_unshare.request(parsed), parsed.rest)
        assert attr.sys is not None
        try:
            validate.check_spawn("/bin/true", ["true"], attr)  # every field, as a spawn checks them
        except (ValueError, TypeError) as e:
            restated = blamer(cli_unshare.CMD, parsed, cli_unshare.BLAME)(e)
            assert isinstance(restated, UsageError), f"the library's {e!r} names no option"
            raise restated from None
    except (UsageError, Failure) as e:
        assert_names_an_option(e, argv, cli_unshare.OPTIONS)
    except SystemExit as e:  # --help or --version answered, where the options were read up to
        assert (e.code, parsed.given[-1][0].long in ANSWERS) == (0, True), argv


@FUZZ
@given(argv=words(cli_nsenter.OPTIONS))
def test_nsenter_options_parse_or_name_the_option(argv: list[str]) -> None:
    try:
        parsed = cli_nsenter.CMD.parse(argv)
        cli_nsenter.request(parsed)
    except (UsageError, Failure) as e:
        assert_names_an_option(e, argv, cli_nsenter.OPTIONS)
    except SystemExit as e:  # --help or --version answered, where the options were read up to
        assert (e.code, parsed.given[-1][0].long in ANSWERS) == (0, True), argv


# ---- nsenter command lines, through the console script ------------------------------------------

NSENTER_EXAMPLES = max(1, EXAMPLES // 5)  # about 0.2 s each: a console script that starts a program


@pytest.fixture(scope="module")
def nsenter_target() -> Iterator[int]:
    """A process in new user (root mapped), mount, uts, ipc, net, pid, cgroup and time namespaces."""
    argv = [util_linux("unshare"), "--map-root-user", "--mount", "--uts", "--ipc", "--net", "--pid",
            "--cgroup", "--time", "--fork", "--kill-child", "--mount-proc", "sh", "-c",
            "echo ready; exec sleep 600"]
    with Background(argv) as bg:
        assert bg.readline() == "ready"
        yield bg.child()


def _in_pid_namespace(link: str) -> set[int]:
    """The processes of the PID namespace ``link`` names, as this one sees them."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == link:
                    pids.add(int(entry))
    return pids


def nsenter_words(target: int) -> st.SearchStrategy:
    """Command lines of nsenter's options with values that mean something here: the target, another
    process, namespace files of both (and of another kind), ids, directories; and some of VALUES."""
    spellings = [f"--{o.long}" for o in cli_nsenter.OPTIONS if o.long not in ANSWERS] + \
        [f"-{o.short}" for o in cli_nsenter.OPTIONS if o.short and o.long not in ANSWERS]
    ns_files = [f"/proc/{pid}/ns/{name}" for pid in (target, os.getpid())
                for name in ("net", "uts", "ipc", "mnt", "pid", "user", "cgroup", "time")]
    values = [str(target)] * 4 + [str(os.getpid()), "1", "0", "65534", "follow", "/", "/tmp", "/proc",
                                  "/nonexistent", "rel"] + ns_files + VALUES[:12]
    attached = st.tuples(st.sampled_from(spellings), st.sampled_from(values)).map(
        lambda t: f"{t[0]}={t[1]}" if t[0].startswith("--") else t[0] + t[1])
    given_target = st.sampled_from([["-t", str(target)]] * 3 + [[f"--target={target}"], []])
    separate = st.tuples(st.sampled_from(spellings), st.sampled_from(values)).map(list)
    alone = st.sampled_from(spellings).map(lambda w: [w])  # (a FILE or DIR left out: the target's)
    word = alone | alone | alone | attached.map(lambda w: [w]) | separate
    some_namespace = st.sampled_from([["-u"], ["--net"], ["-a"], ["-U", "-m"], []])
    return st.tuples(given_target, some_namespace, st.lists(word, max_size=4)).map(
        lambda t: [*t[0], *t[1], *(w for words in t[2] for w in words)])


@needs_root
def test_nsenter_command_lines_run_or_name_the_option(nsenter_target: int) -> None:
    """``pyforkexec nsenter OPTIONS true`` against a live target: the program ran (status 0, nothing on
    stderr), or one line naming an option of the command line, with a documented status; never a
    traceback, and no process left behind in the target's PID namespace."""
    link = os.readlink(f"/proc/{nsenter_target}/ns/pid")
    before = _in_pid_namespace(link)

    @settings(FUZZ, max_examples=NSENTER_EXAMPLES)
    @given(argv=nsenter_words(nsenter_target))
    def prop(argv: list[str]) -> None:
        res = pfe("nsenter", *argv, "true", stdin=subprocess.DEVNULL)
        assert "Traceback" not in res.stderr, res.stderr
        assert res.stdout == "", (argv, res.stdout)
        event(f"status {res.returncode}")
        if res.returncode == 0:
            assert res.stderr == "", (argv, res.stderr)
        else:
            assert res.returncode in (1, 125, 126, 127), (argv, res.returncode, res.stderr)
            lines = res.stderr.splitlines()
            assert len(lines) == 1 and re.match(r"pyforkexec( nsenter)?: ", lines[0]), (argv, res.stderr)
            if not re.fullmatch(r"pyforkexec: fork/exec \S+: .* \(at execve\)", lines[0]):  # (the program's)
                assert_line_names_an_option(lines[0], argv, cli_nsenter.OPTIONS)
        assert _in_pid_namespace(link) == before, argv

    prop()


@FUZZ
@given(argv=st.lists(st.sampled_from(["flags", "--json", "-j", "--help", "-x", "bogus", "newns", "newns,,x",
                                      "0x", "0x" + "f" * 40, "9" * 5000, "\u0661", "-1", "a\nb", "--frob"]),
                     max_size=4))
def test_the_whole_command_prints_one_line_or_its_output(argv: list[str]) -> None:
    # Through run_command itself (flags and top-level usage only: nothing here starts a process).
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_command(cli.dispatch, argv)
    lines = err.getvalue().splitlines()
    if status == 0:
        assert lines == []
        return
    assert status == 1 and len(lines) == 1, err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert re.fullmatch(r"pyforkexec( flags)?: .*", lines[0]), lines[0]

