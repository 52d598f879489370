"""The container's root filesystem: containerd's snapshot mounts, at <bundle>/rootfs.

containerd hands the shim the mounts of the container's snapshot with
Create (an overlay of the image's layers, or a bind mount), and the shim
mounts them on ``<bundle>/rootfs`` before `rune create` (the runc shim:
runtime/v2/runc/container.go NewContainer, mount/mount_linux.go Mount) and
unmounts them after `rune delete`.

mount(2) takes at most a page of option data. An image with many layers
makes overlay's ``lowerdir=`` longer than that; containerd shortens it by
mounting from the layers' common parent directory with relative paths,
which needs a chdir, and chdir is process-wide in this threaded shim. So
the layers are reached through short symlinks instead (``<dir>/0``,
``<dir>/1``, ..., as Docker's overlay2 driver does): overlayfs resolves the
paths when it mounts, and the links are removed right after.
"""

from __future__ import annotations

import os
import time

from .._sys import consts as c
from ..errors import SyscallError
from .errors import InvalidArgument, ShimError

PAGE = os.sysconf("SC_PAGE_SIZE")
_PROPAGATION_FLAGS = c.MS_SHARED | c.MS_PRIVATE | c.MS_SLAVE | c.MS_UNBINDABLE
_EBUSY_RETRIES = 50  # upstream's unmount: 50 tries, 50 ms apart


TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._sys import Syscalls

# Short links to an image's layers live here while an overlay is mounted: a
# short prefix keeps 128 layers' lowerdir under a page.
LINKS_ROOT = "/run/.shim-rune-l"


def _sys() -> Syscalls:
    from .. import _sys

    return _sys.default()


def mount_rootfs(mounts: list[tuple[str, str, list[str]]], target: str) -> None:
    """Mount (type, source, options) in order on `target`; on failure undo what was mounted."""
    try:
        for fstype, source, options in mounts:
            _mount_one(fstype, source, options, target)
    except SyscallError as exc:
        unmount_all(target)
        raise ShimError(f"failed to mount rootfs component: {exc}") from None
    except ShimError:
        unmount_all(target)
        raise


def _mount_one(fstype: str, source: str, options: list[str], target: str) -> None:
    if "loop" in options:
        raise InvalidArgument(f"rootfs mount {fstype} {source}: loop devices are not supported")
    from ..runtime.config import parse_mount_options  # the OCI mount options table (mount(8))

    flags, propagation, data, _copy_up = parse_mount_options(options)
    links: list[str] = []
    links_dir = ""
    if fstype == "overlay" and len(data) >= PAGE - 512:
        links_dir = os.path.join(LINKS_ROOT, os.urandom(4).hex())
        data, links = _short_lowerdirs(data, links_dir)
    if len(data) > PAGE:
        raise InvalidArgument(f"rootfs mount {fstype} {source}: mount options are too long ({len(data)} bytes)")
    sys_ = _sys()
    try:
        if not flags & c.MS_REMOUNT or data:
            sys_.mount(source, target, fstype, flags & ~_PROPAGATION_FLAGS, data or None)
    finally:
        for link in links:
            os.unlink(link)
        if links_dir:
            os.rmdir(links_dir)
    for prop in propagation:
        sys_.mount(None, target, None, prop | c.MS_SILENT)
    if flags & c.MS_BIND and flags & c.MS_RDONLY:
        sys_.mount(None, target, None, (flags & ~_PROPAGATION_FLAGS) | c.MS_REMOUNT)  # a bind is ro only after this


def _short_lowerdirs(data: str, links_dir: str) -> tuple[str, list[str]]:
    os.makedirs(LINKS_ROOT, mode=0o700, exist_ok=True)
    os.mkdir(links_dir, 0o700)
    out, links = [], []
    for opt in data.split(","):
        key, eq, value = opt.partition("=")
        if key == "lowerdir" and eq:
            short = []
            for i, layer in enumerate(value.split(":")):
                link = os.path.join(links_dir, str(i))
                os.symlink(layer, link)
                links.append(link)
                short.append(link)
            opt = "lowerdir=" + ":".join(short)
        out.append(opt)
    return ",".join(out), links


def unmount_all(target: str) -> None:
    """Unmount everything stacked on `target` (until it is no mount point: EINVAL)."""
    if not target or not os.path.exists(target):
        return
    import errno

    sys_ = _sys()
    tries = 0
    while True:
        try:
            sys_.umount2(target, 0)
        except SyscallError as exc:
            if exc.errno == errno.EINVAL:
                return
            if exc.errno == errno.EBUSY and tries < _EBUSY_RETRIES:
                tries += 1
                time.sleep(0.05)
                continue
            raise ShimError(f"failed rootfs umount: {exc}") from None
