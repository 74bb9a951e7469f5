"""Builds the C child (pyforkexec._child) against the limited API: one abi3 wheel for CPython >= 3.9."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pyforkexec._child",
            ["pyforkexec/_child.c"],
            define_macros=[("Py_LIMITED_API", "0x03090000")],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"],
            py_limited_api=True,
        ),
    ],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
