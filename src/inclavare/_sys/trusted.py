"""Open a file that only the node's administrator can have put there.

For what rune runs or reads with root's authority on a bundle's say-so — a
PAL library it dlopens in the container's init, its own configuration — a
path is not enough: the bundle may come from an untrusted image, and a path
can be re-pointed between a check and its use. :func:`open_trusted` checks
and opens in one walk, by file descriptor, and returns the fd; the caller
uses that fd (``dlopen("/proc/self/fd/N")``), never the path again:

1. the path is absolute and does not go through ``/proc`` (``/proc/self/cwd``,
   ``/proc/<pid>/root`` and friends lead wherever a process happens to be);
2. its ``realpath`` lies inside one of the allowed directories and outside
   every forbidden one (the bundle, the rootfs): a symlink, ``..`` or a hard
   link in the image can name a file, but never make it count as the
   operator's;
3. the resolved path is then walked from ``/`` one component at a time
   (``openat`` with ``O_NOFOLLOW``): every directory is owned by an allowed
   owner (root) and not writable by group or others — or is sticky, like
   ``/tmp``: in a sticky directory nobody but an entry's owner can rename or
   remove that entry (unlink(2), EPERM) — and the file itself is a regular
   file owned by an allowed owner and not writable by group or others.

Who can change anything on that walk could as well have replaced rune.
"""

from __future__ import annotations

import os
import stat

from ..errors import UntrustedPath

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK


def open_trusted(path: str, *, allowed: tuple[str, ...], forbidden: tuple[str, ...] = (),
                 owners: tuple[int, ...] = (0,)) -> int:  # fmt: skip
    """An O_RDONLY fd of `path`, or :class:`UntrustedPath` saying which rule it breaks.

    `allowed`: directories the file must be inside (an empty tuple allows any
    place, for a file named by the operator on rune's command line).
    """
    if not os.path.isabs(path):
        raise UntrustedPath(path, "not an absolute path")
    if _inside(os.path.normpath(path), "/proc"):
        raise UntrustedPath(path, "a path through /proc is never trusted")
    try:
        real = os.path.realpath(path, strict=True)
    except OSError as exc:
        raise UntrustedPath(path, exc.strerror or "cannot be resolved") from None
    if _inside(real, "/proc"):
        raise UntrustedPath(path, f"resolves to {real}, under /proc")
    for place in forbidden:
        if place and _inside(real, os.path.realpath(place)):
            raise UntrustedPath(path, f"resolves to {real}, inside {place}")
    if allowed and not any(_inside(real, os.path.realpath(d)) for d in allowed):
        raise UntrustedPath(path, f"resolves to {real}, which is not inside {', '.join(allowed)}")
    return _walk(path, real, owners)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _walk(given: str, real: str, owners: tuple[int, ...]) -> int:
    parts = [p for p in real.split("/") if p]
    if not parts:
        raise UntrustedPath(given, "not a regular file")
    fd = os.open("/", _DIR_FLAGS)
    try:
        _check_dir(given, "/", os.fstat(fd), owners)
        for i, name in enumerate(parts[:-1]):
            fd = _step(given, fd, name, _DIR_FLAGS)
            _check_dir(given, "/" + "/".join(parts[: i + 1]), os.fstat(fd), owners)
        file_fd = _step(given, fd, parts[-1], _FILE_FLAGS, close_parent=False)
    finally:
        os.close(fd)
    try:
        _check_file(given, real, os.fstat(file_fd), owners)
    except BaseException:
        os.close(file_fd)
        raise
    return file_fd


def _step(given: str, parent: int, name: str, flags: int, close_parent: bool = True) -> int:
    try:
        fd = os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        # ELOOP/ENOTDIR: a component became a symlink after realpath (a swap).
        raise UntrustedPath(given, f"{name}: {exc.strerror} (changed while being checked?)") from None
    if close_parent:
        os.close(parent)
    return fd


def _check_dir(given: str, where: str, st: os.stat_result, owners: tuple[int, ...]) -> None:
    if st.st_uid not in owners:
        raise UntrustedPath(given, f"directory {where} is owned by uid {st.st_uid}, not {_names(owners)}")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UntrustedPath(given, f"directory {where} is writable by group or others")


def _check_file(given: str, real: str, st: os.stat_result, owners: tuple[int, ...]) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UntrustedPath(given, "not a regular file")
    if st.st_uid not in owners:
        raise UntrustedPath(given, f"{real} is owned by uid {st.st_uid}, not {_names(owners)}")
    if st.st_mode & 0o022:
        raise UntrustedPath(given, f"{real} is writable by group or others")


def _names(owners: tuple[int, ...]) -> str:
    return " or ".join("root" if uid == 0 else f"uid {uid}" for uid in owners)
