"""Control groups: where a container's processes live and what they may use.

Two drivers behind one interface (:class:`CgroupManager`, youki's trait of
the same name), chosen by what the host mounts:

* :mod:`.v1` — one hierarchy per controller under /sys/fs/cgroup/<name>.
  This project's reference machine is v1 "hybrid": v1 controllers plus an
  empty cgroup2 at /sys/fs/cgroup/unified, which rune leaves alone (as
  runc's fs driver does);
* :mod:`.v2` — the unified hierarchy mounted at /sys/fs/cgroup.

``linux.cgroupsPath`` (config-linux.md#cgroups-path) is

* absolute: from the root of each hierarchy (its mount point);
* relative: below rune's own cgroup, per hierarchy (runc ``subsysPath`` with
  ``GetOwnCgroupPath``: /proc/self/cgroup, made relative to the mount's root);
* with ``--systemd-cgroup``, ``slice:prefix:name``. No systemd runs where
  rune is tested, so the unit is emulated on cgroupfs the way systemd lays it
  out (systemd.slice(5)): ``a-b.slice`` lives at ``a.slice/a-b.slice`` and the
  container in ``<prefix>-<name>.scope`` below it (runc ``ExpandSlice`` and
  ``getUnitName``).

Unset, it is ``/<container id>`` (crun's default).
"""

from __future__ import annotations

import os

from ...errors import InclavareError, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from .oom import OomWatch

    class CgroupManager(Protocol):
        """What the rest of rune may ask of a container's cgroups (v1.V1Manager
        and v2.V2Manager implement it); nothing outside this package looks
        at a driver's directories."""

        def to_json(self) -> dict[str, object]:
            """What state.json keeps; :func:`from_state` reads it back."""

        def mount_sources(self) -> dict[str, str]:
            """{name under a "cgroup" mount's destination ("" for the
            destination itself): host directory of the container's cgroup}."""

        def create(self) -> None:
            """Make the cgroup (all or nothing)."""

        def add(self, pid: int) -> None: ...

        def apply(self, resources: object, devices: list[tuple[str, int, int]] | None = None) -> None:
            """Write linux.resources; `devices` (type, major, minor of
            linux.devices) also set the device rules, None leaves them."""

        def update(self, resources: dict[str, object], devices: object = None) -> None:
            """`rune update`: `devices` is linux.resources.devices as created."""

        def pids(self) -> list[int]: ...

        def freeze(self) -> None: ...

        def thaw(self) -> None: ...

        def destroy(self) -> None:
            """Remove the cgroup and what rune made for it; its processes are killed."""

        def stats(self) -> dict[str, object]:
            """runc's `events --stats` data."""

        def oom_watch(self) -> OomWatch: ...


MOUNTINFO = "/proc/self/mountinfo"
UNIFIED_ROOT = "/sys/fs/cgroup"  # cgroup2 here means the host runs cgroup v2 only
# cgroup v1 super options that are not controllers (Documentation/admin-guide/cgroup-v1/cgroups.rst).
_NOT_CONTROLLERS = frozenset(("rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"))


def mounts(mountinfo: str = MOUNTINFO) -> dict[str, tuple[str, str]]:
    """{controller, "name=X" or "unified": (mount point, root of the mount)} (proc(5))."""
    from ..._sys.proc import mountinfo as parse

    found: dict[str, tuple[str, str]] = {}
    for m in parse(mountinfo):
        if m.fstype == "cgroup2":
            found.setdefault("unified", (m.point, m.root))
        elif m.fstype == "cgroup":
            for opt in m.super_options.split(","):
                if opt.startswith("name=") or ("=" not in opt and opt not in _NOT_CONTROLLERS):
                    found.setdefault(opt, (m.point, m.root))
    return found


def own_cgroups(pid: str = "self") -> dict[str, str]:
    """{controller, "name=X" or "unified": path} of a process (/proc/<pid>/cgroup)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            if not controllers:
                out["unified"] = path
            for ctl in controllers.split(","):
                if ctl:
                    out[ctl] = path
    return out


def resolve_path(cgroups_path: str | None, container_id: str, systemd: bool) -> str:
    """The container's cgroup path: "/a/b" from a hierarchy's root, or
    "a/b" (no leading slash) below rune's own cgroup."""
    if systemd:
        value = cgroups_path or f"system.slice:rune:{container_id}"
        if ":" not in value:
            raise SpecError("linux.cgroupsPath", f"{value!r}: with --systemd-cgroup it must be slice:prefix:name")
        return systemd_path(value, container_id)
    if not cgroups_path:
        return f"/{container_id}"
    if not isinstance(cgroups_path, str) or "\0" in cgroups_path:
        raise SpecError("linux.cgroupsPath", "must be a path")
    path = os.path.normpath(cgroups_path)
    if ".." in path.split("/"):
        raise SpecError("linux.cgroupsPath", f"{cgroups_path!r} leaves the cgroup hierarchy")
    if path in ("/", "."):
        raise SpecError("linux.cgroupsPath", f"{cgroups_path!r} is not below the cgroup it is relative to")
    return path


