"""Telling `rune start` / `rune exec` why the container process did not run.

The last execve happens after `rune create` (or exec's setup) has reported
success, in the sealed trampoline (_sys/dmz.py), so its failure used to be an
exit status 127 and nothing else. runc names it: ``exec /bin/junk: exec format
error``, with the errno the kernel gave (libcontainer: linux.Exec's
os.PathError). rune carries that errno back on the fd `start` or `exec`
already reads until it closes — exec.fifo, or exec's pipe — as records:

    P <path> NUL        init/tenant, before the final exec: what is exec'd
    M <message> NUL     init/tenant: a failure of its own on the way (seccomp, LSM label)
    <errno: 4 bytes>    the trampoline (or init's own execve): the exec failed

EOF with no failure record means the execve succeeded: the fd is
close-on-exec from the trampoline's point on. The trampoline needs prctl and
fcntl on that fd while the container's seccomp filter is already loaded; a
filter refusing them gets the trampoline without a report fd (the errno is
then lost, as before) rather than a trampoline the filter kills.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...seccomp import Filter

_NR_FCNTL, _NR_PRCTL = 72, 157  # arch/x86/entry/syscalls/syscall_64.tbl
_PR_SET_DUMPABLE, _F_SETFD, _FD_CLOEXEC = 4, 2, 1
_LIMIT = 1 << 16  # bytes kept of a report: a path and a message fit many times over


def trampoline_can_report(seccomp: Filter | None, fd: int) -> bool:
    """Whether the filter (None: no filter) lets the trampoline use report fd `fd`."""
    if seccomp is None:
        return True
    allows = seccomp.allows
    return allows(_NR_PRCTL, (_PR_SET_DUMPABLE, 0)) and allows(_NR_FCNTL, (fd, _F_SETFD, _FD_CLOEXEC))


def announce(fd: int, path: str) -> None:
    os.write(fd, b"P" + os.fsencode(path) + b"\0")


def tell(fd: int, message: str) -> bool:
    """Write a failure record; False if nobody reads (then say it on stderr)."""
    try:
        os.write(fd, b"M" + message.encode(errors="replace").replace(b"\0", b" ") + b"\0")
    except OSError:
        return False
    return True


def tell_errno(fd: int, errno: int) -> bool:
    try:
        os.write(fd, errno.to_bytes(4, "little"))
    except OSError:
        return False
    return True


def read_all(fd: int, data: bytes = b"") -> bytes:
    """Read a blocking fd to EOF, keeping at most 64 KiB."""
    while chunk := os.read(fd, 4096):
        if len(data) < _LIMIT:
            data += chunk
    return data


def failure(data: bytes) -> str | None:
    """The failure a report names, None if the exec went ahead."""
    path = ""
    while data:
        tag, body = data[:1], data[1:]
        if tag in (b"P", b"M"):
            text, _, data = body.partition(b"\0")
            if tag == b"M":
                return text.decode(errors="replace")
            path = os.fsdecode(text)
        elif len(data) >= 4:
            return f"exec {path}: {strerror(int.from_bytes(data[:4], 'little'))}"
        else:
            return None
    return None


def strerror(errno: int) -> str:
    """The errno's text as Go (and so runc) spells it: "exec format error"."""
    text = os.strerror(errno)
    return text[:1].lower() + text[1:]
