"""Control groups: where a container's processes live and what they may use.

Two drivers behind one interface, chosen by what the host mounts:

* :mod:`.v1` — one hierarchy per controller under /sys/fs/cgroup/<name>
  (this project's reference machine is v1 "hybrid": v1 controllers plus an
  empty cgroup2 at /sys/fs/cgroup/unified, which rune leaves alone);
* :mod:`.v2` — the unified hierarchy mounted at /sys/fs/cgroup.

``cgroupsPath`` (config-linux.md#cgroups-path) is absolute (from the
hierarchy root), relative (to rune's own cgroup, as runc does), or with
``--systemd-cgroup`` the systemd form ``slice:prefix:name``, emulated on
cgroupfs as ``<slice path>/<prefix>-<name>.scope`` when no systemd runs.
Unset, it is ``/<container id>``.
"""

from __future__ import annotations

import os

from ...errors import SpecError

MOUNTINFO = "/proc/self/mountinfo"
# cgroup v1 super options that are not controllers (Documentation/admin-guide/cgroup-v1).
_NOT_CONTROLLERS = frozenset(("rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"))


def mounts(mountinfo: str = MOUNTINFO) -> dict[str, str]:
    """{controller-or-"unified": mount point} from mountinfo (proc(5))."""
    found: dict[str, str] = {}
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, options = fields[sep + 1], fields[sep + 3]
            point = fields[4]
            if fstype == "cgroup2":
                found.setdefault("unified", point)
            elif fstype == "cgroup":
                for opt in options.split(","):
                    if opt.startswith("name=") or ("=" not in opt and opt not in _NOT_CONTROLLERS):
                        found.setdefault(opt, point)
    return found


def own_cgroups(pid: str = "self") -> dict[str, str]:
    """{controller-or-"unified": path} of a process, from /proc/<pid>/cgroup."""
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
    """The container's cgroup path relative to a hierarchy root; relative
    paths keep no leading slash and are resolved per controller later."""
    if systemd and cgroups_path and ":" in cgroups_path:
        return _systemd_path(cgroups_path, container_id)
    if not cgroups_path:
        return f"/{container_id}" if not systemd else _systemd_path(f"system.slice:rune:{container_id}", container_id)
    path = os.path.normpath(cgroups_path)
    if ".." in path.split("/"):
        raise SpecError("linux.cgroupsPath", f"{cgroups_path!r} leaves the cgroup hierarchy")
    return path


def _systemd_path(value: str, container_id: str) -> str:
    """systemd "slice:prefix:name" -> cgroupfs path (systemd.slice(5) naming:
    ``a-b.slice`` lives at ``a.slice/a-b.slice``)."""
    parts = value.split(":")
    if len(parts) != 3:
        raise SpecError("linux.cgroupsPath", f"{value!r} is not slice:prefix:name")
    slice_, prefix, name = parts
    slice_ = slice_ or "system.slice"
    if not slice_.endswith(".slice"):
        raise SpecError("linux.cgroupsPath", f"{slice_!r} is not a systemd slice name")
    stem = slice_[: -len(".slice")]
    dirs = ["-".join(stem.split("-")[: i + 1]) + ".slice" for i in range(len(stem.split("-")))]
    unit = f"{prefix}-{name or container_id}.scope" if prefix else f"{name or container_id}.scope"
    return "/" + "/".join([*dirs, unit])


def manager_for(cgroups_path: str | None, container_id: str, systemd: bool = False) -> Manager:
    """Pick the driver the host has and place the container's cgroup."""
    found = mounts()
    rel = resolve_path(cgroups_path, container_id, systemd)
    if "unified" in found and found["unified"] == "/sys/fs/cgroup":
        from .v2 import V2Manager

        return V2Manager.place(found["unified"], rel)
    from .v1 import V1Manager

    return V1Manager.place({k: v for k, v in found.items() if k != "unified"}, rel)


def from_state(saved: dict[str, object]) -> Manager | None:
    if not saved:
        return None
    if saved.get("driver") == "v2":
        from .v2 import V2Manager

        return V2Manager.from_json(saved)
    from .v1 import V1Manager

    return V1Manager.from_json(saved)


TYPE_CHECKING = False
if TYPE_CHECKING:
    from .v1 import V1Manager as Manager  # the interface both drivers implement
