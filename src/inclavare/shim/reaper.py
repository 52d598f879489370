"""The shim as subreaper: every child's exit status, collected in one place.

The shim sets PR_SET_CHILD_SUBREAPER (prctl(2)), as containerd's shims do
(runtime/v2/shim/shim_linux.go), so a container's init and exec'd processes
become its children when `rune create`/`rune exec` exit, and their exit
statuses come to it. One ``waitpid(-1)`` loop reaps them all; that is why
the shim never uses :mod:`subprocess` for its own commands: its ``wait()``
would race with the loop and, when the loop wins, report exit status 0
(subprocess turns ECHILD into 0). Commands are started with
``os.posix_spawn`` and registered under a lock before the loop may look at
their pid, so their status always reaches the thread waiting for it.

Every other exit (a container process, an orphan) goes to the ``on_exit``
callback. Code the shim calls but does not own — the carrier hook — may use
:mod:`subprocess`; while it runs (:meth:`Reaper.foreign_children`) the loop
reaps only pids it knows (commands, and processes :meth:`Reaper.watch`\\ed),
one ``waitpid(pid, WNOHANG)`` each, and leaves other children to their
owners; orphans wait until it ends. The loop looks at an exited child with
``waitid(WNOWAIT)`` before it reaps it, so a section that opens while the
loop runs is respected too.
"""

from __future__ import annotations

import _signal
import os
import threading
from contextlib import contextmanager

from ..errors import InclavareError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

# Signals the shim ignores or handles, which a command it starts must get at
# their defaults (subprocess's restore_signals does the same for SIGPIPE and
# SIGXFSZ, which CPython ignores at start-up; handlers reset on exec by themselves).
_RESET = (_signal.SIGPIPE, _signal.SIGXFSZ)


def exit_status(status: int) -> int:
    """A wait status as containerd reports it: the exit code, or 128+N for signal N."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


class Reaper:
    def __init__(self, on_exit: Callable[[int, int], None], loop: bool = True) -> None:
        """`loop`: a SIGCHLD loop calls :meth:`reap`; without one (a one-shot command such as
        `delete`) :meth:`wait` reaps its own command."""
        self.on_exit = on_exit
        self.loop = loop
        self._cond = threading.Condition(threading.Lock())
        self._commands: dict[int, int | None] = {}  # pid -> exit status once it exited
        self._watched: set[int] = set()
        self._foreign = 0

    # -- commands ----------------------------------------------------------------------
    def spawn(self, argv: Sequence[str], stdin: int, stdout: int, stderr: int, env: dict[str, str] | None = None,
              extra_fds: Sequence[int] = ()) -> int:  # fmt: skip
        """Start `argv` (resolved in $PATH) with these fds as 0, 1, 2 (and `extra_fds` as 3, 4, ...)."""
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate((stdin, stdout, stderr, *extra_fds))]
        with self._cond:
            try:
                pid = os.posix_spawnp(argv[0], list(argv), os.environ if env is None else env, file_actions=actions,
                                      setsigdef=_RESET)  # fmt: skip
            except OSError as exc:
                raise InclavareError(f"{argv[0]}: {exc.strerror}") from None
            self._commands[pid] = None
        return pid

    def wait(self, pid: int, timeout: float | None = None) -> int | None:
        """The exit status of a spawned command; None if it is still running after `timeout`."""
        if not self.loop:  # a timeout only polls: a one-shot command has nothing else to do meanwhile
            done, status = os.waitpid(pid, 0 if timeout is None else os.WNOHANG)
            if not done:
                return None
            with self._cond:
                self._commands.pop(pid, None)
            return exit_status(status)
        with self._cond:
            if not self._cond.wait_for(lambda: self._commands.get(pid) is not None, timeout):
                return None
            result = self._commands.pop(pid)
        assert result is not None
        return result

    # -- container processes ------------------------------------------------------------
    def watch(self, pid: int) -> None:
        """A process whose exit must reach on_exit even while foreign children are about
        (a container's init or exec'd process); reaps it now if it already exited."""
        with self._cond:
            self._watched.add(pid)
        self._reap_known()

    def unwatch(self, pid: int) -> None:
        with self._cond:
            self._watched.discard(pid)

    @contextmanager
    def foreign_children(self) -> Iterator[None]:
        """While inside, children the caller starts with subprocess are subprocess's to reap."""
        with self._cond:
            self._foreign += 1
        try:
            yield
        finally:
            with self._cond:
                self._foreign -= 1
            self.reap()

    # -- the loop ------------------------------------------------------------------------
    def reap(self) -> None:
        """Collect every exited child (on SIGCHLD; runs in the main thread).

        Each exited child is looked at first (waitid(2) WNOWAIT) and reaped only if
        it is ours: a foreign section may open while this loop runs, and a child
        subprocess started there must stay subprocess's to reap."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            with self._cond:
                ours = not self._foreign or info.si_pid in self._commands or info.si_pid in self._watched
            if not ours:
                self._reap_known()  # the children we know; the foreign one waits for its owner
                return
            try:
                pid, status = os.waitpid(info.si_pid, os.WNOHANG)
            except ChildProcessError:
                continue  # its owner took it meanwhile
            if pid:
                self._deliver(pid, exit_status(status))

    def _reap_known(self) -> None:
        with self._cond:
            known = [p for p, s in self._commands.items() if s is None] + list(self._watched)
        for pid in known:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue  # not (or not yet) our child, or reaped meanwhile by the loop
            if done:
                self._deliver(done, exit_status(status))

    def _deliver(self, pid: int, status: int) -> None:
        with self._cond:
            if pid in self._commands:
                self._commands[pid] = status
                self._cond.notify_all()
                return
            self._watched.discard(pid)
        self.on_exit(pid, status)
