"""`rune delete`: remove a stopped container (with --force, stop it first).

The runtime spec says deleting a container that is not stopped MUST fail and
have no effect; runc and crun delete *created* containers anyway, rune does
not (use --force). poststop hooks run after the resources are gone and
before delete returns; their failures are warnings.
"""

from __future__ import annotations

import os
import time

from .._sys import proc
from ..errors import ContainerError, ContainerNotFound
from . import cgroups, hooks
from . import state as st
from .context import RuntimeContext
from .kill import kill_checked
from .steps import located, step


def delete(ctx: RuntimeContext, container_id: str, force: bool = False) -> None:
    try:
        _delete(ctx, container_id, force)
    except OSError as exc:  # a step not named below: still one line, with the verb
        raise located("delete", exc) from None


def _delete(ctx: RuntimeContext, container_id: str, force: bool) -> None:
    try:
        state = st.load(ctx.root, container_id)
    except ContainerNotFound:
        # A create killed before state.json existed leaves a bare directory.
        leftover = st.container_dir(ctx.root, container_id)
        if force and os.path.isdir(leftover):
            with step("removing the state directory", leftover):
                st.remove_dir(leftover)
            return
        if force:
            return
        raise
    status = state.require("delete --force" if force else "delete")
    if status != st.STOPPED:
        _force_stop(state, status)
    destroy(ctx, state)


def _force_stop(state: st.State, status: st.Status) -> None:
    cg = cgroups.from_state(state.cgroup)
    with step("stopping the container: thawing its cgroup"):
        if status == st.PAUSED and cg is not None:
            cg.thaw()
    with step("stopping the container: SIGKILL to init", f"pid {state.pid}"):
        if kill_checked(state.pid, state.start_time, 9):
            wait_gone(state)


def wait_gone(state: st.State, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.is_alive(state.pid, state.start_time):
        if time.monotonic() > deadline:
            raise ContainerError(f"container {state.id}: init did not exit after SIGKILL")
        time.sleep(0.001)


def destroy(ctx: RuntimeContext, state: st.State) -> None:
    records = state.extra.get("mounts")
    if isinstance(records, list) and records and state.rootfs:
        from .._sys import default as syscalls
        from .rootfs import owned

        # Only what rune mounted for a container sharing the host's mount namespace:
        # never the rootfs itself or the operator's mounts under it (rootfs/owned.py).
        owned.remove(syscalls(), state.rootfs, records, ctx.warn)
    cg = cgroups.from_state(state.cgroup)
    if cg is not None:
        with step("removing the cgroup"):
            cg.destroy()
    poststop = hooks.saved_hooks(state.config, "poststop")
    if poststop:
        hooks.run_hooks_warn("poststop", poststop, state.oci_state(status=st.STOPPED), ctx.warn)
    with step("removing the state directory", state.dir):
        st.remove_dir(state.dir)
