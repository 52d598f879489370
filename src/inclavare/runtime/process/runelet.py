"""The init-runelet: an enclave container's init, which never execs.

After `rune start` it runs the entrypoint through the enclave runtime and
then stays, for as long as the entrypoint runs, as an event loop on its
main thread (docs/architecture.md, "init (init-runelet)"):

* signals rune's caller sends to init (``rune kill``) are forwarded to the
  enclave with ``kill(-1, sig)``; a runtime that cannot signal (PAL v1) is
  destroyed instead, and init exits 128+sig, so a stop request always stops;
* connections on the agent socket (``rune exec``, ``rune attest``) are served
  in threads of their own, against the same enclave instance;
* when the entrypoint ends: destroy the enclave, exit with its status.

``wait`` blocks in worker threads; the main thread never calls into the
runtime except for ``kill`` and ``destroy``. Signals reach the main thread
through a wakeup pipe (signal.set_wakeup_fd): the C-level handler writes
the signal number there even while Python is blocked in poll().
"""

from __future__ import annotations

import _signal
import os
import select
import socket
import threading

from ...enclave.agent import (
    INIT,
    NEED_DATA,
    AgentConnection,
    AttestRequest,
    AttestResponse,
    ExecRequest,
    ExecResponse,
    Kill,
)
from ...enclave.errors import AgentProtocolError
from ...enclave.interface import PID_ALL, EnclaveRuntime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# Forwarded: everything catchable but SIGCHLD (the runtime reaps its own
# children), SIGURG and SIGWINCH (no meaning for an enclave), SIGPIPE.
FORWARDED = tuple(n for n in range(1, 32) if n not in (9, 13, 17, 19, 23, 28))
_TERMINATING = (1, 2, 3, 6, 14, 15, 10, 12)  # HUP INT QUIT ABRT ALRM TERM USR1 USR2


class Runelet:
    def __init__(self, rt: EnclaveRuntime, agent_fd: int, log: object = None) -> None:
        self.rt = rt
        self.agent = socket.socket(fileno=agent_fd) if agent_fd >= 0 else None
        self.can_kill = bool(rt.probe()["can_kill"])
        self._log = log

    def serve(self, path: str, argv: list[str], env: list[str], started: Callable[[], object]) -> int:
        """Run the entrypoint; serve signals and the agent until it ends. Its status.

        `started` is called once the entrypoint runs in the enclave (it lets
        `rune start` return, as execve does for a plain container)."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for signum in FORWARDED:
            _signal.signal(signum, _noop)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        done_r, done_w = os.pipe2(os.O_CLOEXEC)
        pid = self.rt.create_process(path, argv, env, (0, 1, 2))
        started()
        threading.Thread(target=self._wait_entrypoint, args=(pid, done_w), daemon=True).start()
        status = self._loop(wake_r, done_r)
        self.rt.destroy()
        return status

    def _wait_entrypoint(self, pid: int, done_w: int) -> None:
        try:
            status = self.rt.wait(pid)
        except Exception as exc:
            os.write(2, f"rune init: {exc}\n".encode())
            status = 1
        os.write(done_w, status.to_bytes(2, "little"))

    def _loop(self, wake_r: int, done_r: int) -> int:
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        poller.register(done_r, select.POLLIN)
        if self.agent is not None:
            poller.register(self.agent.fileno(), select.POLLIN)
        while True:
            for fd, _events in poller.poll():
                if fd == done_r:
                    return int.from_bytes(os.read(done_r, 2), "little")
                if fd == wake_r:
                    status = self._signals(os.read(wake_r, 256))
                    if status is not None:
                        return status
                elif self.agent is not None:
                    conn, _ = self.agent.accept()
                    threading.Thread(target=serve_connection, args=(self.rt, conn), daemon=True).start()

    def _signals(self, received: bytes) -> int | None:
        for signum in received:
            if self.can_kill:
                try:
                    self.rt.kill(PID_ALL, signum)
                except Exception as exc:
                    os.write(2, f"rune init: forwarding signal {signum}: {exc}\n".encode())
            elif signum in _TERMINATING:
                return 128 + signum  # nothing can deliver it: stop the enclave ourselves
        return None


def _noop(_signum: int, _frame: object) -> None:
    """Catching the signal is the point: the wakeup fd carries its number."""


def serve_connection(rt: EnclaveRuntime, sock: socket.socket) -> None:
    """One agent request (exec or attest), then close."""
    conn = AgentConnection(INIT)
    try:
        request = _next(conn, sock)
        if isinstance(request, ExecRequest):
            _serve_exec(rt, conn, sock, request)
        elif isinstance(request, AttestRequest):
            _serve_attest(rt, conn, sock, request)
    except (AgentProtocolError, OSError):
        pass  # the runelet went away or spoke nonsense: nothing to answer
    finally:
        for fd in conn.take_fds():
            os.close(fd)
        sock.close()


def _next(conn: AgentConnection, sock: socket.socket) -> object:
    while True:
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 3)
        for fd in fds:
            os.set_inheritable(fd, False)  # the runtime dup2()s what it needs; no stray copies
        conn.receive_data(data, fds)


def _serve_exec(rt: EnclaveRuntime, conn: AgentConnection, sock: socket.socket, req: ExecRequest) -> None:
    stdio = req.stdio or (0, 1, 2)
    try:
        try:
            pid = rt.create_process(_resolve(req.argv[0], req.env), req.argv, req.env, stdio)
        except Exception as exc:
            sock.sendall(conn.send(ExecResponse(127, str(exc))))
            return
        threading.Thread(target=_relay_kills, args=(rt, conn, sock, pid), daemon=True).start()
        try:
            status, error = rt.wait(pid), ""
        except Exception as exc:
            status, error = 1, str(exc)
    finally:
        for fd in set(req.stdio or ()):
            os.close(fd)  # the interface: the caller keeps stdio open until wait returns
    sock.sendall(conn.send(ExecResponse(status, error)))


def _resolve(name: str, env: list[str]) -> str:
    """$PATH lookup in the container, as for the entrypoint; verbatim when not
    found (the program may exist only inside the enclave image)."""
    from .workload import DEFAULT_PATH, lookup

    search = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    try:
        return lookup(name, search)
    except Exception:
        return name


def _relay_kills(rt: EnclaveRuntime, conn: AgentConnection, sock: socket.socket, pid: int) -> None:
    """Signals of the runelet arrive as kill frames after the request."""
    try:
        while True:
            event = _next(conn, sock)
            if isinstance(event, Kill):
                rt.kill(pid, event.sig)
            else:
                return  # CLOSED
    except Exception:
        return  # the connection ended (the exec finished and the socket closed)


def _serve_attest(rt: EnclaveRuntime, conn: AgentConnection, sock: socket.socket, req: AttestRequest) -> None:
    if req.is_ra and rt.probe()["tee"] != "software":
        msg = "not supported on this platform: no SGX quoting service (aesmd) for remote attestation evidence"
        sock.sendall(conn.send(AttestResponse(error=msg)))
        return
    target = req.target_info or bytes(512)
    try:
        report = rt.local_report(target, req.report_data)
    except Exception as exc:
        sock.sendall(conn.send(AttestResponse(error=str(exc))))
        return
    sock.sendall(conn.send(AttestResponse(report=report)))
