"""Small file helpers: atomic writes and create-once secret files.

Secrets (the host secret, the software-TEE key) are created on first use.
Two processes may race to create one, and a half-written secret would brick
everything sealed with it, so a secret is written to a private temporary
file first and then published with link(2), which fails if the name exists:
the loser reads the winner's secret instead of replacing it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable

from .errors import HostKeyError


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_or_create_secret(path: str, make: Callable[[], bytes], what: str) -> bytes:
    """The content of the 0600 secret file at `path`, created with ``make()`` if absent."""
    try:
        return _read_secret(path, what)
    except FileNotFoundError:
        pass
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    except OSError as exc:
        raise HostKeyError(path, "", f"cannot create {what}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp already made it 0600
            f.write(make())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first; use theirs
    except OSError as exc:
        raise HostKeyError(path, "", f"cannot create {what}: {exc.strerror}") from None
    finally:
        os.unlink(tmp)
    try:
        return _read_secret(path, what)
    except FileNotFoundError:
        raise HostKeyError(path, "", f"{what} vanished while being created") from None


def _read_secret(path: str, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not hang us
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise HostKeyError(path, "", f"cannot open {what}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HostKeyError(path, "", f"{what} is not a regular file")
        # Like ssh with private keys: a secret others can read is no secret.
        if st.st_mode & 0o077:
            raise HostKeyError(path, "", f"{what} has mode {stat.S_IMODE(st.st_mode):04o}; it must be 0600")
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 1 << 16:
                raise HostKeyError(path, "", f"{what} is larger than 64 KiB")
        return b"".join(chunks)
    except OSError as exc:
        raise HostKeyError(path, "", f"cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
