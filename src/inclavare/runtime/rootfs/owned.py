"""The mounts rune makes for a container that shares the host's mount namespace.

Without a mount namespace of its own (config-linux.md: a namespace type not
listed is inherited) the container's mounts are made in the host's, under the
rootfs, and nothing takes them away when the container stops: `rune delete`
must. It must remove *only* those: the rootfs may itself be a mount (an
overlay from containerd's snapshotter), and the operator may have mounted
volumes under it; unmounting everything below the rootfs destroyed both.

So init notes each mount as it makes it — the id of the new mount, read from
/proc/self/fdinfo of the re-opened target — and hands the list to
`rune create` with ``hooks``. create pins each one down with its line of
/proc/self/mountinfo (mount point, device, root) and keeps that in
state.json. `delete` (and a failed create's undo) unmounts a recorded mount
only if mountinfo still shows the same mount at the same place — mount ids
are reused once freed — and the target, opened inside the rootfs with
RESOLVE_IN_ROOT, still carries that id: a path the container swapped for a
symlink meanwhile resolves inside the rootfs and no further. A mount someone
else made under one of rune's goes with it (MNT_DETACH takes the subtree).
"""

from __future__ import annotations

import errno
import os

from ..._sys import consts as c
from ..._sys import inroot, proc
from ...errors import SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..._sys import Syscalls

    Made = list[tuple[int, str]]  # (mount id, destination) of each mount init made, oldest first


def note(sc: Syscalls, root_fd: int, destination: str, covered: int, made: Made | None) -> None:
    """Record the mount just made at `destination` (in init, right after mount(2)).

    `covered` is the id of the mount the target was on before: finding it
    again means the path no longer leads to the new mount (it was swapped),
    and the id would name someone else's mount.
    """
    if made is None:
        return
    fd = inroot.open_in_root(sc, root_fd, destination)
    try:
        mnt_id = sc.mount_id(fd)
    finally:
        os.close(fd)
    if mnt_id == covered:
        raise SyscallError("mount", errno.EBUSY, f"{destination} no longer resolves to the new mount (path changed)")
    made.append((mnt_id, destination))


def undo(sc: Syscalls, rootfs: str, made: Made) -> None:
    """init's own cleanup when it fails before handing the list over; best effort."""
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for mnt_id, destination in reversed(made):
            _unmount(sc, root_fd, destination, mnt_id)
    finally:
        os.close(root_fd)


def describe(made: object) -> list[dict[str, object]]:
    """The records state.json keeps: each id with its mountinfo line's identity.
    `made` is init's list as it crossed the channel: [[id, destination], ...]."""
    table = {m.id: m for m in proc.mountinfo()}
    out: list[dict[str, object]] = []
    for mnt_id, destination in made if isinstance(made, list) else []:
        m = table.get(mnt_id)
        if m is not None:
            out.append({"id": m.id, "point": m.point, "dev": m.dev, "root": m.root, "destination": destination})
    return out


def remove(sc: Syscalls, rootfs: str, records: list[dict[str, object]], warn: Callable[[str], None]) -> None:
    """Unmount the recorded mounts still in place, newest first (delete, failed create)."""
    if not records:
        return
    table = {m.id: m for m in proc.mountinfo()}
    top = os.path.realpath(rootfs)
    try:
        root_fd = os.open(top, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        warn(f"rootfs {rootfs}: {exc.strerror}: its mounts are left in place")
        return
    try:
        for rec in reversed(records):
            mnt_id = rec.get("id")
            m = table.get(mnt_id) if isinstance(mnt_id, int) else None
            if m is None or (m.point, m.dev, m.root) != (rec["point"], rec["dev"], rec["root"]):
                continue  # gone (its id may since name another mount)
            if m.point != top and not m.point.startswith(top.rstrip("/") + "/"):
                warn(f"mount {m.id} at {m.point} is no longer below the rootfs: left in place")
                continue
            if not _unmount(sc, root_fd, m.point[len(top) :], m.id):
                warn(f"mount {m.id} at {m.point} is covered by another mount: left in place")
    finally:
        os.close(root_fd)


def _unmount(sc: Syscalls, root_fd: int, inside: str, mnt_id: int) -> bool:
    """Detach mount `mnt_id` if `inside` (a path in the rootfs) leads to it."""
    try:
        fd = inroot.open_in_root(sc, root_fd, inside)
    except SyscallError:
        return False
    try:
        if sc.mount_id(fd) != mnt_id:
            return False
        sc.umount2(inroot.fd_path(fd), c.MNT_DETACH)  # the magic link names (mount, its root): that mount
        return True
    except (SyscallError, OSError):
        return False
    finally:
        os.close(fd)
