"""Builds the C extensions against the limited API: one abi3 wheel for CPython >= 3.9.

pyforkexec.child._child runs the child between clone and execve; pyforkexec._clone is clone(fn)'s system call.
"""

from setuptools import Extension, setup


def abi3_extension(name: str) -> Extension:
    return Extension(
        f"pyforkexec.{name}",
        [f"pyforkexec/{name.replace('.', '/')}.c"],
        define_macros=[("Py_LIMITED_API", "0x03090000")],
        extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"],
        py_limited_api=True,
    )


setup(
    ext_modules=[abi3_extension("child._child"), abi3_extension("_clone")],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
