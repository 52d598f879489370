"""Mounting the container's filesystems and switching root.

Runs in init, inside the new mount namespace, before pivot_root. Targets are
resolved inside the rootfs by :mod:`inclavare._sys.inroot`; sources of bind mounts are host
paths, as the runtime spec defines them.
"""

from __future__ import annotations

import errno
import os

from ..._sys import consts as c
from ..._sys import inroot
from ...errors import InclavareError, SyscallError
from ..config import PROPAGATION, MountEntry
from . import owned

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..._sys import Syscalls
    from .owned import Made

# Flags that only mean something to the first mount(2) call of a bind mount,
# not to the read-only/nosuid remount that follows it.
_BIND_ONLY = c.MS_BIND | c.MS_REC | c.MS_REMOUNT
# statvfs f_flag bits (ST_*) a remount in a user namespace must keep: the
# kernel locks them on mounts inherited from a more privileged namespace.
_ST_LOCKED = ((1, c.MS_RDONLY), (2, c.MS_NOSUID), (4, c.MS_NODEV), (8, c.MS_NOEXEC),
              (1024, c.MS_NOATIME), (2048, c.MS_NODIRATIME), (4096, c.MS_RELATIME))  # fmt: skip


def prepare_root(sc: Syscalls, rootfs: str) -> None:
    """Detach our mount tree from the host's, then make the rootfs a mount point.

    ``rslave`` first (runc's default): host mounts still reach us, but nothing
    we mount travels back to the host — whatever rootfsPropagation asks for is
    applied to the new root only after pivot_root (see :func:`apply_root_propagation`).
    """
    sc.mount(None, "/", None, c.MS_SLAVE | c.MS_REC)
    sc.mount(rootfs, rootfs, "bind", c.MS_BIND | c.MS_REC)


def mount_all(sc: Syscalls, root_fd: int, entries: Sequence[MountEntry], cgroups: dict[str, str],
              made: Made | None = None) -> None:  # fmt: skip
    """Mount every entry; with `made`, note each new mount in it (see :mod:`.owned`)."""
    for i, entry in enumerate(entries):
        try:
            if entry.fstype == "cgroup":
                mount_cgroup(sc, root_fd, entry, cgroups, made)
            else:
                mount_one(sc, root_fd, entry, made)
        except SyscallError as exc:
            what = f"{entry.fstype} from {entry.source}" if entry.source else entry.fstype
            # mount(2) failures: the errno says it all (the target is an fd path);
            # anything else (resolving, creating the target) has its own detail.
            why = os.strerror(exc.errno) if exc.op == "mount" else str(exc)
            raise InclavareError(f"mounts[{i}]: mounting {what} on {entry.destination}: {why}") from None


def mount_one(sc: Syscalls, root_fd: int, m: MountEntry, made: Made | None = None) -> None:
    if m.is_bind:
        _bind(sc, root_fd, m, made)
    elif m.copy_up:
        _tmpfs_copy_up(sc, root_fd, m, made)
    else:
        fd = inroot.mkdir_all(sc, root_fd, m.destination)
        try:
            covered = sc.mount_id(fd) if made is not None else -1
            sc.mount(m.source or m.fstype, inroot.fd_path(fd), m.fstype, m.flags & ~c.MS_REMOUNT, m.data or None)
        finally:
            os.close(fd)
        owned.note(sc, root_fd, m.destination, covered, made)
    _propagate(sc, root_fd, m)


