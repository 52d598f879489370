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
from . import state as st
from .context import RuntimeContext
from .create import CreateOptions, create
from .delete import delete
from .start import start

# Everything catchable except SIGCHLD (ours to reap), SIGWINCH and SIGURG.
_FORWARD = [n for n in range(1, 32) if n not in (9, 17, 19, 23, 28)]


def run(ctx: RuntimeContext, container_id: str, opts: CreateOptions, detach: bool, keep: bool) -> int:
    if detach:
        create(ctx, container_id, opts)
        start(ctx, container_id)
        return 0
    from .._sys import default as syscalls

    syscalls().prctl(c.PR_SET_CHILD_SUBREAPER, 1)
    console = None
    if _wants_tty(opts):
        from .console import ForegroundConsole

        console = ForegroundConsole()
        opts.console_socket = console.socket_path
    state = create(ctx, container_id, opts)
    try:
        if console is not None:
            console.receive()
        start(ctx, container_id)
        code = _wait(state, console)
    finally:
        if not keep:
            delete(ctx, container_id, force=True)
    return code


def _wants_tty(opts: CreateOptions) -> bool:
    if opts.console_socket:
        return False
    from ..spec.load import load_bundle

    spec = load_bundle(os.path.abspath(opts.bundle))
    return bool(spec.process and spec.process.terminal)


def _wait(state: st.State, console: object) -> int:
    import _signal

    pid = state.pid

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in _FORWARD:
        _signal.signal(signum, forward)
    if console is not None:
        console.pump_until_exit(pid)  # type: ignore[attr-defined]
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # init was reaped elsewhere: no status to report
        if done == pid:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
