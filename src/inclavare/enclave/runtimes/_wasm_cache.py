"""The on-disk cache of compiled wasm modules, used only through a directory fd.

Compiling a module with Cranelift costs tens of milliseconds per start (80 ms
for samples/wasm/hello.c on the reference VM); ``Module.serialize`` /
``Module.deserialize`` (wasmtime docs, "Module::deserialize") turn that into
well under a millisecond. The cache lives on the host (default
``/var/lib/inclavare/wasm-cache``, or ``$INCLAVARE_WASM_CACHE``): the
runtime opens the directory before pivot_root and afterwards reaches files
only relative to that fd (``dir_fd=``), never by a host path.

Deserializing is unsafe by wasmtime's own account: the bytes are machine code
that is trusted to be what wasmtime produced. So the directory must belong to
us and be writable by nobody else (else the cache is off), every file must
belong to us and carry a SHA-256 of its payload (a truncated or corrupted
file is recompiled, never loaded), and files are written to a private
temporary name and renamed into place (rename(2) is atomic). The file name is
SHA-256 over the module's hash, the engine settings, the wasmtime version and
the machine: any of them changing means another entry. Nothing here is ever
fatal: a cache that does not work only costs the compile time.

File format: ``b"ICLVCWSM" || sha256(payload) || payload``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable

DEFAULT_DIR = "/var/lib/inclavare/wasm-cache"
ENV = "INCLAVARE_WASM_CACHE"
MAGIC = b"ICLVCWSM"
_MAX_FILE = 1 << 30
_HEADER = len(MAGIC) + 32


class ModuleCache:
    """A cache directory held open by fd (``fd == -1``: the cache is off)."""

    def __init__(self, path: str | None, log: Callable[[str], None]) -> None:
        self.path = path or os.environ.get(ENV) or DEFAULT_DIR
        self._log = log
        self.fd = -1
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            log(f"wasm: compiled-module cache {self.path} off: {exc.strerror}")
            return
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            os.close(fd)
            log(f"wasm: compiled-module cache {self.path} off: not owned by uid {os.geteuid()} or writable by others")
            return
        self.fd = fd

    @staticmethod
    def key(module_sha256: bytes, settings: str, version: str) -> str:
        material = b"\0".join([module_sha256, settings.encode(), version.encode(), os.uname().machine.encode()])
        return hashlib.sha256(b"inclavare/wasm-cache/v1\0" + material).hexdigest() + ".cwasm"

    def load(self, name: str) -> bytes | None:
        """The cached payload, or None (missing, foreign, corrupt: all mean "compile")."""
        if self.fd < 0:
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > _MAX_FILE:
                self._log(f"wasm: cache entry {name} ignored: not a regular file of ours")
                return None
            data = _read_all(fd, st.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)
        payload = data[_HEADER:]
        if data[: len(MAGIC)] != MAGIC or hashlib.sha256(payload).digest() != data[len(MAGIC) : _HEADER]:
            self._log(f"wasm: cache entry {name} ignored: corrupt")
            return None
        return payload

    def store(self, name: str, payload: bytes) -> None:
        if self.fd < 0:
            return
        tmp = f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd
            )
            try:
                data = memoryview(MAGIC + hashlib.sha256(payload).digest() + payload)
                while data:
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as exc:
            self._log(f"wasm: cache entry {name} not written: {exc.strerror}")
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except OSError:
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, max(size, 1 << 16)):
        chunks.append(chunk)
    return b"".join(chunks)
