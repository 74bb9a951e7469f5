"""The offline image podman runs: a minimal tree of the host's own python3 and /bin/true, imported.

No registry is asked: the tree is the interpreter, its standard library, the shared libraries that
``ldd`` names for them, and Debian's merged-/usr links, packed as a tarball and ``podman import``-ed.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
import tempfile

IMAGE = "localhost/pfb-python:latest"
_PROGRAMS = ("/usr/bin/python3", "/usr/bin/true")
_STDLIB = "/usr/lib/python3.11"
# Not imported by http.server: left out to keep the image small.
_SKIP = ("test", "idlelib", "tkinter", "ensurepip", "lib2to3", "pydoc_data", "dist-packages", "turtledemo")
_MERGED_USR = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}


def _libraries(paths: list[str]) -> set[str]:
    """The shared libraries (and the loader) that ``paths`` load, as ldd resolves them."""
    out = subprocess.run(["ldd", *paths], capture_output=True, text=True, check=False).stdout
    return {m for m in re.findall(r"(/\S+\.so[\w.]*)", out) if os.path.exists(m)}


def _stdlib_files() -> list[str]:
    files = []
    for root, dirs, names in os.walk(_STDLIB):
        dirs[:] = [d for d in dirs if d not in _SKIP]
        files.extend(os.path.join(root, n) for n in names)
    return files


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def build_tarball(path: str) -> None:
    stdlib = _stdlib_files()
    programs = [os.path.realpath(p) for p in _PROGRAMS]
    dynload = [f for f in stdlib if f.endswith(".so")]
    libs = _libraries(programs + dynload)
    with tarfile.open(path, "w") as tar:
        for link, target in _MERGED_USR.items():
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for d in ("proc", "dev", "sys", "tmp", "etc", "run"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        _add_text(tar, "etc/passwd", "root:x:0:0:root:/:/bin/false\n")
        _add_text(tar, "etc/group", "root:x:0:\n")
        # name in the image -> file on the host; a library under the name the loader asks for
        members = {f: f for f in (*stdlib, *programs, *_PROGRAMS)}
        members.update({_usr(lib): os.path.realpath(lib) for lib in libs})
        for name, source in sorted(members.items()):
            tar.add(source, arcname=name.lstrip("/"), recursive=False)


def _usr(path: str) -> str:
    """/lib/x.so -> /usr/lib/x.so: the image has merged /usr, as Debian 12 does."""
    top = path.lstrip("/").split("/", 1)[0]
    return "/" + _MERGED_USR[top] + path[len(top) + 1:] if top in _MERGED_USR else path


def ensure_image() -> str:
    """Import the image unless it is there; its name."""
    if subprocess.run(["podman", "image", "exists", IMAGE], check=False).returncode == 0:
        return IMAGE
    with tempfile.TemporaryDirectory() as tmp:
        tarball = os.path.join(tmp, "rootfs.tar")
        build_tarball(tarball)
        subprocess.run(["podman", "import", "--quiet", "--change", "CMD=/usr/bin/python3", tarball, IMAGE],
                       check=True, stdout=subprocess.DEVNULL)
    return IMAGE


def remove_image() -> None:
    subprocess.run(["podman", "rmi", "--force", "--ignore", IMAGE], check=False, capture_output=True)
