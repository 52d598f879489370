"""linux.maskedPaths, linux.readonlyPaths and linux.sysctl.

Masking hides a host-revealing file (``/proc/kcore``, ``/sys/firmware``):
files get ``/dev/null`` bind-mounted over them, directories an empty
read-only tmpfs. Read-only paths are bind-mounted onto themselves and
remounted read-only. Both are mounts made in a namespace owned by a more
privileged user namespace (or needing CAP_SYS_ADMIN to undo), so the
container cannot lift them with its default capabilities.
"""

from __future__ import annotations

import errno
import os

from ..._sys import consts as c
from ..._sys import inroot
from ...errors import SyscallError
from . import mounts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..._sys import Syscalls


def _open_existing(sc: Syscalls, root_fd: int, path: str) -> int | None:
    try:
        return inroot.open_in_root(sc, root_fd, path)
    except SyscallError as exc:
        if exc.errno == errno.ENOENT:
            return None  # nothing to mask or protect
        raise


def mask(sc: Syscalls, root_fd: int, path: str) -> None:
    fd = _open_existing(sc, root_fd, path)
    if fd is None:
        return
    try:
        target = inroot.fd_path(fd)
        if os.path.isdir(target):
            sc.mount("tmpfs", target, "tmpfs", c.MS_RDONLY, None)
        else:
            sc.mount("/dev/null", target, "bind", c.MS_BIND)
    finally:
        os.close(fd)


def readonly(sc: Syscalls, root_fd: int, path: str) -> None:
    fd = _open_existing(sc, root_fd, path)
    if fd is None:
        return
    try:
        covered = sc.mount_id(fd)
        target = inroot.fd_path(fd)
        sc.mount(target, target, "bind", c.MS_BIND | c.MS_REC)
    finally:
        os.close(fd)
    mounts.remount(sc, root_fd, path, c.MS_RDONLY | c.MS_REC, covered)


def write_sysctl(sc: Syscalls, root_fd: int, key: str, value: str) -> None:
    """Write one sysctl through the container's own /proc (proc(5) /proc/sys).

    Network, IPC and UTS sysctls apply to the writer's namespaces, so init
    (already inside them) changes the container's values, not the host's.
    """
    fd = inroot.open_in_root(sc, root_fd, "/proc/sys/" + key.replace(".", "/"), os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise SyscallError("write sysctl", exc.errno or 0, key) from None
    finally:
        os.close(fd)
