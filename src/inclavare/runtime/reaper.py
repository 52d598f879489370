"""Waiting for a container process in the foreground (`run`, `exec`).

The waited-for process is a grandchild (its parent, the intermediate
process, exits right after forking it); rune sets PR_SET_CHILD_SUBREAPER
first, so the orphan is re-parented to rune, which reaps it. Signals rune
gets are passed on, as runc does.
"""

from __future__ import annotations

import os

# Everything catchable except SIGCHLD (ours to reap), SIGWINCH (the console's) and SIGURG.
FORWARDED = tuple(n for n in range(1, 32) if n not in (9, 17, 19, 23, 28))


def kill_and_reap(pid: int) -> None:
    """SIGKILL and reap a child of ours that a failed setup leaves behind."""
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def forward_signals(pid: int) -> None:
    import _signal

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED:
        _signal.signal(signum, forward)


def exit_status(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def wait_for(pid: int) -> int:
    """Reap children until `pid` ends; return its exit status (255 if unknowable)."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # reaped elsewhere: no status to report
        if done == pid:
            return exit_status(status)
