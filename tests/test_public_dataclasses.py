"""The public types (attrs.py, sandbox/*, spec.Spec) are built by pyforkexec._dataclass, which gives them
a dataclass's methods without compiling them at import (issue 15: start-up). Each is checked against
the class the standard ``dataclasses.dataclass`` makes from the same fields: the same fields and
defaults, repr, equality, hash or unhashability, frozenness, ``replace``/``asdict``, and the same
errors for bad constructor arguments. No time is asserted (benchmarks/startup.py measures it)."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys

import pytest

from pyforkexec import _dataclass
from pyforkexec.attrs import Credential, ProcAttr, SetNS, SysProcAttr, SysProcIDMap
from pyforkexec.sandbox.caps import Capabilities
from pyforkexec.sandbox.cgroup import Cgroup
from pyforkexec.sandbox.landlock import Landlock, LandlockPath, LandlockPort
from pyforkexec.sandbox.mounts import Mount
from pyforkexec.sandbox.rlimits import Rlimit
from pyforkexec.sandbox.seccomp import SeccompFilter
from pyforkexec.spec.load import Spec

PUBLIC = [SysProcIDMap, Credential, SetNS, SysProcAttr, ProcAttr, Capabilities, Cgroup, LandlockPath,
          LandlockPort, Landlock, Mount, Rlimit, SeccompFilter, Spec]


def stdlib_twin(cls: type) -> type:
    """The class ``dataclasses.dataclass`` makes from ``cls``'s fields, with its name."""
    specs = []
    for f in dataclasses.fields(cls):
        kw = {"repr": f.repr, "compare": f.compare, "hash": f.hash}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        if f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        specs.append((f.name, f.type, dataclasses.field(**kw)))
    twin = dataclasses.make_dataclass(cls.__name__, specs, frozen=cls.__dataclass_params__.frozen)
    twin.__qualname__ = cls.__qualname__
    return twin


def error(call: object) -> str:
    """The TypeError of ``call()``, without the function's name (3.9/3.10 print ``__init__()`` alone)."""
    with pytest.raises(TypeError) as e:
        call()  # type: ignore[operator]
    return re.sub(r"^\S*__init__\(\)", "__init__()", str(e.value))


def sample(cls: type) -> dict[str, object]:
    """Values for every field: distinct, hashable (so that equality and hash see each one)."""
    return {f.name: (f"v{i}",) for i, f in enumerate(dataclasses.fields(cls))}


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_a_public_type_behaves_as_the_standard_dataclass(cls: type) -> None:
    twin = stdlib_twin(cls)
    assert dataclasses.is_dataclass(cls)
    assert [(f.name, f.default, f.default_factory) for f in dataclasses.fields(cls)] == \
        [(f.name, f.default, f.default_factory) for f in dataclasses.fields(twin)]
    assert getattr(cls, "__match_args__", None) == getattr(twin, "__match_args__", None)  # 3.10+
    assert str(inspect.signature(cls)) == str(inspect.signature(twin))
    params = cls.__dataclass_params__
    assert (params.init, params.repr, params.eq) == (True, True, True)
    # the methods are plain functions of _dataclass.py, not compiled at import
    assert cls.__init__.__code__.co_filename == _dataclass.__file__
    assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"

    values = sample(cls)
    names = list(values)
    ours, theirs = cls(**values), twin(**values)
    assert repr(ours) == repr(theirs)
    assert cls(*values.values()) == ours and dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    assert ours != theirs  # another class: never equal, as between two dataclasses
    changed = dataclasses.replace(ours, **{names[0]: ("other",)})
    assert changed != ours and getattr(changed, names[0]) == ("other",) and type(changed) is cls
    if params.frozen:
        assert hash(ours) == hash(cls(**values)) and hash(ours) == hash(theirs)
        for action in (lambda o: setattr(o, names[0], 1), lambda o: delattr(o, names[0]),
                       lambda o: setattr(o, "not_a_field", 1)):
            messages = []
            for obj in (ours, theirs):
                with pytest.raises(dataclasses.FrozenInstanceError) as e:
                    action(obj)
                messages.append(str(e.value))
            assert messages[0] == messages[1]
    else:
        with pytest.raises(TypeError, match="unhashable"):
            hash(ours)
        setattr(ours, names[0], 5)
        assert getattr(ours, names[0]) == 5

    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    too_many = [*values.values(), 0]
    assert error(lambda: cls(*too_many)) == error(lambda: twin(*too_many))
    assert error(lambda: cls(no_such_field=1)) == error(lambda: twin(no_such_field=1))
    assert error(lambda: cls(*values.values(), **{names[0]: 1})) == \
        error(lambda: twin(*values.values(), **{names[0]: 1}))
    if required:
        assert error(lambda: cls()) == error(lambda: twin())
    else:
        assert repr(cls()) == repr(twin())


def test_a_standard_dataclass_can_extend_a_public_type() -> None:
    @dataclasses.dataclass(frozen=True)
    class Tagged(SetNS):
        """A subclass with one more field: its own generated methods and signature."""

        tag: str = ""

    tagged = Tagged("/run/netns/web", 0, None, False, None, None, "t")
    assert repr(tagged) == "test_a_standard_dataclass_can_extend_a_public_type.<locals>.Tagged(" \
        "target='/run/netns/web', nstype=0, inode=None, for_children=False, ns_id=None, " \
        "process_start=None, tag='t')"
    assert tagged != SetNS("/run/netns/web") and list(inspect.signature(Tagged).parameters)[-1] == "tag"
    with pytest.raises(dataclasses.FrozenInstanceError):
        tagged.tag = "u"  # type: ignore[misc]


def test_a_recursive_repr_shows_dots() -> None:
    attr = ProcAttr()
    attr.env = [attr]  # type: ignore[list-item]
    assert repr(attr) == "ProcAttr(dir=None, env=[...], files=(0, 1, 2), sys=None)"


def test_what_it_does_not_support_is_refused() -> None:
    with pytest.raises(TypeError, match="does not support"):
        @_dataclass.dataclass
        class WithPostInit:
            """A __post_init__ the generic __init__ would not call."""

            a: int = 0

            def __post_init__(self) -> None:
                pass


def test_inspect_stands_in_until_used_and_then_is_the_real_module() -> None:
    # in a fresh interpreter, as the command line and the daemon do it before importing dataclasses
    code = """
import sys
from pyforkexec._startup import defer_inspect
defer_inspect()
import dataclasses
import pyforkexec.attrs
stand_in = dataclasses.inspect
if sys.version_info < (3, 12):
    assert "ast" not in sys.modules and "dis" not in sys.modules, "inspect was loaded"
    import inspect
    assert inspect is stand_in
else:  # dataclasses reads each class's annotations through inspect: loaded by the first dataclass
    assert sys.modules["inspect"] is not stand_in and "ast" in sys.modules
    import inspect
    assert inspect is not stand_in and inspect.get_annotations is stand_in.get_annotations
sig = str(inspect.signature(lambda a, b=1: None))
assert sys.modules["inspect"] is not stand_in and "ast" in sys.modules  # the real one, from now on
import inspect as again
assert again is sys.modules["inspect"] and stand_in.signature is again.signature
from inspect import getsource
try:
    stand_in.no_such_name
except AttributeError as e:
    print(sig, e)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(a, b=1) module 'inspect' has no attribute 'no_such_name'"
