"""An OCI image of the broker, built offline from this machine with inclavare's own image tooling.

(Here and not in kbs/: it stands on both the broker and :mod:`inclavare.image`,
which is a layer above the broker.)

``inclavare kbs build-image --output LAYOUT`` writes an OCI image layout
(:func:`inclavare.image.build.build_image`) of three layers, lowest first:

1. **base**: a static busybox (``/bin/busybox`` and its applets, for a
   shell when debugging) and ``/etc/passwd`` with the ``kbs`` user (10001);
2. **python**: this machine's interpreter as installed (``/usr/bin/python3.X``
   and ``/usr/lib/python3.X`` without its tests and GUI toolkits) and every
   shared library it and the extension modules below load, found with
   ``ldd`` — the libraries the interpreter was built against, no others;
3. **app**: a virtual environment at ``/opt/inclavare-kbs`` holding
   inclavare and the distributions ``inclavare[kbs]`` requires, copied file
   by file from their installed records (importlib.metadata), and the
   ``inclavare`` command.

Why this way: it needs no registry and no package index (nothing here is
downloaded), and a Python image from a registry would hold a different
interpreter than the one the wheels in the venv were built for; the host's
interpreter and its own libraries are, by construction, the combination the
test suite runs. The cost is an image tied to this machine's architecture
and distribution's libc (the libraries travel with it, so it runs on any
Linux kernel). The image runs ``inclavare kbs serve --log-format json`` as
uid 10001, config in ``/etc/inclavare/kbs.toml`` (mount it), state in
``/var/lib/inclavare-kbs``, port 8080.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Iterable, Iterator
from importlib import metadata

import inclavare

from ...errors import UsageError
from ...image.build import build_image
from ...image.layout import Descriptor

VENV = "/opt/inclavare-kbs"
UID = 10001
CONFIG = "/etc/inclavare/kbs.toml"
STATE = "/var/lib/inclavare-kbs"
PORT = 8080
_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "dist-packages"}
_LDD = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


class Layer:
    """A layer tar written entry by entry (numeric owners, fixed mtimes, so builds compare)."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self._seen: set[str] = set()

    def directory(self, path: str, mode: int = 0o755, uid: int = 0) -> None:
        for parent in _parents(path):
            self._add(tarfile.TarInfo(parent), mode if parent == path.strip("/") else 0o755, uid, tarfile.DIRTYPE)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.directory(os.path.dirname(path))
        info = tarfile.TarInfo(path.strip("/"))
        info.size = len(data)
        self._add(info, mode, 0, tarfile.REGTYPE, data)

    def copy(self, source: str, path: str | None = None) -> None:
        """A file of this machine (symlinks followed), at ``path`` or its own path."""
        with open(source, "rb") as f:
            self.file(path or source, f.read(), os.stat(source).st_mode & 0o755)

    def symlink(self, path: str, target: str) -> None:
        self.directory(os.path.dirname(path))
        info = tarfile.TarInfo(path.strip("/"))
        info.linkname = target
        self._add(info, 0o777, 0, tarfile.SYMTYPE)

    def _add(self, info: tarfile.TarInfo, mode: int, uid: int, kind: bytes, data: bytes | None = None) -> None:
        if info.name in self._seen:
            return
        self._seen.add(info.name)
        info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, uid, 0
        self._tar.addfile(info, io.BytesIO(data) if data is not None else None)

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


def build(output: str, ref: str = "latest") -> Descriptor:
    """Write the image into the OCI layout at ``output``, tagged ``ref``."""
    app, elves = _app_layer()
    python = _python_layer(elves)
    config = {
        "User": f"{UID}:{UID}",
        "Entrypoint": [f"{VENV}/bin/inclavare", "kbs"],
        "Cmd": ["serve", "--log-format", "json"],
        "Env": [f"PATH={VENV}/bin:/usr/bin:/bin", f"INCLAVARE_KBS_CONFIG={CONFIG}", "PYTHONDONTWRITEBYTECODE=1"],
        "WorkingDir": "/",  # any uid can enter it (a pod's runAsUser may not be the image's)
        "ExposedPorts": {f"{PORT}/tcp": {}},
        "Labels": {"org.opencontainers.image.title": "inclavare-kbs"},
    }
    compression = _compression()
    layers = [(_base_layer(), compression), (python, compression), (app, compression)]
    return build_image(output, ref, layers, config)


