"""A task's processes, the init and the exec'd ones, and their lifecycles.

The shim keeps each process's status itself, as the runc shim does
(pkg/process/init_state.go, exec_state.go, deleted_state.go): it changes
on the RPCs that succeed and on the exit the reaper collects, and State never
asks rune. One table per kind says which verb each status allows and where
it leads; a refused verb is FailedPrecondition ("cannot start a stopped
process"), a verb on a deleted process NotFound for kill and delete, as
upstream::

    init:  created --start--> running --pause--> paused --resume--> running
              |                  |                  |
              +------------------+------exited------+--> stopped --delete--> deleted
              +--delete--> deleted
    exec:  created --start--> running --exited--> stopped --delete--> deleted
              +--delete--> deleted

Each process has a lock, held across the rune command of a transition (a
State during `rune start` waits for it, as upstream's p.mu), and an event
Wait blocks on until the exit is recorded.
"""

from __future__ import annotations

import os
import threading
import time

from .errors import FailedPrecondition, NotFound
from .stdio import PipeIO, Stdio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .console import TerminalIO
    from .reaper import Reaper
    from .rune import Rune

CREATED, RUNNING, PAUSED, STOPPED, DELETED = "created", "running", "paused", "stopped", "deleted"
IO_WAIT = 2.0  # seconds Delete waits for the output to drain (upstream's waitTimeout)

# status -> {verb: next status (None: unchanged)}; "exited" is the reaper's, never refused
INIT_TRANSITIONS: dict[str, dict[str, str | None]] = {
    CREATED: {"start": RUNNING, "delete": DELETED, "kill": None, "exec": None, "update": None, "resize": None,
              "exited": STOPPED},
    RUNNING: {"pause": PAUSED, "kill": None, "exec": None, "update": None, "resize": None, "exited": STOPPED},
    PAUSED: {"resume": RUNNING, "kill": None, "update": None, "resize": None, "exited": STOPPED},
    STOPPED: {"delete": DELETED, "kill": None, "resize": None, "exited": None},
    DELETED: {"exited": None},
}  # fmt: skip
EXEC_TRANSITIONS: dict[str, dict[str, str | None]] = {
    CREATED: {"start": RUNNING, "delete": DELETED, "kill": None, "resize": None, "exited": STOPPED},
    RUNNING: {"kill": None, "resize": None, "exited": STOPPED},
    STOPPED: {"delete": DELETED, "kill": None, "exited": None},
    DELETED: {"exited": None},
}  # fmt: skip
_PHRASE = {"exec": "exec in a {} process", "update": "update a {} container", "pause": "pause a {} container"}


class Process:
    TRANSITIONS = INIT_TRANSITIONS

    def __init__(self, pid_id: str, stdio: Stdio, reaper: Reaper) -> None:
        self.id = pid_id
        self.stdio = stdio
        self.reaper = reaper
        self.pid = 0
        self.status = CREATED
        self.exit_status = 0
        self.exited_at = 0.0
        self.io: PipeIO | TerminalIO | None = None
        self.lock = threading.RLock()
        self._exited = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------
    def check(self, verb: str) -> str | None:
        """The status `verb` leads to, or the refusal upstream gives (call with the lock held)."""
        allowed = self.TRANSITIONS[self.status]
        if verb in allowed:
            return allowed[verb] or self.status
        if self.status == DELETED and verb in ("kill", "delete"):
            raise NotFound(f"cannot {verb} a deleted process")
        raise FailedPrecondition(f"cannot {_PHRASE.get(verb, verb + ' a {} process').format(self.status)}")

    def set_exited(self, status: int) -> bool:
        """The reaper saw this process exit (runs in the shim's exit thread); False if it was
        deleted already (its exit is no news)."""
        with self.lock:
            if self._exited.is_set():
                return False
            deleted = self.status == DELETED
            self.exit_status, self.exited_at = status, time.time()
            self.status = self.check("exited") or self.status
            if self.io is not None:
                self.io.process_exited()
            self._exited.set()
            return not deleted

    def wait(self, timeout: float | None = None) -> bool:
        return self._exited.wait(timeout)

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    def resize(self, width: int, height: int) -> None:
        with self.lock:
            self.check("resize")
            if self.io is not None:
                self.io.resize(width, height)

    def close_stdin(self) -> None:
        if self.io is not None:
            self.io.close_stdin()

    # -- stdio ---------------------------------------------------------------------------
    def new_io(self, uid: int, gid: int) -> PipeIO | TerminalIO:
        if self.stdio.terminal:
            from .console import TerminalIO  # only processes with a terminal need the console socket

            self.io = TerminalIO(self.stdio)
        else:
            self.io = PipeIO(self.stdio, uid, gid)
        return self.io

    def release_io(self) -> None:
        """Let the output drain (a little), then close everything (Delete)."""
        if self.io is not None:
            self.io.wait(IO_WAIT)
            self.io.close()


class Init(Process):
    """A task's init process; its id is the container's."""


class Exec(Process):
    """A process added with Exec; started by Start with its exec id."""

    TRANSITIONS = EXEC_TRANSITIONS

    def __init__(self, exec_id: str, stdio: Stdio, reaper: Reaper, spec: bytes, init: Init) -> None:
        super().__init__(exec_id, stdio, reaper)
        self.spec = spec  # the OCI process, JSON
        self.init = init

    def public_status(self) -> str:
        """An exec'd process is paused when its container is (exec_state.go Status)."""
        return PAUSED if self.init.status == PAUSED else self.status

    def kill(self, signal: int) -> None:
        """Signal the process itself (exec.go kill: not through rune)."""
        with self.lock:
            self.check("kill")
            if not self.pid:
                raise FailedPrecondition("process not created")
            if self.exited:
                raise NotFound("process already finished")
            try:
                os.kill(self.pid, signal)
            except ProcessLookupError:
                raise NotFound("process already finished") from None


def read_pid(path: str) -> int:
    """A pid file rune wrote (runc.ReadPidFile)."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError) as exc:
        raise FailedPrecondition(f"failed to retrieve OCI runtime pid from {path}: {exc}") from None


def start_exec(proc: Exec, rune: Rune, container_id: str, bundle: str, namespace: str, uid: int, gid: int) -> None:
    """`rune exec --detach` of an Exec in created status, with its stdio (exec.go start)."""
    from .. import _fastjson

    spec = _fastjson.loads(proc.spec)
    assert isinstance(spec, dict)  # checked by Exec (container.exec_spec)
    spec["terminal"] = proc.stdio.terminal
    process_file = os.path.join(bundle, f".{proc.id}.process.json")
    pid_file = os.path.join(bundle, f"{proc.id}.pid")
    fd = os.open(process_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_fastjson.dumps(spec))
    io = proc.new_io(uid, gid)
    try:
        if isinstance(io, PipeIO):
            io.start_logger(proc.reaper, container_id, namespace)
        console = "" if isinstance(io, PipeIO) else io.socket.path
        rune.exec(container_id, process_file, pid_file, io.child_fds(), console)
        io.started()
        proc.pid = read_pid(pid_file)
    except BaseException:
        io.close()
        proc.set_exited(255)
        raise
    finally:
        os.unlink(process_file)
    proc.reaper.watch(proc.pid)
