"""OOM notifications for `rune events`: how many times the kernel's OOM killer
hit a container's memory cgroup.

* v1 (Documentation/admin-guide/cgroup-v1/memory.rst §9 "OOM Control"): an
  eventfd registered through cgroup.event_control as "<eventfd> <fd of
  memory.oom_control>"; the eventfd's counter grows by one per OOM event, and
  it is also signalled when the cgroup is removed (runc
  ``registerMemoryEvent``).
* v2 (cgroup-v2.rst "memory.events"): the ``oom_kill`` counter; kernfs
  signals a change with POLLPRI on an open memory.events (runc uses inotify;
  poll(2) needs no extra binding).

Usage, as `rune events` would::

    watch = manager.oom_watch()
    while not watch.gone:
        for _ in range(watch.wait(interval)):   # 0 after `interval` seconds
            emit({"type": "oom", "id": container_id})
    watch.close()
"""

from __future__ import annotations

import os
import select


class OomWatch:
    """One open watch; :meth:`fileno` is pollable (POLLIN on v1, POLLPRI on v2)."""

    def __init__(self, directory: str, fd: int, keep: list[int], counter: str = "") -> None:
        self.directory = directory
        self._fd = fd  # v1: the eventfd; v2: memory.events
        self._keep = keep  # other fds to close with it
        self._counter = counter  # v2: the key counted in the events file ("" on v1)
        self._seen = self._count() if counter else 0
        self.gone = False  # the cgroup was removed: no more events will come

    @classmethod
    def v1(cls, memory_dir: str) -> OomWatch:
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        control = os.open(memory_dir + "/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            fd = os.open(memory_dir + "/cgroup.event_control", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, f"{efd} {control}".encode())
            finally:
                os.close(fd)
        except OSError:
            os.close(efd)
            os.close(control)
            raise
        return cls(memory_dir, efd, [control])

    @classmethod
    def v2(cls, path: str, events: str = "memory.events", counter: str = "oom_kill") -> OomWatch:
        """Count increments of `counter` in a cgroup v2 events file (any
        flat-keyed file the kernel notifies on: memory.events, cgroup.events)."""
        fd = os.open(f"{path}/{events}", os.O_RDONLY | os.O_CLOEXEC)
        return cls(path, fd, [], counter)

    def fileno(self) -> int:
        return self._fd

    def _count(self) -> int:
        for line in os.pread(self._fd, 4096, 0).decode().splitlines():
            key, _, value = line.partition(" ")
            if key == self._counter:
                return int(value)
        return 0

    def wait(self, timeout: float | None) -> int:
        """Block up to `timeout` seconds (None: forever) for OOM events; the
        number that happened (0 if none, or if the cgroup went away)."""
        if self.gone:
            return 0
        poller = select.poll()
        poller.register(self._fd, select.POLLPRI if self._counter else select.POLLIN)
        if not poller.poll(None if timeout is None else int(timeout * 1000)):
            return 0
        if not os.path.isdir(self.directory):
            self.gone = True
            return 0
        if self._counter:
            try:
                total = self._count()
            except OSError:  # the cgroup went away under the open file
                self.gone = True
                return 0
            new, self._seen = total - self._seen, total
            return max(new, 0)
        try:
            return os.eventfd_read(self._fd)
        except BlockingIOError:
            return 0

    def close(self) -> None:
        for fd in (self._fd, *self._keep):
            try:
                os.close(fd)
            except OSError:
                pass
        self._keep = []
        self.gone = True
