"""`rune kill`: send a signal to the container's init (or, --all, to all its processes)."""

from __future__ import annotations

import os

from .._sys import consts as c
from .._sys import proc
from ..errors import InclavareError, InvalidTransition
from . import cgroups
from . import state as st
from .context import RuntimeContext
from .steps import step


def parse_signal(text: str) -> int:
    """ "KILL", "SIGKILL", "kill", "9", "SIGRTMIN+3" -> signal number."""
    if text.isdigit():
        num = int(text)
        if 0 < num <= c.SIGRTMAX:
            return num
        raise InclavareError(f"unknown signal {text!r}")
    name = text.upper()
    name = name[3:] if name.startswith("SIG") else name
    if name in c.SIGNALS:
        return c.SIGNALS[name]
    for base, sign, num in (("RTMIN", 1, c.SIGRTMIN), ("RTMAX", -1, c.SIGRTMAX)):
        if name == base:
            return num
        if name.startswith(base + ("+" if sign > 0 else "-")) and name[len(base) + 1 :].isdigit():
            value = num + sign * int(name[len(base) + 1 :])
            if c.SIGRTMIN <= value <= c.SIGRTMAX:
                return value
    raise InclavareError(f"unknown signal {text!r}")


def kill(ctx: RuntimeContext, container_id: str, sig: int, all_processes: bool = False) -> None:
    state = st.load(ctx.root, container_id)
    status = state.require("kill")
    with step(f"kill: sending signal {sig}" + (" to every process" if all_processes else f" to pid {state.pid}")):
        if all_processes:
            _kill_all(state, status, sig)
        else:
            signal_init(state, sig)


def signal_init(state: st.State, sig: int) -> None:
    """Signal init, refusing a pid that no longer is the container's."""
    if not kill_checked(state.pid, state.start_time, sig):
        raise InvalidTransition(state.id, st.STOPPED, "kill")  # it exited since its status was read


def kill_checked(pid: int, started: int | None, sig: int) -> bool:
    """Send `sig` to `pid` through a pidfd, after checking — with the pidfd
    held, so the pid cannot be recycled in between — that it still is the
    process that started at `started`. False if it is gone or another one.
    Never signals pid 0 or below (kill(2): a process group)."""
    import _signal

    if pid <= 0:
        return False
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if not proc.is_alive(pid, started):
            return False
        _signal.pidfd_send_signal(pidfd, sig)
        return True
    finally:
        os.close(pidfd)


def _kill_all(state: st.State, status: st.Status, sig: int) -> None:
    cg = cgroups.from_state(state.cgroup)
    if cg is None:
        signal_init(state, sig)
        return
    # Freeze first so no process can fork a child that escapes the signal.
    frozen = status == st.PAUSED
    if not frozen:
        cg.freeze()
    try:
        for pid in cg.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    finally:
        if not frozen or sig == 9:
            cg.thaw()
