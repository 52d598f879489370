"""``tmpcopyup``: a tmpfs that starts with what the rootfs had beneath it.

An extension runc and crun share (podman sets it on ``--tmpfs`` mounts by
default): without it, a tmpfs over ``/var/cache/app`` hides the image's
files there. The directory is opened *before* the tmpfs covers it — an open
fd keeps naming the covered directory — so no scratch mount point is needed,
and the copy is fd-relative throughout: every name is opened with
O_NOFOLLOW under its parent's fd, so a symlink in the (untrusted) rootfs is
copied as a symlink and never followed out of it.
"""

from __future__ import annotations

import errno
import os
import stat

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_tree(src_dir: int, dst_dir: int) -> None:
    """Copy the contents of directory fd `src_dir` into `dst_dir`, keeping
    owners, modes and times; sockets are skipped (they mean nothing copied)."""
    with os.scandir(src_dir) as entries:
        names = [e.name for e in entries]
    for name in names:
        st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            continue
        if kind == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=dst_dir)
            _copy_dir(src_dir, dst_dir, name)
        elif kind == stat.S_IFREG:
            _copy_file(src_dir, dst_dir, name)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
        else:  # fifos and device nodes, as mknod(2) makes them
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst_dir)
        _copy_attributes(dst_dir, name, st)


def _copy_dir(src_parent: int, dst_parent: int, name: str) -> None:
    src = os.open(name, _DIR, dir_fd=src_parent)
    try:
        dst = os.open(name, _DIR, dir_fd=dst_parent)
        try:
            copy_tree(src, dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_file(src_parent: int, dst_parent: int, name: str) -> None:
    # O_NONBLOCK: if the name was swapped for a fifo since the stat, opening
    # it must not hang; fstat then says it is not a regular file any more.
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_parent)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise OSError(errno.EINVAL, f"{name} changed while being copied")
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=dst_parent)  # fmt: skip
        try:
            while os.sendfile(dst, src, None, 1 << 20):
                pass
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_attributes(dst_dir: int, name: str, st: os.stat_result) -> None:
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):  # after chown, which clears set-id bits
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)
