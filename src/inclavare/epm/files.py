"""Copying cache data in and out: regular files and directories only, never through a link.

epm runs as root and copies from and to paths its (root) clients name, so
the copy must not be steered: a symbolic link, device, FIFO or socket in the
source is refused (it would copy what the link points at, or block), every
file is opened with O_NOFOLLOW, and nothing copied keeps a set-user-ID,
set-group-ID or sticky bit. The total is counted as it goes and the copy
stops past `limit` bytes: an entry larger than the whole cache is refused,
not truncated. The carrier hands epm directories of its own (a private
temporary directory), never a path inside a container's rootfs.
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import BinaryIO

from .errors import INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, CacheError

_CHUNK = 1 << 20
_MAX_FILES = 10_000


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit
        self.files = 0

    def spend(self, size: int, where: str) -> None:
        self.left -= size
        self.files += 1
        if self.left < 0:
            raise CacheError(RESOURCE_EXHAUSTED, where, "larger than the cache's max_size")
        if self.files > _MAX_FILES:
            raise CacheError(RESOURCE_EXHAUSTED, where, f"more than {_MAX_FILES} files")


def copy_in(source: str, dest: str, limit: int) -> int:
    """Copy `source` (a file or a directory tree) to the new path `dest`; the bytes copied."""
    if not os.path.isabs(source):
        raise CacheError(INVALID_ARGUMENT, "sourcePath", f"{source!r} is not an absolute path")
    budget = _Budget(limit)
    st = _lstat(source, "sourcePath")
    if stat.S_ISDIR(st.st_mode):
        _copy_tree(source, dest, st, budget)
    else:
        _copy_file(source, dest, st, budget)
    return limit - budget.left


def copy_out(data: str, target: str) -> None:
    """Copy cached `data` to `target`: a directory's content into the existing directory `target`,
    a file onto the path `target` (replaced whole)."""
    if not os.path.isabs(target):
        raise CacheError(INVALID_ARGUMENT, "targetPath", f"{target!r} is not an absolute path")
    budget = _Budget(1 << 62)
    st = os.lstat(data)
    if stat.S_ISDIR(st.st_mode):
        tst = _lstat(target, "targetPath")
        if not stat.S_ISDIR(tst.st_mode):
            raise CacheError(INVALID_ARGUMENT, "targetPath", f"{target} is not a directory (the entry is one)")
        for entry in sorted(os.listdir(data)):
            _copy_any(os.path.join(data, entry), os.path.join(target, entry), budget)
        return
    if os.path.isdir(target):
        raise CacheError(INVALID_ARGUMENT, "targetPath", f"{target} is a directory (the entry is a file)")
    tmp = f"{target}.epm-{os.getpid()}"
    _copy_file(data, tmp, st, budget)
    os.replace(tmp, target)


def _lstat(path: str, field: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        raise CacheError(NOT_FOUND, field, f"{path} does not exist") from None
    except OSError as exc:
        raise CacheError(INVALID_ARGUMENT, field, f"{path}: {exc.strerror}") from None


def _copy_any(src: str, dest: str, budget: _Budget) -> None:
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        _copy_tree(src, dest, st, budget)
    else:
        _copy_file(src, dest, st, budget)


def _copy_tree(src: str, dest: str, st: os.stat_result, budget: _Budget) -> None:
    try:
        os.mkdir(dest, 0o700)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(dest).st_mode):
            raise CacheError(INVALID_ARGUMENT, dest, "exists and is not a directory") from None
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        _copy_any(entry.path, os.path.join(dest, entry.name), budget)
    os.chmod(dest, stat.S_IMODE(st.st_mode) & 0o777)


def _copy_file(src: str, dest: str, st: os.stat_result, budget: _Budget) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise CacheError(INVALID_ARGUMENT, src, "not a regular file or a directory (links are not followed)")
    budget.spend(st.st_size, src)
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        opened = os.fstat(fd_in)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):  # swapped since the lstat
            raise CacheError(INVALID_ARGUMENT, src, "changed while it was copied")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd_out = os.open(dest, flags, 0o600)
        try:
            with os.fdopen(fd_in, "rb", closefd=False) as fin, os.fdopen(fd_out, "wb", closefd=False) as fout:
                copied = _copy_bounded(fin, fout, st.st_size + 1)
            if copied != st.st_size:  # it changed under us: keep nothing half-true
                raise CacheError(INVALID_ARGUMENT, src, "changed while it was copied")
            os.fchmod(fd_out, stat.S_IMODE(st.st_mode) & 0o777)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_bounded(fin: BinaryIO, fout: BinaryIO, limit: int) -> int:
    done = 0
    while done < limit:
        chunk = fin.read(min(_CHUNK, limit - done))
        if not chunk:
            break
        fout.write(chunk)
        done += len(chunk)
    return done


def remove(path: str) -> None:
    """Remove cached data (a file or a tree); already gone is fine."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
