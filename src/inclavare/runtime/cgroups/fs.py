"""Reading, writing, making and removing cgroupfs directories.

Shared by both drivers. Interface files are opened without O_CREAT, so a
file the kernel does not provide is an error (ENOENT), never a stray regular
file. Removal follows runc's ``RemovePath``/``rmdir`` loop: sub-cgroups the
container made go first (cgroupfs refuses to rmdir a parent with children,
Documentation/admin-guide/cgroup-v1/cgroups.rst §2.3), leftover processes are
killed (after a thaw: frozen tasks cannot act on SIGKILL,
cgroup-v1/freezer-subsystem.rst), and EBUSY is retried while they exit.
"""

from __future__ import annotations

import errno
import os
import time

from ...errors import InclavareError, SpecError
from .resources import OPTIONAL, RETRY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .resources import Write

_REMOVE_TIMEOUT = 5.0  # seconds to wait for killed tasks to leave the cgroup


def write(directory: str, name: str, value: str) -> None:
    """Write one interface file; OSError (with errno) on failure."""
    fd = os.open(f"{directory}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read(directory: str, name: str) -> str | None:
    """Contents of an interface file, stripped; None if it does not exist."""
    try:
        with open(f"{directory}/{name}") as f:
            return f.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_int(directory: str, name: str) -> int | None:
    """An integer file ("max" reads as None, like a missing file)."""
    text = read(directory, name)
    if text is None or not text or text == "max":
        return None
    return int(text.split()[0])


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A flat-keyed file ("key value" per line: memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in (read(directory, name) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def write_field(directory: str, name: str, value: str, field: str) -> None:
    """Write a file that a config field asked for; errors name the field."""
    try:
        write(directory, name, value)
    except OSError as exc:
        raise field_error(field, directory, name, value, exc) from None


def field_error(field: str, directory: str, name: str, value: str, exc: OSError) -> SpecError:
    if exc.errno == errno.ENOENT:
        return SpecError(field, f"this kernel has no {name} (in {directory})")
    return SpecError(field, f"the kernel refused {value!r} for {directory}/{name}: {exc.strerror}")


def make_path(directory: str) -> str | None:
    """mkdir -p; returns the topmost directory this call created (None: all existed)."""
    missing = []
    d = directory
    while not os.path.isdir(d):
        missing.append(d)
        d = os.path.dirname(d)
    top = None
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            continue  # made concurrently by someone else: not ours to remove
        except OSError as exc:
            raise InclavareError(f"cgroup {d}: cannot create: {exc.strerror}") from None
        top = top or d
    return top


def procs(directory: str) -> list[int]:
    """Processes in a cgroup and all its descendants."""
    out: list[int] = []
    for d in _walk(directory):
        try:
            with open(d + "/cgroup.procs") as f:
                out.extend(int(p) for p in f.read().split())
        except (FileNotFoundError, NotADirectoryError):
            continue
    return out


def _walk(directory: str) -> list[str]:
    """The directory and its sub-cgroups, parents first."""
    out = [directory]
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            out.extend(_walk(entry.path))
    return out


def remove_empty(directory: str) -> bool:
    """rmdir a cgroup with no process and no sub-cgroup left — what a
    container that has exited leaves — without walking it: a cgroupfs
    readdir lists every control file, and the walks were most of a delete.
    True when the directory is gone, False when it is busy (runc's
    RemovePath tries the same rmdir first)."""
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def remove_tree(directory: str) -> None:
    """Remove a cgroup and its sub-cgroups, killing what still runs there."""
    if remove_empty(directory):
        return
    dirs = _walk(directory)
    if not dirs:
        return
    thaw_tree(directory)
    if os.path.exists(directory + "/cgroup.kill"):
        try:
            write(directory, "cgroup.kill", "1")  # cgroup v2 (5.14+): the whole subtree, frozen or not
        except OSError:
            pass
    deadline = time.monotonic() + _REMOVE_TIMEOUT
    for d in reversed(dirs):  # children before parents
        _rmdir(d, deadline)


def thaw_tree(directory: str) -> None:
    """Thaw a cgroup and every sub-cgroup the container may have frozen itself
    (v1 freezer.state, v2 cgroup.freeze), so its tasks can die."""
    for d in _walk(directory):
        for name, thawed in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            state = read(d, name)
            if state is not None and state != thawed:
                try:
                    write(d, name, thawed)
                except OSError:
                    pass


def _rmdir(directory: str, deadline: float) -> None:
    delay = 0.001
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise InclavareError(f"cgroup {directory}: cannot remove: {exc.strerror}") from None
        for pid in procs(directory):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise InclavareError(f"cgroup {directory}: still busy after killing its processes")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def prune(leaf: str, top: str) -> None:
    """rmdir the now-empty parents of `leaf` up to and including `top`,
    which rune created; stop at the first one still in use."""
    d = os.path.dirname(leaf)
    while d == top or d.startswith(top + "/"):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                return  # another container lives below it
            raise InclavareError(f"cgroup {d}: cannot remove: {exc.strerror}") from None
        d = os.path.dirname(d)


def run_writes(writes: list[Write], directory_of: Callable[[str, str], str]) -> None:
    """Write a translated batch in order (see :mod:`.resources` for the flags)."""
    i = 0
    while i < len(writes):
        field, ctl, name, value, flags = writes[i]
        directory = directory_of(ctl, field)
        try:
            write(directory, name, value)
        except OSError as exc:
            if flags & OPTIONAL and exc.errno == errno.ENOENT:
                i += 1
                continue
            if not (flags & RETRY and exc.errno == errno.EINVAL and i + 1 < len(writes)):
                raise field_error(field, directory, name, value, exc) from None
            run_writes([writes[i + 1]], directory_of)  # its partner first, then this again
            write_field(directory, name, value, field)
            i += 1
        i += 1
