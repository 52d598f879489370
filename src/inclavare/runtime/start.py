"""`rune start`: release a created container's init to exec its process.

exec.fifo is the handshake (see :mod:`.process.messages`): opening it for
reading unblocks init's open for writing; init writes one byte and keeps the
fifo open close-on-exec, so reading on to EOF waits exactly until the
container process has been exec'd (or init died trying).
"""

from __future__ import annotations

import os
import select

from .._sys import proc
from ..errors import InclavareError, InvalidTransition
from . import hooks
from . import state as st
from .context import RuntimeContext
from .process import execerr
from .steps import step

_POLL_MS = 50


def start(ctx: RuntimeContext, container_id: str) -> st.State:
    state = st.load(ctx.root, container_id)
    state.require("start")
    fifo = os.path.join(state.dir, st.FIFO)
    with step("opening exec.fifo", fifo):
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InvalidTransition(container_id, st.RUNNING, "start") from None
    try:
        with step("waiting for the container process to start", fifo):
            _await_exec(state, fd, fifo)
    finally:
        os.close(fd)
    poststart = hooks.saved_hooks(state.config, "poststart")
    if poststart:
        hooks.run_hooks_warn("poststart", poststart, state.oci_state(status=st.RUNNING), ctx.warn)
    return state


def _await_exec(state: st.State, fd: int, fifo: str) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not poller.poll(_POLL_MS):
        if not proc.is_alive(state.pid, state.start_time):
            raise InclavareError(f"container {state.id}: init exited before start")
        if not os.path.exists(fifo):
            raise InvalidTransition(state.id, st.RUNNING, "start")  # another start won
    first = os.read(fd, 4096)
    if first[:1] != b"0":
        raise InclavareError(f"container {state.id}: init exited before start")
    try:
        os.unlink(fifo)  # from here on the container is "running"
    except FileNotFoundError:
        raise InvalidTransition(state.id, st.RUNNING, "start") from None  # another start won
    os.set_blocking(fd, True)
    # EOF: init's fifo fd was closed by the container process's execve (or
    # init died); before it, a failure record (process/execerr.py).
    failed = execerr.failure(execerr.read_all(fd, first[1:]))
    if failed is not None:
        raise InclavareError(failed)
