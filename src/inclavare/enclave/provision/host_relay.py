"""The host side of the tunnel: `rune create` makes TCP connections and moves bytes.

While the container's init provisions its secrets, `rune create` serves
three messages on the spawn channel (runtime/process/messages.py):

* ``kbs-connect {host, port}`` — init has just passed one end of a fresh
  socketpair over the control socket (SCM_RIGHTS); rune connects to
  ``host:port`` *if* it is one of the container's ``enclave.kbs.url``
  replicas (init is the container's: rune dials nothing else for it),
  answers ``kbs-connected {}`` or ``kbs-connected {"error": reason}`` and
  from then on copies bytes both ways between the two sockets;
* ``kbs-done`` — provisioning is over: every connection is closed;
* ``error {msg}`` — provisioning failed: :class:`InitFailed`, one line.

What rune copies is TLS that ends inside the container (tunnel.py): rune
never sees HTTP, a cookie, a token or a JWE, and cannot make one up.
The copying is one single-threaded poll loop: `rune create` stays
single-threaded, and a slow side never blocks the other direction (each
direction has its own buffer and waits for POLLOUT).
"""

from __future__ import annotations

import os
import select
import socket

from ...errors import EnclaveError
from .spawn import CONNECT, CONNECTED, DONE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import Channel

_CHUNK = 65536


class HostRelay:
    """Connections for the enclave side, bytes only. A test may subclass it and override :meth:`open`."""

    def __init__(self, channel: Channel, control: socket.socket, allowed: set[tuple[str, int]],
                 timeout: float = 10.0) -> None:  # fmt: skip
        self.channel = channel
        self.control = control
        self.allowed = allowed  # (host, port) of each enclave.kbs.url replica
        self.timeout = timeout
        self.pumps: list[Pump] = []

    def open(self, host: str, port: int) -> socket.socket:
        """A connection to the broker replica at host:port (OSError when there is none)."""
        return socket.create_connection((host, port), timeout=self.timeout)

    def run(self) -> None:
        """Serve the enclave side until it says ``kbs-done`` (or fails: InitFailed)."""
        try:
            while True:
                if not self.channel.buffered():
                    self._pump_until_message()
                kind, payload = self.channel.expect_one((CONNECT, DONE))
                if kind == DONE:
                    return
                self._connect(payload)
        finally:
            for pump in self.pumps:
                pump.close()
            self.control.close()

    def _connect(self, payload: object) -> None:
        _msg, fds, _flags, _addr = socket.recv_fds(self.control, 16, 1)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise EnclaveError(f"secret provisioning: {CONNECT} came without its socket")
        local = socket.socket(fileno=fds[0])
        host = payload.get("host") if isinstance(payload, dict) else None
        port = payload.get("port") if isinstance(payload, dict) else None
        if not isinstance(host, str) or not isinstance(port, int) or (host, port) not in self.allowed:
            local.close()
            self.channel.send(CONNECTED, {"error": f"{host!r}:{port!r} is not one of the container's enclave.kbs.url"})
            return
        try:
            remote = self.open(host, port)
        except OSError as exc:
            local.close()
            self.channel.send(CONNECTED, {"error": exc.strerror or str(exc) or type(exc).__name__})
            return
        self.pumps.append(Pump(local, remote))
        self.channel.send(CONNECTED, {})

    def _pump_until_message(self) -> None:
        """Copy bytes until the channel has something to read (or hung up)."""
        while True:
            poller = select.poll()
            poller.register(self.channel.rfd, select.POLLIN)
            owners: dict[int, Pump] = {}
            for pump in self.pumps:
                for fd, mask in pump.interest().items():
                    poller.register(fd, mask)
                    owners[fd] = pump
            events = poller.poll()
            for fd, mask in events:
                if fd in owners:
                    owners[fd].handle(fd, mask)
            self.pumps = [p for p in self.pumps if not p.closed]
            if any(fd == self.channel.rfd for fd, _ in events):
                return


class Pump:
    """Bytes both ways between two sockets; half-closes pass through (shutdown SHUT_WR)."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self.socks = {a.fileno(): a, b.fileno(): b}
        self.peer = {a.fileno(): b.fileno(), b.fileno(): a.fileno()}
        self.pending = {fd: b"" for fd in self.socks}  # bytes waiting to be written *to* fd
        self.eof = dict.fromkeys(self.socks, False)  # fd has nothing more to read
        self.closed = False
        for sock in (a, b):
            sock.setblocking(False)

    def interest(self) -> dict[int, int]:
        masks = dict.fromkeys(self.socks, 0)
        for fd in self.socks:
            if self.pending[fd]:
                masks[fd] |= select.POLLOUT
            elif not self.eof[self.peer[fd]]:
                masks[self.peer[fd]] |= select.POLLIN
        return {fd: m for fd, m in masks.items() if m}

    def handle(self, fd: int, mask: int) -> None:
        try:
            if mask & select.POLLOUT:
                self._flush(fd)
            if mask & (select.POLLIN | select.POLLHUP | select.POLLERR) and not self.eof[fd]:
                self._read(fd)
        except BlockingIOError:
            pass
        except OSError:  # reset, broken pipe: the connection is over for both sides
            self.close()
            return
        if all(self.eof.values()) and not any(self.pending.values()):
            self.close()

    def _read(self, fd: int) -> None:
        data = self.socks[fd].recv(_CHUNK)
        other = self.peer[fd]
        if data:
            self.pending[other] += data
            return
        self.eof[fd] = True
        if not self.pending[other]:
            self.socks[other].shutdown(socket.SHUT_WR)

    def _flush(self, fd: int) -> None:
        sent = self.socks[fd].send(self.pending[fd])
        self.pending[fd] = self.pending[fd][sent:]
        if not self.pending[fd] and self.eof[self.peer[fd]]:
            self.socks[fd].shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for sock in self.socks.values():
                sock.close()
