"""Hashing files of a rootfs without letting the rootfs point outside itself.

A rootfs is untrusted input: ``/bin/app -> /etc/shadow`` or ``../../host``
symlinks must resolve *inside* the rootfs, as they will when the enclave runs
there. So files are opened with openat2(2) ``RESOLVE_IN_ROOT`` relative to a
descriptor of the rootfs (the same resolver rune uses for mount targets,
:mod:`inclavare.runtime.rootfs.paths`) and hashed through that descriptor.
"""

from __future__ import annotations

import hashlib
import os
import stat

from ... import _sys
from ...errors import SyscallError
from ...runtime.rootfs.paths import open_in_root

_CHUNK = 1 << 20


class RootfsError(Exception):
    """A file could not be hashed; callers turn this into a located error."""


def sha256_in_root(rootfs: str, path: str) -> bytes:
    """SHA-256 of the regular file at `path` (absolute, inside `rootfs`)."""
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise RootfsError(f"rootfs {rootfs}: {exc.strerror}") from None
    try:
        fd = open_in_root(_sys.default(), root_fd, path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except SyscallError as exc:
        raise RootfsError(f"{path}: {os.strerror(exc.errno) if exc.errno else 'cannot open'} in rootfs") from None
    finally:
        os.close(root_fd)
    try:
        # A FIFO or device could block or never end; only regular files are content.
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RootfsError(f"{path}: not a regular file")
        digest = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
        return digest.digest()
    except OSError as exc:
        raise RootfsError(f"{path}: {exc.strerror}") from None
    finally:
        os.close(fd)
