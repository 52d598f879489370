"""The claim socket: where a container's init asks epm for a ready instance.

The client is src/inclavare/enclave/pool/claim.py. A unix SOCK_SEQPACKET
socket, 0600 in a 0700 directory of root's, every peer's SO_PEERCRED read
before a byte is read (as epm's gRPC gate, src/inclavare/epm/server.py):
whoever claims an instance gets a process that will become a container's
enclave, so only root may. One request per connection:

    {"op": "claim", "key": "<64 hex digits>"}   ->  {"op": "hit"} + the instance's control socket
                                                 or {"op": "miss"}

Anything else is closed without an answer. epm closes its copy of a
handed-out socket at once and never hands that instance out again. A request
is answered from memory, so one thread serves them in turn; a client that
does not send within :data:`TIMEOUT` seconds is closed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from ...enclave.pool import wire
from ...errors import EnclaveError
from ..server import RootOnly, claim_path, private_dir
from .manager import PoolManager

log = logging.getLogger("inclavare.epm.pool")
TIMEOUT = 2.0
_HEX = frozenset("0123456789abcdef")


class ClaimServer(RootOnly):
    def __init__(self, path: str, manager: PoolManager) -> None:
        self.path = path
        self.manager = manager
        self.refused = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        private_dir(os.path.dirname(self.path))
        claim_path(self.path, socket.SOCK_SEQPACKET)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # 0600 from the moment it exists
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="epm-pool-claims", daemon=True)
        self._thread.start()
        log.info("serving pool claims on %s (root only)", self.path)

    def stop(self) -> None:
        self._stop_listening(self._thread)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _accept(self) -> None:
        self._accept_root(self.path, self._serve)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        try:
            msg, fds = wire.recv(conn)
        except (OSError, EnclaveError) as exc:
            log.debug("%s: a claim that is not one: %s", self.path, exc)
            return
        for fd in fds:
            os.close(fd)  # a claim carries none
        key = msg.get("key")
        if msg["op"] != "claim" or fds or not isinstance(key, str) or len(key) != 64 or not set(key) <= _HEX:
            log.debug("%s: a claim that is not one: op %.40r", self.path, msg["op"])
            return
        instance = self.manager.claim(key)
        try:
            if instance is None:
                wire.send(conn, {"op": "miss"})
                return
            wire.send(conn, {"op": "hit"}, (instance.sock.fileno(),))
        except OSError as exc:
            log.debug("%s: the claimant left before the answer: %s", self.path, exc.strerror)
            if instance is not None:
                self.manager.discard(instance)
            return
        finally:
            if instance is not None:
                instance.close()
        log.info("pool: handed instance pid %d of %s out (key %s)", instance.pid, instance.template.bundle,
                 key[:16])  # fmt: skip
