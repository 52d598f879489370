"""`rune pause` / `rune resume`: freeze and thaw every process of a container
(cgroup v1 freezer.state, v2 cgroup.freeze)."""

from __future__ import annotations

from ..errors import ContainerError
from . import cgroups
from . import state as st
from .context import RuntimeContext
from .steps import step


def pause(ctx: RuntimeContext, container_id: str) -> None:
    state = st.load(ctx.root, container_id)
    state.require("pause")
    with step("pause: freezing the cgroup"):
        _manager(state).freeze()


def resume(ctx: RuntimeContext, container_id: str) -> None:
    state = st.load(ctx.root, container_id)
    state.require("resume")
    with step("resume: thawing the cgroup"):
        _manager(state).thaw()


def _manager(state: st.State) -> cgroups.CgroupManager:
    cg = cgroups.from_state(state.cgroup)
    if cg is None:
        raise ContainerError(f"container {state.id} has no cgroup to freeze")
    return cg
