"""cgroup v1: one directory per mounted hierarchy (Documentation/admin-guide/cgroup-v1/).

The container gets a directory in every hierarchy the host mounts (cpu,
cpuacct, cpuset, memory, devices, freezer, blkio, pids, hugetlb, net_cls,
net_prio, perf_event, name=systemd, ...), as runc's fs driver joins all of
them. Directories rune had to create above the container's own are recorded,
so :meth:`V1Manager.destroy` removes them again when nothing else lives there
(runtime-tools' relative paths make three levels: testdir/cgrouptest/container).
"""

from __future__ import annotations

import os
import time

from ...errors import InclavareError, SpecError
from . import devices as dev
from . import fs, v1_writes
from .resources import document

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .oom import OomWatch
    from .resources import Write

_FREEZE_TRIES = 1000


class V1Manager:
    driver = "v1"

    def __init__(self, paths: dict[str, str], created: list[str] | None = None) -> None:
        self.paths = paths  # controller (or "name=X") -> absolute directory
        self.created = created or []  # topmost directories rune made, per hierarchy

    @classmethod
    def from_json(cls, saved: dict[str, object]) -> V1Manager:
        paths, created = saved.get("paths"), saved.get("created") or []
        if not isinstance(paths, dict) or not isinstance(created, list):
            raise InclavareError("state.json: cgroup: corrupt v1 paths")
        return cls({str(ctl): str(d) for ctl, d in paths.items()}, [str(d) for d in created])

    def to_json(self) -> dict[str, object]:
        state: dict[str, object] = {"driver": self.driver, "paths": self.paths, "created": self.created}
        if "freezer" in self.paths:
            state["freezer_state"] = self.paths["freezer"] + "/freezer.state"
        return state

    def mount_sources(self) -> dict[str, str]:
        """{directory under /sys/fs/cgroup: host directory} for a "cgroup"
        mount: one entry per mounted hierarchy (co-mounted controllers such
        as cpu,cpuacct share one), named as the host names it."""
        by_dir: dict[str, str] = {}
        for ctl, path in self.paths.items():
            mount_point = path.split("/")[4] if path.startswith("/sys/fs/cgroup/") else ctl
            by_dir.setdefault(mount_point, path)
        return by_dir

    def _dirs(self) -> list[str]:
        return sorted(set(self.paths.values()))

    # -- lifecycle ---------------------------------------------------------
    def create(self) -> None:
        """Make the directories (all or nothing: a failure removes what was made)."""
        for d in self._dirs():
            if fs.procs(d):  # joining it would let destroy() kill someone else's processes
                raise InclavareError(f"cgroup {d} already has processes: is another container using this cgroupsPath?")
        try:
            for d in self._dirs():
                top = fs.make_path(d)
                if top is not None:
                    self.created.append(top)
            if "cpuset" in self.paths:
                _inherit_cpuset(self.paths["cpuset"])
        except BaseException:
            self.destroy()
            raise

    def add(self, pid: int) -> None:
        for d in self._dirs():
            try:
                fs.write(d, "cgroup.procs", str(pid))
            except OSError as exc:
                raise InclavareError(f"cgroup {d}: cannot add process {pid}: {exc.strerror}") from None

    def apply(self, resources: object, devices: list[tuple[str, int, int]] | None = None) -> None:
        """Write linux.resources. `devices` are the (type, major, minor) of
        linux.devices; None leaves the device rules alone (update)."""
        res = document(resources)
        writes = v1_writes.writes(res, self._probe)
        self._rt_budget(writes)
        fs.run_writes(writes, self._dir)
        if devices is not None:
            rules = dev.effective(dev.spec_rules(res), devices)
            directory = self._dir("devices", "linux.resources.devices")
            for rule in rules:
                for name, line in dev.v1_lines(rule):
                    fs.write_field(directory, name, line, "linux.resources.devices")

    def _rt_budget(self, writes: list[Write]) -> None:
        """A realtime budget must fit in the parent's (sched-rt-group.rst §2.3):
        directories rune created above the container get the same one first,
        top down, so a nested cgroupsPath can ask for what its root allows."""
        rt = [w for w in writes if w[2] in ("cpu.rt_period_us", "cpu.rt_runtime_us")]
        leaf = self.paths.get("cpu")
        if not rt or leaf is None:
            return
        top = next((t for t in self.created if leaf.startswith(t + "/")), None)
        chain = []
        d = os.path.dirname(leaf)
        while top is not None and (d == top or d.startswith(top + "/")):
            chain.append(d)
            d = os.path.dirname(d)
        for d in reversed(chain):
            fs.run_writes(rt, _always(d))

    def update(self, resources: dict[str, object], devices: object = None) -> None:
        """Apply a partial linux.resources to a live container (``rune update``);
        `devices` is the container's linux.resources.devices as created."""
        from .update import update

        update(self, resources, devices)

    def _probe(self, ctl: str, name: str) -> str | None:
        d = self.paths.get(ctl)
        return None if d is None else fs.read(d, name)

    def _dir(self, ctl: str, field: str) -> str:
        d = self.paths.get(ctl)
        if d is None:
            raise SpecError(field, f"the {ctl} cgroup controller is not mounted on this host")
        return d

    def pids(self) -> list[int]:
        for ctl in ("pids", "freezer", "devices", "memory", "cpu"):
            if ctl in self.paths:
                return fs.procs(self.paths[ctl])
        return fs.procs(self._dirs()[0]) if self.paths else []

    def freeze(self) -> None:
        """FROZEN, retrying while tasks are still FREEZING (runc fs/freezer.go:
        an occasional thaw lets a forking workload settle)."""
        d = self._dir("freezer", "freezer")
        for i in range(_FREEZE_TRIES):
            if i % 50 == 49:
                fs.write(d, "freezer.state", "THAWED")
                time.sleep(0.01)
            fs.write(d, "freezer.state", "FROZEN")
            state = fs.read(d, "freezer.state")
            if state == "FROZEN":
                return
            if state != "FREEZING":
                raise InclavareError(f"cgroup {d}: unexpected freezer state {state!r}")
            if i % 25 == 24:
                time.sleep(0.0001)
        fs.write(d, "freezer.state", "THAWED")  # never leave it stuck half-frozen
        raise InclavareError(f"cgroup {d}: could not freeze (tasks kept FREEZING)")

    def thaw(self) -> None:
        fs.write(self._dir("freezer", "freezer"), "freezer.state", "THAWED")

    def destroy(self) -> None:
        """Remove the container's cgroups, their sub-cgroups and the parents
        rune created; processes still there are killed first."""
        errors = []
        freezer = self.paths.get("freezer")
        if freezer is not None and not fs.remove_empty(freezer):  # a frozen task cannot act on SIGKILL,
            fs.thaw_tree(freezer)  # in any hierarchy
        for d in self._dirs():
            try:
                fs.remove_tree(d)
                for top in self.created:
                    if d.startswith(top + "/"):
                        fs.prune(d, top)
            except InclavareError as exc:
                errors.append(str(exc))
        if errors:
            raise InclavareError("; ".join(errors))

    def stats(self) -> dict[str, object]:
        """runc `events --stats` data for this container (see :mod:`.stats`)."""
        from .stats import v1_stats

        return v1_stats(self.paths)

    def oom_watch(self) -> OomWatch:
        """An :class:`.oom.OomWatch` on the memory cgroup (memory.oom_control + eventfd)."""
        from .oom import OomWatch

        return OomWatch.v1(self._dir("memory", "memory"))


def _always(directory: str) -> Callable[[str, str], str]:
    """A directory_of for fs.run_writes that sends every write to `directory`."""
    return lambda _ctl, _field: directory


def _inherit_cpuset(leaf: str) -> None:
    """A new v1 cpuset cgroup starts with empty cpus and mems and refuses tasks
    until they are set (cgroup-v1/cpusets.rst §2.1): copy them down from the
    nearest ancestor that has them."""
    chain = []
    d = leaf
    while fs.read(d, "cpuset.cpus") == "" or fs.read(d, "cpuset.mems") == "":
        chain.append(d)
        d = os.path.dirname(d)
    for d in reversed(chain):
        parent = os.path.dirname(d)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not fs.read(d, name):
                fs.write_field(d, name, fs.read(parent, name) or "", "linux.resources.cpu")
