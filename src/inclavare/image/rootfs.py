"""Path resolution confined to a rootfs: every lookup is relative to a directory fd.

A layer's paths are interpreted the way the container will see them: a
symlink met in a *parent* component is followed, but inside the rootfs
(``/`` and ``..`` stop at the rootfs, as ``openat2(RESOLVE_IN_ROOT)`` and
filepath-securejoin do), and the *final* component is never followed. Each
step is an ``openat(O_PATH|O_NOFOLLOW|O_DIRECTORY)`` relative to the
previous directory's fd, so no path string is ever handed to the kernel
whole and nothing outside the rootfs can be reached or created.
"""

from __future__ import annotations

import os
import stat

from .errors import UnsafeArchive

MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def components(name: str, where: str) -> list[str]:
    """A tar member name as path components; absolute names and ``..`` are refused."""
    if "\0" in name:
        raise UnsafeArchive(where, name[:120], "NUL byte in path")
    if name.startswith("/"):
        raise UnsafeArchive(where, name[:120], "absolute path in layer")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(where, name[:120], "'..' in layer path")
    return parts


class RootFS:
    """An open rootfs directory and in-root lookups below it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def open_dir(self, parts: list[str], where: str, create: bool = False, mode: int = 0o755) -> int:
        """An ``O_PATH`` fd of the directory at `parts`, resolved in-root.

        With `create`, missing directories are made (`mode`), as tar does for
        parents an archive does not list. The caller closes the fd.
        """
        stack = [os.dup(self.fd)]
        pending = list(reversed(parts))
        hops = 0
        try:
            while pending:
                name = pending.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                cur = stack[-1]
                try:
                    st = os.stat(name, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        raise UnsafeArchive(where, "/".join(parts)[:120], f"parent {name!r} does not exist") from None
                    os.mkdir(name, mode, dir_fd=cur)
                    st = os.stat(name, dir_fd=cur, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINKS:
                        raise UnsafeArchive(where, "/".join(parts)[:120], "too many levels of symbolic links")
                    target = os.readlink(name, dir_fd=cur)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    pending.extend(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafeArchive(where, "/".join(parts)[:120], f"parent {name!r} is not a directory")
                stack.append(os.open(name, _DIR_FLAGS, dir_fd=cur))
            return stack.pop()
        finally:
            for fd in stack:
                os.close(fd)

    def lstat(self, dirfd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def remove(self, dirfd: int, name: str) -> None:
        """Remove `name` (a whole tree if a directory) without following any symlink.
        `name` is one entry of `dirfd`: never empty, ".", ".." or a path."""
        import shutil

        if name in ("", ".", "..") or "/" in name:
            raise UnsafeArchive("rootfs", name, "not an entry of the directory: refusing to remove it")
        st = self.lstat(dirfd, name)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            # rmtree's fd-based walk opens every level with O_NOFOLLOW (symlink-attack safe).
            shutil.rmtree(name, dir_fd=dirfd)
        else:
            os.unlink(name, dir_fd=dirfd)

    def listdir(self, dirfd: int) -> list[str]:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def read_file(self, parts: list[str], where: str, limit: int = 1 << 20) -> bytes | None:
        """A regular file's contents, every symlink (the last one too) followed in-root; None if absent."""
        for _ in range(MAX_SYMLINKS):
            try:
                dirfd = self.open_dir(parts[:-1], where)
            except UnsafeArchive:
                return None
            try:
                st = self.lstat(dirfd, parts[-1])
                if st is None:
                    return None
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(parts[-1], dir_fd=dirfd)
                    base = [] if target.startswith("/") else parts[:-1]
                    parts = [p for p in [*base, *target.split("/")] if p not in ("", ".")]
                    if not parts:
                        return None
                    continue
                if not stat.S_ISREG(st.st_mode):
                    return None
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
                with os.fdopen(fd, "rb") as f:
                    return f.read(limit)
            finally:
                os.close(dirfd)
        raise UnsafeArchive(where, "/".join(parts)[:120], "too many levels of symbolic links")