def _tmpfs_copy_up(sc: Syscalls, root_fd: int, m: MountEntry, made: Made | None) -> None:
    """tmpcopyup (see :mod:`.copyup`): mounted writable, filled, then made
    read-only if asked, as runc does."""
    if m.fstype != "tmpfs":
        raise SyscallError("tmpcopyup", errno.EINVAL, "applies to tmpfs mounts only")
    from . import copyup

    fd = inroot.mkdir_all(sc, root_fd, m.destination)
    try:
        below = os.open(inroot.fd_path(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        covered = sc.mount_id(fd)
        flags = m.flags & ~(c.MS_REMOUNT | c.MS_RDONLY)
        sc.mount(m.source or m.fstype, inroot.fd_path(fd), m.fstype, flags, m.data or None)
    finally:
        os.close(fd)
    owned.note(sc, root_fd, m.destination, covered, made)
    try:
        top = inroot.open_in_root(sc, root_fd, m.destination, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if sc.mount_id(top) == covered:
                raise SyscallError("tmpcopyup", errno.EBUSY, f"{m.destination} no longer resolves to the new tmpfs")
            copyup.copy_tree(below, top)
        except OSError as exc:
            what = f"copying {exc.filename or ''}".strip()
            raise SyscallError("tmpcopyup", exc.errno or errno.EINVAL, what) from None
        finally:
            os.close(top)
    finally:
        os.close(below)
    if m.flags & c.MS_RDONLY:
        remount(sc, root_fd, m.destination, m.flags & ~_BIND_ONLY, covered)


def mount_cgroup(sc: Syscalls, root_fd: int, m: MountEntry, cgroups: dict[str, str], made: Made | None = None) -> None:
    """A "cgroup" mount shows the container its own cgroups, not the host's.

    `cgroups` maps a directory name under the destination to the host
    directory of the container's cgroup ({"": dir} on cgroup v2, where the
    one hierarchy is bound straight onto the destination). On v1 the
    hierarchies are bound into a tmpfs, as runc lays them out.
    """
    flags = m.flags & (c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC | c.MS_RDONLY)
    tmpfs_covered = -1
    if list(cgroups) != [""]:
        fd = inroot.mkdir_all(sc, root_fd, m.destination)
        try:
            tmpfs_covered = sc.mount_id(fd)
            sc.mount("tmpfs", inroot.fd_path(fd), "tmpfs", flags & ~c.MS_RDONLY, "mode=755")
        finally:
            os.close(fd)
        owned.note(sc, root_fd, m.destination, tmpfs_covered, made)
    for name, host_dir in sorted(cgroups.items()):
        dest = m.destination + ("/" + name if name else "")
        fd = inroot.mkdir_all(sc, root_fd, dest)
        try:
            covered = sc.mount_id(fd)
            sc.mount(host_dir, inroot.fd_path(fd), "bind", c.MS_BIND | c.MS_REC)
        finally:
            os.close(fd)
        owned.note(sc, root_fd, dest, covered, made)
        remount(sc, root_fd, dest, flags, covered)
    if list(cgroups) != [""] and flags & c.MS_RDONLY:
        remount(sc, root_fd, m.destination, flags, tmpfs_covered)


def _bind(sc: Syscalls, root_fd: int, m: MountEntry, made: Made | None) -> None:
    try:
        is_dir = os.path.isdir(m.source)
        os.stat(m.source)
    except OSError as exc:
        raise SyscallError("bind mount", exc.errno or errno.ENOENT, f"source {m.source}") from None
    fd = inroot.mkdir_all(sc, root_fd, m.destination) if is_dir else inroot.create_file(sc, root_fd, m.destination)
    try:
        covered = sc.mount_id(fd)
        sc.mount(m.source, inroot.fd_path(fd), "bind", m.flags & (c.MS_BIND | c.MS_REC))
    finally:
        os.close(fd)
    owned.note(sc, root_fd, m.destination, covered, made)
    if m.flags & ~_BIND_ONLY:
        remount(sc, root_fd, m.destination, m.flags & ~_BIND_ONLY, covered)


def remount(sc: Syscalls, root_fd: int, destination: str, flags: int, covered: int) -> None:
    """Apply `flags` (ro, nosuid, ...) to the bind mount now at `destination`.

    The target is opened again after mounting: the old fd names the covered
    mount point, not the new mount. `covered` is the id of the mount the old
    fd was on; if the path now resolves there again, something swapped it
    between the two steps and the flags would land on the wrong object
    (the CVE-2021-30465 class), so nothing is remounted.
    """
    fd = inroot.open_in_root(sc, root_fd, destination)
    try:
        if sc.mount_id(fd) == covered:
            why = f"{destination} no longer resolves to the new mount (path changed)"
            raise SyscallError("remount", errno.EBUSY, why)
        target = inroot.fd_path(fd)
        try:
            sc.mount(None, target, None, flags | c.MS_BIND | c.MS_REMOUNT)
        except SyscallError as exc:
            if exc.errno != errno.EPERM:  # keep the flags the kernel locked, retry
                raise
            sc.mount(None, target, None, flags | _locked_flags(target) | c.MS_BIND | c.MS_REMOUNT)
    finally:
        os.close(fd)


def _locked_flags(path: str) -> int:
    st = os.statvfs(path)
    return sum(ms for st_bit, ms in _ST_LOCKED if st.f_flag & st_bit)


def _propagate(sc: Syscalls, root_fd: int, m: MountEntry) -> None:
    if not m.propagation:
        return
    fd = inroot.open_in_root(sc, root_fd, m.destination)
    try:
        for flag in m.propagation:
            sc.mount(None, inroot.fd_path(fd), None, flag)
    finally:
        os.close(fd)


def pivot(sc: Syscalls, rootfs: str) -> None:
    """pivot_root(".", ".") trick (runc pivotRoot): no temporary old-root directory
    is needed, and the old root is detached right away."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")
        os.fchdir(old)
        # The old root may be shared with the host: make it slave before
        # unmounting so the unmount does not propagate back.
        sc.mount(None, ".", None, c.MS_SLAVE | c.MS_REC)
        sc.umount2(".", c.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def move_root(sc: Syscalls, rootfs: str) -> None:
    """--no-pivot: MS_MOVE the rootfs over / and chroot (for ramdisk roots,
    where pivot_root is impossible). Weaker: the old root stays reachable to
    a process that can escape the chroot, as with runc --no-pivot."""
    os.chdir(rootfs)
    sc.mount(rootfs, "/", None, c.MS_MOVE)
    sc.chroot(".")
    os.chdir("/")


def chroot(sc: Syscalls, rootfs: str) -> None:
    """Enter the rootfs of a container that shares the host's mount namespace."""
    os.chdir(rootfs)
    sc.chroot(".")
    os.chdir("/")


def apply_root_propagation(sc: Syscalls, propagation: str | None) -> None:
    if propagation:
        sc.mount(None, "/", None, PROPAGATION[propagation] | c.MS_REC)


def readonly_root(sc: Syscalls) -> None:
    try:
        sc.mount(None, "/", None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY)
    except SyscallError as exc:
        if exc.errno != errno.EPERM:
            raise
        sc.mount(None, "/", None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | _locked_flags("/"))
