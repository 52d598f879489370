"""/dev inside the container: default devices, symlinks and linux.devices.

Ref: runtime-spec config-linux.md "Default Devices" and "/dev symbolic links".
In a new user namespace mknod(2) is not allowed, so device nodes are
bind-mounted from the host instead (as runc does).
"""

from __future__ import annotations

import os
import stat

from ..._sys import inroot
from ...spec.model import Device
from . import owned

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..._sys import Syscalls
    from .owned import Made

DEFAULT_DEVICES = (
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)  # fmt: skip

SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
)  # fmt: skip

_TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def default_devices() -> list[Device]:
    return [Device(type="c", path=p, major=ma, minor=mi, fileMode=0o666, uid=0, gid=0) for p, ma, mi in DEFAULT_DEVICES]


def create_devices(sc: Syscalls, root_fd: int, devices: list[Device], bind: bool,
                   made: Made | None = None) -> None:  # fmt: skip
    """mknod each device (bind-mount it in a user namespace; with `made`,
    the bind mounts are noted there, see :mod:`.owned`)."""
    # Spec devices override the defaults of the same path.
    by_path = {d.path: d for d in default_devices()}
    by_path.update({d.path: d for d in devices})
    for dev in by_path.values():
        if bind:
            _bind_device(sc, root_fd, dev, made)
        else:
            _mknod(sc, root_fd, dev)


def _mknod(sc: Syscalls, root_fd: int, dev: Device) -> None:
    parent, _, name = dev.path.rpartition("/")
    pfd = inroot.mkdir_all(sc, root_fd, parent)
    try:
        mode = dev.file_mode if dev.file_mode is not None else 0o666
        try:
            os.mknod(name, _TYPE_BITS[dev.type] | mode, os.makedev(dev.major or 0, dev.minor or 0), dir_fd=pfd)
        except FileExistsError:
            return  # keep what the image has, as runc does
        os.chmod(name, mode, dir_fd=pfd)  # mknod honours the umask; the spec's mode must win
        os.chown(name, dev.uid or 0, dev.gid or 0, dir_fd=pfd, follow_symlinks=False)
    finally:
        os.close(pfd)


def _bind_device(sc: Syscalls, root_fd: int, dev: Device, made: Made | None) -> None:
    fd = inroot.create_file(sc, root_fd, dev.path)
    try:
        covered = sc.mount_id(fd) if made is not None else -1
        sc.mount(dev.path, inroot.fd_path(fd), "bind", 4096)  # MS_BIND
    finally:
        os.close(fd)
    owned.note(sc, root_fd, dev.path, covered, made)


def create_symlinks(sc: Syscalls, root_fd: int, with_ptmx: bool) -> None:
    links = list(SYMLINKS)
    if with_ptmx:
        links.append(("pts/ptmx", "/dev/ptmx"))
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    dfd = inroot.mkdir_all(sc, root_fd, "/dev")
    try:
        for target, link in links:
            name = link.rpartition("/")[2]
            if link == "/dev/ptmx":
                try:  # a ptmx node from the image would bypass the container's devpts
                    os.unlink(name, dir_fd=dfd)
                except (FileNotFoundError, IsADirectoryError):
                    pass
            try:
                os.symlink(target, name, dir_fd=dfd)
            except FileExistsError:
                pass
    finally:
        os.close(dfd)
