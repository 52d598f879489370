"""cgroup v2: one directory in the unified hierarchy (Documentation/admin-guide/cgroup-v2.rst).

Controllers reach the container's cgroup only if every ancestor enables them
in cgroup.subtree_control ("Enabling and Disabling"); :meth:`V2Manager.create`
does that down the path, as runc's ``CreateCgroupPath`` and crun do, and
leaves the container's own subtree_control empty (its processes live in it:
"no internal processes"). A controller an ancestor cannot enable (it holds
processes itself, e.g. rune's own cgroup for a relative path) is skipped; a
resource that then needs it fails with the missing file named.

Devices are filtered by an eBPF program (:mod:`.ebpf`) attached to the
container's cgroup; freezing is cgroup.freeze, killing cgroup.kill.
"""

from __future__ import annotations

import os
import time

from ...errors import InclavareError
from . import devices as dev
from . import fs, v2_writes
from .resources import document

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .oom import OomWatch

_FREEZE_WAIT = 10.0  # seconds


class V2Manager:
    driver = "v2"

    def __init__(self, root: str, path: str, created: list[str] | None = None) -> None:
        self.root = root  # the cgroup2 mount point
        self.path = path  # absolute directory of the container's cgroup
        self.created = created or []  # the topmost directory rune made, if any

    @classmethod
    def from_json(cls, saved: dict[str, object]) -> V2Manager:
        root, path, created = saved.get("root"), saved.get("path"), saved.get("created") or []
        if not isinstance(root, str) or not isinstance(path, str) or not isinstance(created, list):
            raise InclavareError("state.json: cgroup: corrupt v2 path")
        return cls(root, path, [str(d) for d in created])

    def to_json(self) -> dict[str, object]:
        return {"driver": self.driver, "root": self.root, "path": self.path, "created": self.created,
                "freezer_state": self.path + "/cgroup.freeze"}  # fmt: skip

    def mount_sources(self) -> dict[str, str]:
        """The one hierarchy, bound straight onto a "cgroup" mount's destination."""
        return {"": self.path}

    def create(self) -> None:
        if fs.procs(self.path):
            raise InclavareError(
                f"cgroup {self.path} already has processes: is another container using this cgroupsPath?"
            )
        try:
            top = fs.make_path(self.path)
            if top is not None:
                self.created.append(top)
            parent = os.path.dirname(self.path)
            chain = []
            while parent != self.root and parent.startswith(self.root + "/"):
                chain.append(parent)
                parent = os.path.dirname(parent)
            for d in [self.root, *reversed(chain)]:
                _enable_controllers(d)
        except BaseException:
            self.destroy()
            raise

    def add(self, pid: int) -> None:
        try:
            fs.write(self.path, "cgroup.procs", str(pid))
        except OSError as exc:
            raise InclavareError(f"cgroup {self.path}: cannot add process {pid}: {exc.strerror}") from None

    def apply(self, resources: object, devices: list[tuple[str, int, int]] | None = None) -> None:
        """Write linux.resources; `devices` (linux.devices entries) also
        (re)load the device program, None leaves it alone (update)."""
        res = document(resources)
        fs.run_writes(v2_writes.writes(res, self._probe), self._dir)
        if devices is not None:
            from .ebpf import device_program

            program = device_program(dev.effective(dev.spec_rules(res), devices))
            from ..._sys import bpf

            bpf.replace_device_program(self.path, program)

    def update(self, resources: dict[str, object], devices: object = None) -> None:
        """Apply a partial linux.resources to a live container (``rune update``);
        `devices` is the container's linux.resources.devices as created."""
        from .update import update

        update(self, resources, devices)

    def _probe(self, _ctl: str, name: str) -> str | None:
        return fs.read(self.path, name)

    def _dir(self, _ctl: str, _field: str) -> str:
        return self.path

    def pids(self) -> list[int]:
        return fs.procs(self.path)

    def freeze(self) -> None:
        self._freeze("1")

    def thaw(self) -> None:
        self._freeze("0")

    def _freeze(self, value: str) -> None:
        """Write cgroup.freeze and wait for cgroup.events to report the state."""
        fs.write_field(self.path, "cgroup.freeze", value, "freezer")
        want = f"frozen {value}"
        deadline = time.monotonic() + _FREEZE_WAIT
        while want not in (fs.read(self.path, "cgroup.events") or "").splitlines():
            if time.monotonic() > deadline:
                if value == "1":
                    fs.write(self.path, "cgroup.freeze", "0")
                raise InclavareError(f"cgroup {self.path}: did not reach {want!r}")
            time.sleep(0.001)

    def destroy(self) -> None:
        fs.remove_tree(self.path)
        for top in self.created:
            fs.prune(self.path, top)

    def stats(self) -> dict[str, object]:
        """runc `events --stats` data for this container (see :mod:`.stats`)."""
        from .stats import v2_stats

        return v2_stats(self.path)

    def oom_watch(self) -> OomWatch:
        """An :class:`.oom.OomWatch` on memory.events (the oom_kill counter)."""
        from .oom import OomWatch

        return OomWatch.v2(self.path)


def _enable_controllers(directory: str) -> None:
    """+every available controller in subtree_control; one at a time if the
    kernel refuses the lot (one controller may be impossible, e.g. cpu while
    a realtime task runs in the cgroup)."""
    available = (fs.read(directory, "cgroup.controllers") or "").split()
    enabled = set((fs.read(directory, "cgroup.subtree_control") or "").split())
    wanted = [c for c in available if c not in enabled]
    if not wanted:
        return
    try:
        fs.write(directory, "cgroup.subtree_control", " ".join("+" + c for c in wanted))
    except OSError:
        for c in wanted:
            try:
                fs.write(directory, "cgroup.subtree_control", "+" + c)
            except OSError:
                continue  # a resource needing it will name the missing file
