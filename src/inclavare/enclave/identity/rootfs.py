"""Reading and hashing files of a rootfs without letting the rootfs point outside itself.

A rootfs is untrusted input: ``/bin/app -> /etc/shadow`` or ``../../host``
symlinks must resolve *inside* the rootfs, as they will when the enclave runs
there. So files are opened with openat2(2) ``RESOLVE_IN_ROOT`` relative to a
descriptor of the rootfs (the same resolver rune uses for mount targets,
:mod:`inclavare._sys.inroot`), and only regular files are read: a
FIFO or a device could block or never end. The identity layer hashes files
this way (:func:`sha256_in_root`), and the built-in runtimes read the program
they run (:func:`read_in_root`): one resolver and one set of checks for both.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import TYPE_CHECKING

from ... import _sys
from ..._sys.inroot import open_in_root
from ...errors import SyscallError
from .errors import IdentityError

if TYPE_CHECKING:
    from ..._sys import Syscalls

_CHUNK = 1 << 20


class RootfsError(IdentityError):
    """A file of the rootfs cannot be opened or read: ``<path>: <reason>``; callers say what the file is for."""


def sha256_in_root(rootfs: str, path: str) -> bytes:
    """SHA-256 of the regular file at `path` (absolute, inside `rootfs`)."""
    fd = _open_regular(rootfs, path, _sys.default())
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
        return digest.digest()
    except OSError as exc:
        raise RootfsError(f"{path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_in_root(rootfs: str, path: str, limit: int, sc: Syscalls | None = None) -> bytes:
    """The content of the regular file at `path` (absolute, inside `rootfs`), at most `limit` bytes.

    `sc` is the syscall layer to resolve with; a runtime that runs after
    pivot_root passes the one it loaded before.
    """
    fd = _open_regular(rootfs, path, sc if sc is not None else _sys.default())
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise RootfsError(f"{path}: {exc.strerror}") from None
    if len(data) > limit:
        raise RootfsError(f"{path}: larger than {_size(limit)}")
    return data


def _open_regular(rootfs: str, path: str, sc: Syscalls) -> int:
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RootfsError(f"rootfs {rootfs}: {exc.strerror}") from None
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before the check below refuses it.
        fd = open_in_root(sc, root_fd, path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except SyscallError as exc:
        raise RootfsError(f"{path}: {os.strerror(exc.errno) if exc.errno else 'cannot open'} in rootfs") from None
    finally:
        os.close(root_fd)
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise RootfsError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise RootfsError(f"{path}: not a regular file")
    return fd


def _size(limit: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if limit >= 1 << shift and limit % (1 << shift) == 0:
            return f"{limit >> shift} {unit}"
    return f"{limit} bytes"
