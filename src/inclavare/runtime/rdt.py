"""linux.intelRdt: Intel Resource Director Technology through resctrl.

Ref: config-linux.md#intelrdt and Documentation/arch/x86/resctrl.rst. A
container gets a resctrl group (``closID``, or the container id) with the
L3 cache / memory bandwidth schemata from the spec, and its init joins it.
Hosts without resctrl mounted get a clear error: the spec's limits cannot
be enforced there.
"""

from __future__ import annotations

import os

from ..errors import InclavareError, SpecError

RESCTRL = "/sys/fs/resctrl"


def check(rdt: object) -> None:
    if rdt is None:
        return
    if not isinstance(rdt, dict):
        raise SpecError("linux.intelRdt", "must be an object")
    if not os.path.exists(os.path.join(RESCTRL, "schemata")):
        raise SpecError("linux.intelRdt", f"this host has no Intel RDT (resctrl is not mounted at {RESCTRL})")


def group_dir(rdt: dict[str, object], container_id: str) -> str:
    return os.path.join(RESCTRL, str(rdt.get("closID") or container_id))


def apply(rdt: dict[str, object], container_id: str, pid: int) -> str:
    """Create (or join) the group, write its schemata, move `pid` in; the group dir."""
    group = group_dir(rdt, container_id)
    os.makedirs(group, exist_ok=True)
    for key in ("l3CacheSchema", "memBwSchema"):
        line = rdt.get(key)
        if not line:
            continue
        if not isinstance(line, str):
            raise SpecError(f"linux.intelRdt.{key}", "must be a string")
        _write(os.path.join(group, "schemata"), line + "\n")
    _write(os.path.join(group, "tasks"), str(pid))
    return group


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise InclavareError(f"intelRdt: {path}: {exc.strerror}") from None
