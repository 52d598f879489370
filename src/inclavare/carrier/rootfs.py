"""Reading and writing files of a container's rootfs from the host, without leaving it.

The carrier runs as root in the shim, on a rootfs that came from an image:
``/.inclavare -> /etc`` or ``/app/x.wasm -> ../../../host/file`` must not
make it read or write a host file. Every path is resolved with openat2(2)
``RESOLVE_IN_ROOT`` against a descriptor of the rootfs (the resolver rune uses
for mount targets, :mod:`inclavare._sys.inroot`), and a file is written as a
temporary in the resolved directory, then renamed over the name: what was
there before — a symlink, a hard link to another file of the image — is
replaced, never written through.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

from .. import _sys
from .._sys.inroot import mkdir_all, open_in_root
from ..errors import SyscallError
from .errors import CarrierError


def read_head(rootfs: str, path: str, size: int, what: str) -> bytes:
    """Up to `size` bytes from the start of the regular file at `path` in `rootfs`."""
    data = _read(rootfs, path, size, what, missing_ok=False)
    assert data is not None
    return data


def read_if_present(rootfs: str, path: str, size: int, what: str) -> bytes | None:
    """As :func:`read_head`, or None when nothing is at `path` (a file an image may or may not carry)."""
    return _read(rootfs, path, size, what, missing_ok=True)


def _read(rootfs: str, path: str, size: int, what: str, *, missing_ok: bool) -> bytes | None:
    root_fd = _open_root(rootfs)
    try:
        fd = open_in_root(_sys.default(), root_fd, path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except SyscallError as exc:
        if missing_ok and exc.errno == errno.ENOENT:
            return None
        raise CarrierError(
            what, f"{path}: {os.strerror(exc.errno) if exc.errno else 'cannot open'} in the rootfs"
        ) from None
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CarrierError(what, f"{path}: not a regular file")
        return os.pread(fd, size, 0)
    except OSError as exc:
        raise CarrierError(what, f"{path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def write_files(rootfs: str, directory: str, files: dict[str, bytes]) -> None:
    """Put each ``name: data`` into `directory` of `rootfs` (created, mode 0755), mode 0644."""
    root_fd = _open_root(rootfs)
    try:
        dir_fd = mkdir_all(_sys.default(), root_fd, directory)
    except SyscallError as exc:
        raise CarrierError("rootfs", f"{directory}: {exc}") from None
    finally:
        os.close(root_fd)
    try:
        for name, data in files.items():
            _replace(dir_fd, directory, name, data)
    finally:
        os.close(dir_fd)


def _replace(dir_fd: int, directory: str, name: str, data: bytes) -> None:
    tmp = f".{name}.{secrets.token_hex(8)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise CarrierError("rootfs", f"{directory}/{name}: {exc.strerror}") from None


def _open_root(rootfs: str) -> int:
    try:
        return os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CarrierError("rootfs", f"{rootfs}: {exc.strerror}") from None
