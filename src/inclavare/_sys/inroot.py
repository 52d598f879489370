"""Resolving paths inside the container rootfs without escaping it.

A rootfs is untrusted: an image can hold ``/proc -> /host/etc`` or
``../../..`` symlinks, and a process in a container sharing the rootfs can
swap a directory for a symlink while rune sets up mounts (the mount-target
races behind CVE-2021-30465 and friends). So every target is opened with
openat2(2) ``RESOLVE_IN_ROOT`` relative to a file descriptor of the rootfs —
symlinks, absolute or ``..``, resolve as if the rootfs were ``/``, and magic
links are refused — and the kernel object is then used through its fd
(``/proc/self/fd/N`` as the mount target), never through the path again.
"""

from __future__ import annotations

import errno
import os

from ..errors import SyscallError
from . import consts as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import Syscalls

_RESOLVE = c.RESOLVE_IN_ROOT | c.RESOLVE_NO_MAGICLINKS
# Below an already resolved directory: no symlink at all, no way out of it.
_NO_LINKS = c.RESOLVE_NO_SYMLINKS | c.RESOLVE_BENEATH


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_in_root(sc: Syscalls, root_fd: int, path: str, flags: int = os.O_PATH) -> int:
    return sc.openat2(root_fd, path.lstrip("/") or ".", flags, _RESOLVE)


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def mkdir_all(sc: Syscalls, root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create `path` (and parents) inside the root; return an O_PATH fd to it.

    The common case — the directory exists — costs one openat2. Otherwise the
    deepest existing ancestor is opened (RESOLVE_IN_ROOT: its symlinks resolve
    inside the root) and the missing levels are created one at a time, each
    opened relative to its parent with symlinks refused: a directory swapped
    for a symlink meanwhile is caught, never followed. A missing level that is
    a dangling symlink is refused too — runc's securejoin would create its
    target, but a target spelled by the image (``/proc/self/fd/N``, ``../..``)
    is exactly what must not decide where rune creates directories.
    """
    try:
        return open_in_root(sc, root_fd, path, os.O_PATH | os.O_DIRECTORY)
    except SyscallError as exc:
        if exc.errno != errno.ENOENT:
            raise
    parts = _components(path)
    have = len(parts)
    while True:
        have -= 1
        try:
            fd = open_in_root(sc, root_fd, "/".join(parts[:have]) or ".", os.O_PATH | os.O_DIRECTORY)
            break
        except SyscallError as exc:
            if exc.errno != errno.ENOENT or have == 0:
                raise
    for name in parts[have:]:
        try:
            try:
                os.mkdir(name, mode, dir_fd=fd)
            except FileExistsError:
                pass  # made meanwhile (by us or the image): open it all the same
            try:
                nxt = sc.openat2(fd, name, os.O_PATH | os.O_DIRECTORY, _NO_LINKS)
            except SyscallError as exc:
                if exc.errno == errno.ELOOP:
                    raise SyscallError(
                        "create directory", exc.errno, f"{path} ({name} is a dangling symlink)"
                    ) from None
                raise
        finally:
            os.close(fd)
        fd = nxt
    return fd


def create_file(sc: Syscalls, root_fd: int, path: str, mode: int = 0o644) -> int:
    """Create an empty regular file at `path` (parents too) unless something is
    there already; return an O_PATH fd to whatever is at `path`."""
    parent, _, name = path.rstrip("/").rpartition("/")
    pfd = mkdir_all(sc, root_fd, parent)
    try:
        try:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=pfd))
        except FileExistsError:
            pass
        return open_in_root(sc, root_fd, path)
    finally:
        os.close(pfd)


def exists_in_root(sc: Syscalls, root_fd: int, path: str) -> bool:
    try:
        os.close(open_in_root(sc, root_fd, path))
    except SyscallError:
        return False
    return True
