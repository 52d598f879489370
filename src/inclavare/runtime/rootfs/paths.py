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

import os

from ..._sys import consts as c
from ...errors import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..._sys import Syscalls

_RESOLVE = c.RESOLVE_IN_ROOT | c.RESOLVE_NO_MAGICLINKS


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_in_root(sc: Syscalls, root_fd: int, path: str, flags: int = os.O_PATH) -> int:
    return sc.openat2(root_fd, path.lstrip("/") or ".", flags, _RESOLVE)


def _components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def mkdir_all(sc: Syscalls, root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create `path` (and parents) inside the root; return an O_PATH fd to it.

    The common case — the directory exists — costs one openat2. Otherwise the
    deepest existing ancestor is found and the rest is created one level at a
    time, each new level opened relative to its parent with symlinks refused:
    a directory swapped for a symlink between mkdir and open is caught.
    """
    parts = _components(path)
    missing: list[str] = []
    while True:
        try:
            fd = open_in_root(sc, root_fd, "/".join(parts) or ".", os.O_PATH | os.O_DIRECTORY)
            break
        except SyscallError as exc:
            if exc.errno != 2 or not parts:  # only ENOENT means "create it"
                raise
            missing.insert(0, parts.pop())
    for name in missing:
        try:
            try:
                os.mkdir(name, mode, dir_fd=fd)
            except FileExistsError:
                pass  # made meanwhile (by us or the image): open it all the same
            nxt = sc.openat2(fd, name, os.O_PATH | os.O_DIRECTORY, c.RESOLVE_NO_SYMLINKS | c.RESOLVE_BENEATH)
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
