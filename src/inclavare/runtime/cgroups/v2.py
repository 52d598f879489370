"""cgroup v2: the unified hierarchy (Documentation/admin-guide/cgroup-v2.rst)."""

from __future__ import annotations

import os
import time

from ...errors import InclavareError
from . import own_cgroups
from .resources import v2_writes
from .v1 import _read_pids, _remove, _write


class V2Manager:
    driver = "v2"

    def __init__(self, root: str, path: str) -> None:
        self.root = root  # the cgroup2 mount point
        self.path = path  # absolute directory of the container's cgroup

    @classmethod
    def place(cls, root: str, rel: str) -> V2Manager:
        base = rel if rel.startswith("/") else os.path.join(own_cgroups().get("unified", "/"), rel)
        return cls(root, os.path.normpath(root + "/" + base.lstrip("/")))

    @classmethod
    def from_json(cls, saved: dict[str, object]) -> V2Manager:
        return cls(str(saved["root"]), str(saved["path"]))

    def to_json(self) -> dict[str, object]:
        return {"driver": self.driver, "root": self.root, "path": self.path,
                "freezer_state": self.path + "/cgroup.freeze"}  # fmt: skip

    def create(self) -> None:
        """mkdir every level and enable the parent's controllers down the path
        (cgroup-v2.rst "Enabling and Disabling": subtree_control)."""
        rel = os.path.relpath(self.path, self.root)
        current = self.root
        for part in rel.split("/"):
            with open(current + "/cgroup.controllers") as f:
                available = f.read().split()
            if available:
                try:
                    _write(current, "cgroup.subtree_control", " ".join("+" + c for c in available))
                except InclavareError:
                    pass  # a controller the parent cannot delegate (e.g. threaded): keep the others
            current = current + "/" + part
            os.makedirs(current, exist_ok=True)

    def add(self, pid: int) -> None:
        _write(self.path, "cgroup.procs", str(pid))

    def apply(self, resources: dict[str, object] | None, devices: list[tuple[str, int, int]] | None = None) -> None:
        res = resources or {}
        for name, value in v2_writes(res):
            _write(self.path, name, value)
        if devices is not None and res.get("devices"):
            raise InclavareError(
                "linux.resources.devices: device rules on cgroup v2 need an eBPF device program, "
                "which this build of rune does not load yet"
            )

    def pids(self) -> list[int]:
        return _read_pids(self.path)

    def freeze(self) -> None:
        self._freeze("1")

    def thaw(self) -> None:
        self._freeze("0")

    def _freeze(self, value: str) -> None:
        _write(self.path, "cgroup.freeze", value)
        want = "frozen 1" if value == "1" else "frozen 0"
        for _ in range(1000):
            with open(self.path + "/cgroup.events") as f:
                if want in f.read():
                    return
            time.sleep(0.001)
        raise InclavareError(f"cgroup {self.path}: did not reach {want!r}")

    def destroy(self) -> None:
        _remove(self.path)
