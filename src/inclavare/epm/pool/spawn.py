"""One instance process, from epm's side: started, prepared, watched, killed.

An instance is ``python -m inclavare.enclave.pool.instance --fd N``, N being
its end of a SOCK_SEQPACKET pair (src/inclavare/enclave/pool/wire.py).
epm sends ``prepare`` and waits for ``ready`` (or the instance's ``error``).
The child is known by a pidfd (pidfd_open(2)) from the moment it exists:
epm's watcher polls it to reap the child when it exits, and kills go
through it (pidfd_send_signal(2)), so a recycled pid is never signalled.

The child gets a new session (setsid(2)): once handed out it belongs to a
container, and a ^C at the terminal epm runs in must not reach it. Its
environment is PATH and the PYTHONPATH that finds this very ``inclavare``
(the instance must run the code epm runs, installed or not); stdin and
stdout are /dev/null, stderr is epm's (instances log nothing secret).
No other fd is inherited: close_fds, and every socket here is close-on-exec.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from ...enclave.pool import wire
from ...errors import EnclaveError
from ..errors import EpmError
from .template import Template

MODULE = "inclavare.enclave.pool.instance"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def default_command() -> list[str]:
    return [sys.executable, "-m", MODULE]


class PrepareFailed(EpmError):
    """An instance did not become ready: it refused, died, or took too long."""


class Instance:
    """A child process and epm's end of its control socket.

    The pidfd is closed only by :meth:`reap`, under the instance's lock, so
    a kill or a look that races with the reaping never touches a closed (or
    reused) fd number."""

    def __init__(self, template: Template, proc: subprocess.Popen[bytes], sock: socket.socket,
                 started: float) -> None:  # fmt: skip
        self.template = template
        self.proc = proc
        self.sock = sock
        self.started = started  # time.monotonic() before the fork
        self.pidfd = os.pidfd_open(proc.pid)  # the child is unreaped: its pid cannot be recycled yet
        self.state = "preparing"  # -> "ready" -> "claimed"; any -> "dead" (the manager's lock guards it)
        self.status: int | None = None  # its exit status, once reaped
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL, unless it was reaped already; the watcher reaps."""
        with self._lock:
            if self.status is None and self.pidfd >= 0:
                try:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # exited, not reaped yet

    def exited(self) -> bool:
        with self._lock:
            return self.status is not None or self.pidfd < 0 or bool(select.select([self.pidfd], [], [], 0)[0])

    def reap(self) -> int:
        """Wait for it (call once its pidfd is readable, or to block until it exits) and close the pidfd."""
        with self._lock:
            if self.status is None:
                self.status = self.proc.wait()
                os.close(self.pidfd)
            return self.status

    def release(self) -> None:
        """Stop watching it, without reaping (a handed-out instance when epm stops)."""
        with self._lock:
            if self.status is None and self.pidfd >= 0:
                os.close(self.pidfd)
                self.pidfd = -1

    def close(self) -> None:
        """Forget the control socket (a claimed instance's is the container's now)."""
        self.sock.close()


def start(template: Template, command: list[str]) -> Instance:
    """Start an instance for `template` (its caller registers it for reaping, then calls prepare)."""
    ours, theirs = wire.pair()
    started = time.monotonic()
    try:
        fd = theirs.fileno()
        try:
            proc = subprocess.Popen([*command, "--fd", str(fd)], pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, env=_environment(), start_new_session=True)  # fmt: skip
        except OSError as exc:
            raise PrepareFailed(command[0], f"cannot start an instance: {exc.strerror or exc}") from None
    finally:
        theirs.close()
    _idle(proc.pid)
    return Instance(template, proc, ours, started)


def _idle(pid: int) -> None:
    """SCHED_IDLE from its first instructions (sched(7)): a refill starts right after a claim,
    while that claim's container starts, and must use only the CPU nobody else wants. The
    interpreter's start-up and imports are most of it, so the instance's own call comes late;
    its handoff puts it back to the normal policy."""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        pass  # it exited already: prepare() reports that


def prepare(instance: Instance, timeout: float) -> float:
    """Send the template's prepare and wait for ready; the seconds the instance says it took.
    Otherwise kills it, closes its socket and raises PrepareFailed."""
    t = instance.template
    instance.sock.settimeout(timeout)
    try:
        wire.send(instance.sock, {"op": "prepare", "rootfs": t.rootfs, "runtime": t.runtime, "args": t.args,
                                  "tee": t.tee})  # fmt: skip
        msg, fds = wire.expect(instance.sock, "ready")
        for fd in fds:
            os.close(fd)
        key, seconds = wire.string(msg, "key"), msg.get("seconds")
        wire.hexbytes(msg, "measurement")
        wire.hexbytes(msg, "signer")
        if key != t.key:
            raise PrepareFailed(t.bundle, f"the instance prepared pool key {key[:16]}, the template's is "
                                f"{t.short} (did the template change since epm started?)")  # fmt: skip
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise PrepareFailed(t.bundle, f"the instance's ready has no seconds ({seconds!r})")
        instance.sock.settimeout(None)
        return float(seconds)
    except PrepareFailed:
        _abandon(instance)
        raise
    except TimeoutError:
        _abandon(instance)
        raise PrepareFailed(t.bundle, f"instance pid {instance.pid} was not ready within {timeout:g} s") from None
    except (OSError, EnclaveError) as exc:
        _abandon(instance)
        raise PrepareFailed(t.bundle, f"instance pid {instance.pid}: {exc}") from None


def _abandon(instance: Instance) -> None:
    instance.kill()
    instance.close()
    instance.state = "dead"


def _environment() -> dict[str, str]:
    import inclavare

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(inclavare.__file__)))
    return {"PATH": _PATH, "PYTHONPATH": package_parent}
