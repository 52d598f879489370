"""`rune update`: change a running container's resource limits, and
`rune events`: its statistics and OOM notifications (runc's formats)."""

from __future__ import annotations

import time

from .. import _fastjson
from ..errors import ContainerError, UsageError
from . import cgroups
from . import state as st
from .context import RuntimeContext
from .steps import located, step

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from .cgroups import CgroupManager
    from .cgroups.oom import OomWatch

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
          "t": 1 << 40, "tb": 1 << 40}  # fmt: skip


def parse_bytes(text: str) -> int:
    """ "512m", "1g", "-1" -> bytes (docker/runc RAMInBytes; binary units)."""
    value = text.strip().lower()
    if value == "-1":
        return -1
    digits = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = value[len(digits) :]
    try:
        number = float(digits)
    except ValueError:
        raise UsageError(f"invalid size {text!r}") from None
    if unit not in _UNITS or number < 0:
        raise UsageError(f"invalid size {text!r}")
    return int(number * _UNITS[unit])


def update(ctx: RuntimeContext, container_id: str, resources: dict[str, object]) -> None:
    try:
        _update(ctx, container_id, resources)
    except OSError as exc:  # a step not named below: still one line, with the verb
        raise located("update", exc) from None


def _update(ctx: RuntimeContext, container_id: str, resources: dict[str, object]) -> None:
    state = st.load(ctx.root, container_id)
    state.require("update")
    cg = cgroups.from_state(state.cgroup)
    if cg is None:
        raise ContainerError(f"container {container_id} has no cgroup")
    linux = state.config.setdefault("linux", {})
    assert isinstance(linux, dict)
    saved = linux.setdefault("resources", {})
    assert isinstance(saved, dict)
    with step("linux.resources: updating the cgroup"):
        cg.update(resources, saved.get("devices"))
    # Keep the saved config in step, as runc does, so state and later updates
    # see it; the device rules are never changed by an update (see cgroups.v1._update).
    _merge(saved, {key: value for key, value in resources.items() if key != "devices"})
    with step("saving state.json", state.dir):
        state.save()


def _merge(into: dict[str, object], new: dict[str, object]) -> None:
    for key, value in new.items():
        old = into.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            _merge(old, value)
        else:
            into[key] = value


def events(ctx: RuntimeContext, container_id: str, stats_only: bool, interval: float, out: TextIO) -> None:
    """Print stats events every `interval` seconds and an ``oom`` event per OOM
    kill, one JSON object per line, until the container stops."""
    try:
        _events(ctx, container_id, stats_only, interval, out)
    except OSError as exc:  # reading the cgroup's files: still one line, with the verb
        raise located("events", exc) from None


def _events(ctx: RuntimeContext, container_id: str, stats_only: bool, interval: float, out: TextIO) -> None:
    state = st.load(ctx.root, container_id)
    state.require("events")
    cg = cgroups.from_state(state.cgroup)
    if cg is None:
        raise ContainerError(f"container {container_id} has no cgroup")
    if stats_only:
        _emit(out, "stats", container_id, cg.stats())
        return
    watch = _oom_watch(cg)
    deadline = time.monotonic()
    try:
        while state.status() != st.STOPPED:
            if time.monotonic() >= deadline:
                _emit(out, "stats", container_id, cg.stats())
                deadline = time.monotonic() + interval
            wait = max(0.0, min(deadline - time.monotonic(), 0.5))
            if watch is not None:
                for _ in range(watch.wait(wait)):
                    _emit(out, "oom", container_id, None)
            else:
                time.sleep(wait)
    finally:
        if watch is not None:
            watch.close()


def _oom_watch(cg: CgroupManager) -> OomWatch | None:
    try:
        return cg.oom_watch()
    except OSError:
        return None  # no memory controller to watch: stats only


def _emit(out: TextIO, kind: str, cid: str, data: object) -> None:
    event: dict[str, object] = {"type": kind, "id": cid}
    if data is not None:
        event["data"] = data
    out.write(_fastjson.dumps(event) + "\n")
    out.flush()
