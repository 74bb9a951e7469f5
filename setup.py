"""Builds the C extensions against the limited API: one abi3 wheel for CPython >= 3.9.

pyforkexec.child._child runs the child between clone and execve; pyforkexec._clone is clone(fn)'s system call.
pyforkexec/service/pyforkexec-waiter is a small program, built with them (BuildExtAndWaiter).

The version is the collection's: galaxy.yml in a checkout or an sdist, MANIFEST.json in an installed
collection (ansible-galaxy writes it from galaxy.yml), so the wheel, the sdist and the collection tarball
always carry the same one.

PYFORKEXEC_TARGET=<GNU triplet> (e.g. aarch64-linux-gnu) cross-builds the wheel for that architecture
with Debian's cross compiler <triplet>-gcc; the target's Python headers (pyconfig.h) come from Debian's
multiarch package libpython3-dev:<arch>, which that compiler finds under /usr/include/<triplet>.
"""

import json
import os
import re
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

WAITER = ("pyforkexec/service/waiter.c", "pyforkexec/service", "pyforkexec-waiter")

HERE = Path(__file__).resolve().parent


def collection_version() -> str:
    galaxy = HERE / "galaxy.yml"
    if galaxy.exists():
        match = re.search(r"^version:\s*['\"]?([^'\"\s#]+)", galaxy.read_text(), re.M)
        if not match:
            raise SystemExit(f"{galaxy}: no version: line")
        return match.group(1)
    manifest = HERE / "MANIFEST.json"
    if manifest.exists():
        return json.loads(manifest.read_text())["collection_info"]["version"]
    raise SystemExit(f"no galaxy.yml or MANIFEST.json in {HERE}: the version comes from one of them")


def cross_target() -> dict:
    """bdist_wheel options for PYFORKEXEC_TARGET, after pointing the compiler and linker at its cross
    toolchain (setuptools reads CC and LDSHARED when it builds the extensions)."""
    triplet = os.environ.get("PYFORKEXEC_TARGET", "")
    if not triplet:
        return {}
    if not re.fullmatch(r"[a-z0-9_]+-linux-gnu[a-z0-9]*", triplet):
        raise SystemExit(f"PYFORKEXEC_TARGET: {triplet!r} is not a GNU triplet such as aarch64-linux-gnu")
    machine = triplet.split("-", 1)[0]
    os.environ["CC"] = f"{triplet}-gcc"
    os.environ["LDSHARED"] = f"{triplet}-gcc -shared"
    # What sysconfig.get_platform() (and so the build directory and the wheel's tag) reports.
    os.environ["_PYTHON_HOST_PLATFORM"] = f"linux-{machine}"
    return {"plat_name": f"linux_{machine}"}


def abi3_extension(name: str) -> Extension:
    return Extension(
        f"pyforkexec.{name}",
        [f"pyforkexec/{name.replace('.', '/')}.c"],
        define_macros=[("Py_LIMITED_API", "0x03090000")],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"],
        py_limited_api=True,
    )


class BuildExtAndWaiter(build_ext):
    """The extensions, then pyforkexec-waiter (an executable, not an extension: what a daemon becomes
    while its service runs; service/waiter.c) with the same compiler, so a cross build cross-builds it."""

    def run(self) -> None:
        super().run()
        source, package_dir, name = WAITER
        objects = self.compiler.compile([source], output_dir=self.build_temp,
                                        extra_postargs=["-O2", "-Wall", "-Wextra"])
        # Static: no loader or libc to open at exec, when a failure must still reach its fail-closed path.
        for out in (os.path.join(self.build_lib, package_dir),
                    *([package_dir] if self.inplace or getattr(self, "editable_mode", False) else [])):
            self.compiler.link_executable(objects, name, output_dir=out, extra_postargs=["-static", "-s"])


setup(
    version=collection_version(),
    cmdclass={"build_ext": BuildExtAndWaiter},
    ext_modules=[abi3_extension("child._child"), abi3_extension("_clone")],
    options={"bdist_wheel": {"py_limited_api": "cp39", **cross_target()}},
)
