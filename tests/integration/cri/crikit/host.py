"""What the host shows of containers, and how the kit cleans it up:
mounts (/proc/self/mountinfo), cgroup directories and processes.

Used both to assert that CRI removal leaves nothing behind and, at
teardown, to remove what a failed test left, so one failure cannot leak
mounts under pytest's temp dir (which pytest later deletes recursively) or
cgroups into the host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo (proc(5))
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f]


def mounts_below(path: str) -> list[str]:
    path = os.path.realpath(path)
    return [m for m in mount_points() if m == path or m.startswith(path + "/")]


def unmount_below(path: str) -> None:
    """Lazily unmount everything at or below `path`, deepest first."""
    for m in sorted(set(mounts_below(path)), key=len, reverse=True):
        subprocess.run(["umount", "-l", "--", m], capture_output=True, check=False)


def cgroup_roots() -> list[str]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy."""
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                roots.append(_unescape(fields[4]))
    return sorted(set(roots))


def cgroup_dirs(cgroups_path: str) -> list[str]:
    """Existing directories of a cgroupsPath (OCI linux.cgroupsPath) in every hierarchy."""
    rel = cgroups_path.strip("/")
    return [d for d in (os.path.join(r, rel) for r in cgroup_roots()) if os.path.isdir(d)]


def remove_cgroup_tree(cgroups_path: str) -> list[str]:
    """rmdir a cgroup and its descendants in every hierarchy; returns what stayed (busy)."""
    left = []
    for top in cgroup_dirs(cgroups_path):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                left.append(dirpath)
    return left


def pids_naming(needle: str) -> list[int]:
    """PIDs whose command line contains `needle` (containerd and its shims name our socket)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie: the VM's PID 1 reaps orphaned shims lazily."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_and_wait(pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL `pids` (each one we started, found by our socket path); returns survivors."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]