def _base_layer() -> bytes:
    layer = Layer()
    if os.path.exists("/bin/busybox"):
        layer.copy("/bin/busybox")
        applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout
        for applet in applets.split():
            if applet != "busybox":
                layer.symlink(f"/bin/{applet}", "busybox")
    layer.file("/etc/passwd", f"root:x:0:0:root:/root:/bin/sh\nkbs:x:{UID}:{UID}::{STATE}:/bin/false\n".encode())
    layer.file("/etc/group", f"root:x:0:\nkbs:x:{UID}:\n".encode())
    for d in ("/tmp", "/proc", "/sys", "/dev", "/root", "/etc/inclavare"):
        layer.directory(d, 0o1777 if d == "/tmp" else 0o755)
    layer.directory(STATE, 0o700, UID)
    return layer.bytes()


def _python_layer(elves: list[str]) -> bytes:
    layer = Layer()
    executable = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_paths()["stdlib"]
    layer.copy(executable)
    for path in _walk(stdlib, _SKIP_STDLIB):
        layer.copy(path)
        if path.endswith(".so"):
            elves.append(path)
    for lib in _shared_libraries([executable, *elves]):
        layer.copy(lib)
    return layer.bytes()


def _app_layer() -> tuple[bytes, list[str]]:
    """The venv and the extension modules in it (their libraries go into the python layer)."""
    layer, elves = Layer(), []
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = f"{VENV}/lib/{version}/site-packages"
    layer.file(f"{VENV}/pyvenv.cfg", f"home = {os.path.dirname(os.path.realpath(sys.executable))}\n".encode())
    layer.symlink(f"{VENV}/bin/python", os.path.realpath(sys.executable))
    script = f"#!{VENV}/bin/python\nimport sys\nfrom inclavare.cli.tool._main import main\nsys.exit(main())\n"
    layer.file(f"{VENV}/bin/inclavare", script.encode(), 0o755)
    package = os.path.dirname(os.path.abspath(inclavare.__file__))
    for path in _walk(package, {"__pycache__"}):
        layer.copy(path, f"{site}/inclavare/{os.path.relpath(path, package)}")
    for dist in _requirements("inclavare", "kbs"):
        for rel in dist.files or ():
            source = str(dist.locate_file(rel))
            if os.path.isfile(source) and not str(rel).startswith(".."):  # ../../bin/x: scripts, not needed
                layer.copy(source, f"{site}/{rel}")
                if source.endswith(".so") or ".so." in source:
                    elves.append(source)
    return layer.bytes(), elves


def _requirements(name: str, extra: str) -> Iterator[metadata.Distribution]:
    """The installed distributions ``name[extra]`` needs, transitively (markers evaluated here)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(name, {extra})]
    while todo:
        current, extras = todo.pop()
        for text in metadata.requires(current) or ():
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                continue
            key = req.name.lower().replace("_", "-")
            if key not in seen:
                seen.add(key)
                try:
                    yield metadata.distribution(req.name)
                except metadata.PackageNotFoundError:
                    raise UsageError(f"build-image: {current} needs {req.name}, which is not installed") from None
                todo.append((req.name, set(req.extras)))


def _shared_libraries(elves: Iterable[str]) -> list[str]:
    """What the dynamic loader maps for each file (``ldd``), the loader itself included."""
    found: set[str] = set()
    for elf in elves:
        out = subprocess.run(["ldd", elf], capture_output=True, text=True).stdout
        found.update(m.group(1) for m in _LDD.finditer(out))
    venv = sys.prefix + os.sep if sys.prefix != sys.base_prefix else None
    return sorted(p for p in found if venv is None or not p.startswith(venv))  # a wheel's own .libs: in the app layer


def _walk(root: str, skip: set[str]) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("config-"))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path):
                yield path


def _compression() -> str:
    try:
        import zstandard  # noqa: F401  (the images extra: fast; gzip of ~100 MB at level 9 takes a minute)
    except ImportError:
        return "gzip"
    return "zstd"


def _parents(path: str) -> list[str]:
    parts = [p for p in path.strip("/").split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
