"""Reading /proc: process start times and states, namespaces, mountinfo (proc(5)).

A pid alone does not identify a container's init: pids are recycled. Like
runc and crun, rune records the init's start time (field 22 of
/proc/<pid>/stat, in clock ticks since boot) and treats a pid whose start time
differs as a different process.
"""

from __future__ import annotations


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from field 3 (state) on, or None if gone.

    The command name (field 2) may contain spaces and parentheses, so parsing
    starts after its *last* closing parenthesis.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rfind(b")") + 2 :].decode().split()


def start_time(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 = index 19 after (state)


def is_alive(pid: int, started: int | None) -> bool:
    """True if `pid` still is the process that started at `started`.

    A zombie counts as dead: its program has ended, only the exit status waits.
    """
    if pid <= 0:
        return False
    fields = stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


_NS_GET_NSTYPE = 0xB703  # _IO(NSIO, 0x3), <linux/nsfs.h>


def ns_type(fd: int) -> str:
    """The namespace kind ("net", "mnt", ...) an fd refers to, "" if it is no namespace.

    Asked of the kernel (ioctl NS_GET_NSTYPE, ioctl_ns(2)) rather than read
    from the fd's link text: a namespace bind-mounted elsewhere, as podman's
    /run/netns/* files are, reads back as its mount path.
    """
    import fcntl

    from .consts import NAMESPACES

    try:
        flag = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError:
        return ""
    return next((name for value, name in NAMESPACES.values() if value == flag), "")


class Mount:
    """One line of /proc/<pid>/mountinfo (proc(5)), paths decoded."""

    __slots__ = ("dev", "fstype", "id", "options", "parent", "point", "root", "source", "super_options")

    def __init__(self, fields: list[str]) -> None:
        sep = fields.index("-", 6)  # optional fields (shared:N, master:N, ...) end with "-"
        self.id = int(fields[0])
        self.parent = int(fields[1])
        self.dev = fields[2]  # "major:minor" of the filesystem
        self.root = unescape(fields[3])  # the directory of the filesystem mounted here
        self.point = unescape(fields[4])  # where, relative to the reader's root
        self.options = fields[5]
        self.fstype = fields[sep + 1]
        self.source = unescape(fields[sep + 2])
        self.super_options = fields[sep + 3] if len(fields) > sep + 3 else ""


def mountinfo(path: str = "/proc/self/mountinfo") -> list[Mount]:
    with open(path, "rb") as f:
        return [Mount(line.decode("utf-8", "surrogateescape").split(" ")) for line in f.read().splitlines() if line]


def unescape(text: str) -> str:
    r"""Undo mountinfo's octal escapes: the kernel writes space, tab, newline and
    backslash in paths as \040, \011, \012 and \134 (fs/proc_namespace.c mangle)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        code = text[i + 1 : i + 4]
        if text[i] == "\\" and len(code) == 3 and all(ch in "01234567" for ch in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
