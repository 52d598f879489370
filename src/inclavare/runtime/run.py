"""`rune run`: create + start, and in the foreground wait for the container.

In the foreground rune becomes a child subreaper (PR_SET_CHILD_SUBREAPER)
before creating: init is forked by the intermediate process, which exits, so
init is re-parented to rune and rune can collect its exit status. Signals
rune receives are forwarded to init, as runc does; the exit status is the
container's (128+N when killed by signal N).
"""

from __future__ import annotations

import os

from .._sys import consts as c
from . import reaper
from . import state as st
from .context import RuntimeContext
from .create import CreateOptions, create
from .delete import delete
from .start import start

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .console import ForegroundConsole


def run(ctx: RuntimeContext, container_id: str, opts: CreateOptions, detach: bool, keep: bool) -> int:
    if detach:
        create(ctx, container_id, opts)
        try:
            start(ctx, container_id)
        except BaseException:
            delete(ctx, container_id, force=True)  # runc's run destroys what it made when start fails
            raise
        return 0
    from .._sys import default as syscalls
    from ..spec.load import load_bundle

    syscalls().prctl(c.PR_SET_CHILD_SUBREAPER, 1)
    spec = load_bundle(os.path.abspath(opts.bundle))
    console = None
    if not opts.console_socket and spec.process is not None and spec.process.terminal:
        from .console import ForegroundConsole

        console = ForegroundConsole()
        opts.console_socket = console.socket_path
    try:
        state = create(ctx, container_id, opts, spec)
    except BaseException:
        if console is not None:
            console.discard()
        raise
    try:
        if console is not None:
            console.receive()
        start(ctx, container_id)
        code = _wait(state, console)
    finally:
        if not keep:
            delete(ctx, container_id, force=True)
    return code


def _wait(state: st.State, console: ForegroundConsole | None) -> int:
    reaper.forward_signals(state.pid)
    if console is not None:
        console.pump_until_exit(state.pid)
    return reaper.wait_for(state.pid)