def systemd_path(value: str, container_id: str) -> str:
    """ "slice:prefix:name" -> cgroupfs path, as systemd would place the unit."""
    parts = value.split(":")
    if len(parts) != 3:
        raise SpecError("linux.cgroupsPath", f"{value!r} is not slice:prefix:name")
    parent, prefix, name = parts
    name = name or container_id
    if "/" in prefix or "/" in name:
        raise SpecError("linux.cgroupsPath", f"{value!r}: prefix and name cannot contain '/'")
    if name.endswith(".slice"):  # the container's cgroup is itself a slice (runc getUnitName)
        return expand_slice(name)
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return expand_slice(parent or "system.slice").rstrip("/") + "/" + unit


def expand_slice(slice_: str) -> str:
    """systemd.slice(5) naming: ``a-b-c.slice`` -> ``/a.slice/a-b.slice/a-b-c.slice``,
    ``-.slice`` (the root slice) -> ``/`` (runc ``ExpandSlice``)."""
    stem = slice_[: -len(".slice")] if slice_.endswith(".slice") else ""
    if not stem or "/" in slice_:
        raise SpecError("linux.cgroupsPath", f"{slice_!r} is not a systemd slice name")
    if stem == "-":
        return "/"
    parts = stem.split("-")
    if "" in parts:  # "a--b.slice", "-a.slice" and "a-.slice" are invalid
        raise SpecError("linux.cgroupsPath", f"{slice_!r} is not a systemd slice name")
    return "".join("/" + "-".join(parts[: i + 1]) + ".slice" for i in range(len(parts)))


def directory(point: str, root: str, own: str | None, rel: str) -> str:
    """Host directory of `rel` in one hierarchy mounted at `point` (whose
    mount shows the hierarchy from `root`); `own` is rune's cgroup there."""
    if rel.startswith("/"):
        return os.path.normpath(point + rel)
    base = own or "/"
    if root != "/" and (base == root or base.startswith(root.rstrip("/") + "/")):
        base = base[len(root.rstrip("/")) :] or "/"
    return os.path.normpath(f"{point}/{base.lstrip('/')}/{rel}")


def manager_for(cgroups_path: str | None, container_id: str, systemd: bool = False) -> CgroupManager:
    """Pick the driver the host has and place the container's cgroup (nothing made yet)."""
    found = mounts()
    rel = resolve_path(cgroups_path, container_id, systemd)
    own = own_cgroups() if not rel.startswith("/") else {}
    unified = found.get("unified")
    if unified is not None and unified[0] == UNIFIED_ROOT:
        from .v2 import V2Manager

        return V2Manager(unified[0], directory(*unified, own.get("unified"), rel))
    from .v1 import V1Manager

    hierarchies = {
        ctl: directory(point, root, own.get(ctl), rel) for ctl, (point, root) in found.items() if ctl != "unified"
    }
    if not hierarchies:
        raise InclavareError("no cgroup filesystem is mounted on this host")
    return V1Manager(hierarchies)


def from_state(saved: dict[str, object]) -> CgroupManager | None:
    """The manager `to_json()` saved in state.json (None: the container has no cgroup)."""
    if not saved:
        return None
    if saved.get("driver") == "v2":
        from .v2 import V2Manager

        return V2Manager.from_json(saved)
    from .v1 import V1Manager

    return V1Manager.from_json(saved)


def is_frozen(saved: dict[str, object]) -> bool:
    """Whether the cgroup `to_json()` saved is frozen (or freezing), read
    without loading a driver: `rune state` and `list` ask it of every
    running container."""
    freezer = saved.get("freezer_state")
    if not isinstance(freezer, str):
        return False
    try:
        with open(freezer) as f:
            value = f.read().strip()
    except OSError:
        return False
    return value in ("FROZEN", "FREEZING", "1")
