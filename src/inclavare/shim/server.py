"""The ttrpc server loop: a unix socket around :class:`.ttrpc.Connection`.

One thread accepts; one thread per connection reads and decodes frames;
each request runs in a thread of its own and writes its response under the
connection's lock, so a Wait that blocks until a process exits does not hold
up the Kill containerd sends on the same connection (upstream serves each
request in a goroutine: ttrpc server.go, serverConn.run). Threads, not an
event loop, because the handlers run rune, which blocks.

Only the shim's own user may connect (SO_PEERCRED), as upstream's shim
requires with ttrpc.UnixSocketRequireSameUser (runtime/v2/shim/shim_linux.go).
"""

from __future__ import annotations

import _socket
import os
import struct
import threading
import time

from ..errors import InclavareError
from . import ttrpc
from .errors import INTERNAL, INVALID_ARGUMENT, UNIMPLEMENTED, ShimError, TtrpcProtocolError
from .pb import DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..log import Logger

    # (request message class, or its full name: made on first use; handler taking the decoded
    # request and returning the response message)
    Method = tuple[Any, Callable[[Any], Any]]

_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}, socket(7) SO_PEERCRED


class Server:
    """Serves `services` ({service name: {method name: Method}}) on a listening unix socket."""

    def __init__(self, services: dict[str, dict[str, Method]], log: Logger, debug: bool = False) -> None:
        self.services = services
        self.log = log
        self.debug = debug
        self._listener: _socket.socket | None = None
        self._closed = threading.Event()
        self._active = 0  # requests received and not yet answered
        self._idle = threading.Condition()

    def serve(self, listener: _socket.socket) -> None:
        """Accept connections on `listener` in a background thread."""
        self._listener = listener
        threading.Thread(target=self._accept, name="ttrpc-accept", daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass

    def idle(self, timeout: float) -> bool:
        """Wait until every request received has been answered (for up to `timeout` seconds)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def _busy(self, delta: int) -> None:
        with self._idle:
            self._active += delta
            self._idle.notify_all()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                fd, _ = self._listener._accept()  # type: ignore[attr-defined]  # what socket.accept() wraps
            except OSError as exc:
                if self._closed.is_set():
                    return
                self.log.warning(f"ttrpc: accept: {exc}")
                time.sleep(0.1)  # out of fds, say: do not spin
                continue
            sock = _socket.socket(fileno=fd)
            if not self._same_user(sock):
                sock.close()
                continue
            threading.Thread(target=_Conn(self, sock).run, name="ttrpc-conn", daemon=True).start()

    def _same_user(self, sock: _socket.socket) -> bool:
        raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED.size)
        _pid, uid, gid = _UCRED.unpack(raw)
        if (uid, gid) != (os.geteuid(), os.getegid()):
            self.log.warning(f"ttrpc: refused a connection from uid {uid} gid {gid}: not the shim's user")
            return False
        return True

    def dispatch(self, req: ttrpc.Request) -> tuple[bytes, int, str]:
        """Run one request: (response payload, status code, status message)."""
        if not self.debug:
            return self._dispatch(req)
        started = time.monotonic()
        payload, code, message = self._dispatch(req)
        took = (time.monotonic() - started) * 1000
        self.log.debug(f"{req.method}: {took:.1f} ms" + (f" (code {code}: {message})" if code else ""))
        return payload, code, message

    def _dispatch(self, req: ttrpc.Request) -> tuple[bytes, int, str]:
        methods = self.services.get(req.service)
        if methods is None:
            return b"", UNIMPLEMENTED, f"service {req.service}"
        method = methods.get(req.method)
        if method is None:
            return b"", UNIMPLEMENTED, f"method {req.method}"
        request_type, handler = method
        if isinstance(request_type, str):
            from .pb import message

            request_type = message(request_type)
        try:
            message = request_type.FromString(req.payload)
        except DecodeError as exc:
            return b"", INVALID_ARGUMENT, f"ttrpc: error unmarshalling payload: {exc}"
        try:
            return handler(message).SerializeToString(), 0, ""
        except ShimError as exc:
            return b"", exc.code, str(exc)
        except InclavareError as exc:
            return b"", INTERNAL, str(exc)
        except Exception as exc:  # a bug in the shim: one line to containerd, the traceback in our log
            self.log.error(f"{req.method}: internal error: {type(exc).__name__}: {exc}")
            if self.debug:
                import traceback

                self.log.debug(traceback.format_exc())
            return b"", INTERNAL, f"shim internal error: {type(exc).__name__}: {exc}"


class _Conn:
    """One accepted connection: a reader thread, and a thread per request."""

    def __init__(self, server: Server, sock: _socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.codec = ttrpc.Connection(ttrpc.SERVER)
        self._send_lock = threading.Lock()

    def run(self) -> None:
        try:
            self._read()
        except (OSError, TtrpcProtocolError) as exc:
            self.server.log.warning(f"ttrpc: connection dropped: {exc}")
        finally:
            self.sock.close()

    def _read(self) -> None:
        while True:
            event = self.codec.next_event()
            if event is ttrpc.NEED_DATA:
                self.codec.receive_data(self.sock.recv(1 << 16))
            elif event is ttrpc.CLOSED:
                return
            elif isinstance(event, ttrpc.Refused):
                self._send(self.codec.respond(event.stream_id, code=event.code, message=event.message))
            elif isinstance(event, ttrpc.Request):
                self.server._busy(1)
                threading.Thread(target=self._handle, args=(event,), name=event.method, daemon=True).start()

    def _handle(self, req: ttrpc.Request) -> None:
        try:
            payload, code, message = self.server.dispatch(req)
            self._send(self.codec.respond(req.stream_id, payload, code, message))
        except OSError:
            pass  # the client went away; its reader thread ends the connection
        finally:
            self.server._busy(-1)

    def _send(self, frame: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(frame)
