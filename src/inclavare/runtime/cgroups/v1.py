"""cgroup v1: one directory per controller hierarchy.

Ref: Documentation/admin-guide/cgroup-v1/*.rst and config-linux.md
"Control groups". Resource files are written in the order the kernel needs
(memory+swap before memory when growing, cpuset values before any task).
"""

from __future__ import annotations

import os
import time

from ...errors import InclavareError
from . import own_cgroups
from .resources import device_rules, v1_writes

_FREEZER_POLL = 0.001


class V1Manager:
    driver = "v1"

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths  # controller -> absolute directory

    @classmethod
    def place(cls, mounts: dict[str, str], rel: str) -> V1Manager:
        own = own_cgroups() if not rel.startswith("/") else {}
        paths = {}
        for ctl, point in mounts.items():
            base = rel if rel.startswith("/") else os.path.join(own.get(ctl, "/"), rel)
            paths[ctl] = os.path.normpath(point + "/" + base.lstrip("/"))
        return cls(paths)

    @classmethod
    def from_json(cls, saved: dict[str, object]) -> V1Manager:
        return cls(dict(saved["paths"]))  # type: ignore[call-overload]

    def to_json(self) -> dict[str, object]:
        state: dict[str, object] = {"driver": self.driver, "paths": self.paths}
        if "freezer" in self.paths:
            state["freezer_state"] = self.paths["freezer"] + "/freezer.state"
        return state

    def _dirs(self) -> list[str]:
        return sorted(set(self.paths.values()))

    # -- lifecycle ---------------------------------------------------------
    def create(self) -> None:
        for d in self._dirs():
            os.makedirs(d, exist_ok=True)
        if "cpuset" in self.paths:
            _inherit_cpuset(self.paths["cpuset"])

    def add(self, pid: int) -> None:
        for d in self._dirs():
            _write(d, "cgroup.procs", str(pid))

    def apply(self, resources: dict[str, object] | None, devices: list[tuple[str, int, int]] | None = None) -> None:
        """Write linux.resources; `devices` (type, major, minor) of linux.devices
        get device-cgroup allow rules (None: leave the device rules alone, for update)."""
        res = resources or {}
        writes = v1_writes(res)
        if "memory.memsw.limit_in_bytes" in (w[1] for w in writes):
            writes = _order_memsw(self.paths.get("memory"), writes)
        for ctl, name, value in writes:
            if ctl not in self.paths:
                raise InclavareError(f"linux.resources: the {ctl} cgroup controller is not mounted on this host")
            _write(self.paths[ctl], name, value)
        if devices is not None and "devices" in self.paths:
            for allow, rule in device_rules(res, devices):
                _write(self.paths["devices"], "devices.allow" if allow else "devices.deny", rule)

    def pids(self) -> list[int]:
        for ctl in ("pids", "freezer", "devices", "memory", "cpu"):
            if ctl in self.paths:
                return _read_pids(self.paths[ctl])
        return []

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def _set_freezer(self, want: str) -> None:
        d = self.paths.get("freezer")
        if d is None:
            raise InclavareError("the freezer cgroup controller is not mounted on this host")
        while True:
            _write(d, "freezer.state", want)
            with open(d + "/freezer.state") as f:
                if f.read().strip() == want:
                    return
            time.sleep(_FREEZER_POLL)  # FREEZING: tasks are still being stopped

    def destroy(self) -> None:
        """Remove the container's cgroups. Leftover processes are killed first."""
        for d in self._dirs():
            _remove(d)


def _write(directory: str, name: str, value: str) -> None:
    try:
        fd = os.open(f"{directory}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InclavareError(f"cgroup {directory}/{name}: {exc.strerror}") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise InclavareError(f"cgroup {directory}/{name}: writing {value!r}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _order_memsw(directory: str | None, writes: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """memory.memsw.limit_in_bytes must stay >= memory.limit_in_bytes at every
    step: when the new memory limit exceeds the current memsw limit, memsw goes first."""
    limit = next((int(v) for _c, n, v in writes if n == "memory.limit_in_bytes"), None)
    try:
        with open(f"{directory}/memory.memsw.limit_in_bytes") as f:
            current = int(f.read())
    except (OSError, ValueError):
        return writes
    if limit is None or limit == -1 or limit > current:
        first = [w for w in writes if w[1] == "memory.memsw.limit_in_bytes"]
        return first + [w for w in writes if w[1] != "memory.memsw.limit_in_bytes"]
    return writes


def _read_pids(directory: str) -> list[int]:
    try:
        with open(directory + "/cgroup.procs") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def _inherit_cpuset(leaf: str) -> None:
    """A new v1 cpuset cgroup starts with empty cpus and mems and refuses tasks
    until they are set: copy them down from the nearest ancestor."""
    chain = []
    d = leaf
    while True:
        chain.append(d)
        parent = os.path.dirname(d)
        if parent == d or not os.path.exists(parent + "/cpuset.cpus"):
            break
        d = parent
    for d in reversed(chain[:-1]):
        parent = os.path.dirname(d)
        for name in ("cpuset.cpus", "cpuset.mems"):
            with open(f"{d}/{name}") as f:
                if f.read().strip():
                    continue
            with open(f"{parent}/{name}") as f:
                _write(d, name, f.read().strip())


def _remove(directory: str) -> None:
    """rmdir bottom-up: sub-cgroups made inside the container go first."""
    try:
        children = [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for child in children:
        _remove(child)
    for _attempt in range(100):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != 16:  # EBUSY: tasks still exiting
                raise InclavareError(f"cgroup {directory}: {exc.strerror}") from None
        for pid in _read_pids(directory):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    raise InclavareError(f"cgroup {directory}: still busy after killing its processes")
