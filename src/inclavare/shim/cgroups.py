"""A container's cgroup as the shim sees it: statistics for Stats, OOM for TaskOOM.

The shim finds the container's cgroup from its init's /proc/<pid>/cgroup
right after `rune create` (runc shim: cgroups.Load(V1, PidPath(pid)) or
cgroupsv2.PidGroupPath), and reads the files github.com/containerd/cgroups
v1.0.4 reads for the Metrics messages the CRI plugin decodes
(proto/github.com/containerd/cgroups). The host is "unified" when
/sys/fs/cgroup is cgroup2; a hybrid host (v1 controllers, cgroup2 with none
at /sys/fs/cgroup/unified) is treated as v1, as containerd does.

OOM (pkg/oom/v1, pkg/oom/v2): on v1 an eventfd registered in the memory
cgroup's cgroup.event_control for memory.oom_control (cgroup-v1/memory.rst,
"Memory thresholds" and "OOM Control") fires on every OOM, and also when the
cgroup is removed (then the watch ends); on v2, memory.events is a kernfs
file whose change wakes poll() with POLLPRI (cgroup-v2.rst, "memory.events"),
and an OOM is a rise of its oom_kill count. One thread epolls them all.
"""

from __future__ import annotations

import os
import select
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = "/sys/fs/cgroup"


def unified() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == ROOT and line.split(" - ")[1].startswith("cgroup2 ") for line in f)


def _v1_mounts() -> dict[str, str]:
    """controller -> mount point of its v1 hierarchy."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, options = right.split()[:3]
            if fstype == "cgroup":
                for opt in options.split(","):
                    found.setdefault(opt, left.split()[4])
    return found


class Cgroup:
    """The cgroup of a process: one directory per v1 controller, or one v2 directory."""

    def __init__(self, pid: int) -> None:
        self.v2 = unified()
        self.paths: dict[str, str] = {}
        with open(f"/proc/{pid}/cgroup") as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f]
        if self.v2:
            self.paths = {"": os.path.join(ROOT, next(p for h, _c, p in entries if h == "0").lstrip("/"))}
            return
        mounts = _v1_mounts()
        for _h, controllers, path in entries:
            for ctrl in controllers.split(","):
                if ctrl in mounts:
                    self.paths[ctrl] = os.path.join(mounts[ctrl], path.lstrip("/"))

    def file(self, controller: str, name: str) -> str:
        return os.path.join(self.paths["" if self.v2 else controller], name)

    def exists(self) -> bool:
        return os.path.isdir(self.paths.get("" if self.v2 else "memory", "/nonexistent"))

    def kill_all(self, signal: int) -> None:
        """Signal every process in the cgroup until none is left (10 rounds at most: a fork may
        race a round)."""
        controller = "" if self.v2 else next((c for c in ("pids", "freezer", "memory", "cpu") if c in self.paths), "")
        for _ in range(10 if controller in self.paths else 0):
            try:
                with open(self.file(controller, "cgroup.procs")) as f:
                    pids = [int(p) for p in f.read().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def stats(self) -> tuple[str, bytes]:
        """(type URL, serialized Metrics) of the cgroup now."""
        from . import cgstats

        return cgstats.v2(self) if self.v2 else cgstats.v1(self)


class OomWatcher:
    """Calls ``on_oom(container_id)`` for every OOM in a watched cgroup."""

    def __init__(self, on_oom: Callable[[str], None], log: Callable[[str], None]) -> None:
        self.on_oom = on_oom
        self.log = log
        self._epoll: select.epoll | None = None
        self._watched: dict[int, tuple[str, Cgroup, int]] = {}  # fd -> (id, cgroup, last oom_kill count)
        self._lock = threading.Lock()

    def add(self, container_id: str, cg: Cgroup) -> None:
        try:
            if cg.v2:
                fd, mask = self._v2_fd(cg), select.EPOLLPRI | select.EPOLLERR
            else:
                fd, mask = self._v1_fd(cg), select.EPOLLIN
        except (OSError, KeyError, StopIteration) as exc:
            self.log(f"OOM watch of {container_id}: {exc}")
            return
        with self._lock:
            if self._epoll is None:
                self._epoll = select.epoll()
                threading.Thread(target=self._run, name="oom", daemon=True).start()
            self._watched[fd] = (container_id, cg, _oom_kills(fd) if cg.v2 else 0)
            self._epoll.register(fd, mask)

    @staticmethod
    def _v1_fd(cg: Cgroup) -> int:
        efd = os.eventfd(0, os.EFD_CLOEXEC)
        control = os.open(cg.file("memory", "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            with open(cg.file("memory", "cgroup.event_control"), "w") as f:
                f.write(f"{efd} {control}")
        except OSError:
            os.close(efd)
            raise
        finally:
            os.close(control)
        return efd

    @staticmethod
    def _v2_fd(cg: Cgroup) -> int:
        return os.open(cg.file("memory", "memory.events"), os.O_RDONLY | os.O_CLOEXEC)

    def _run(self) -> None:
        assert self._epoll is not None
        while True:
            for fd, _mask in self._epoll.poll():
                try:
                    self._event(fd)
                except Exception as exc:  # one cgroup's trouble must not end every container's watch
                    self.log(f"OOM watch: {type(exc).__name__}: {exc}")

    def _event(self, fd: int) -> None:
        with self._lock:
            entry = self._watched.get(fd)
        if entry is None:
            return
        container_id, cg, last = entry
        try:
            count = _oom_kills(fd) if cg.v2 else int.from_bytes(os.read(fd, 8), "little")
        except OSError:
            count = -1
        if count < 0 or not cg.exists():  # the cgroup is gone: its removal is what woke us
            self._forget(fd)
            return
        if cg.v2:
            if count <= last:
                return
            with self._lock:
                self._watched[fd] = (container_id, cg, count)
        self.on_oom(container_id)

    def _forget(self, fd: int) -> None:
        with self._lock:
            self._watched.pop(fd, None)
            if self._epoll is not None:
                self._epoll.unregister(fd)
        os.close(fd)


def _oom_kills(fd: int) -> int:
    """The oom_kill count in a v2 memory.events (reading it also re-arms poll)."""
    text = os.pread(fd, 4096, 0).decode()
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0
