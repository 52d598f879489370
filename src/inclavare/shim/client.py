"""A small blocking ttrpc client over :class:`.ttrpc.Connection`.

The shim calls containerd for one thing, forwarding its events, one call at
a time from one thread (:mod:`.events`); so this client sends a request and
reads until that stream's response. Tests use it to drive the shim's Task
service as containerd does.
"""

from __future__ import annotations

import _socket

from . import ttrpc
from .errors import UNAVAILABLE, ShimError, TtrpcProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CallError(ShimError):
    """The server answered with an error status (``code``) or the connection failed (UNAVAILABLE)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Client:
    """One connection to a ttrpc server at a unix socket path (``unix://`` prefix allowed)."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.path = address.removeprefix("unix://")
        self.timeout = timeout
        self._sock: _socket.socket | None = None
        self._codec = ttrpc.Connection(ttrpc.CLIENT)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def call(self, service: str, method: str, request: Any, response_type: Any,
             metadata: dict[str, str] | None = None) -> Any:  # fmt: skip
        """Send `request`, return the decoded response; :class:`CallError` on failure
        (after which the next call reconnects)."""
        try:
            return self._call(service, method, request, response_type, metadata)
        except (OSError, TtrpcProtocolError) as exc:
            self.close()
            raise CallError(UNAVAILABLE, f"ttrpc {self.path}: {exc}") from None

    def _call(self, service: str, method: str, request: Any, response_type: Any,
              metadata: dict[str, str] | None) -> Any:  # fmt: skip
        if self._sock is None:
            self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            self._sock.settimeout(self.timeout)
            self._sock.connect(self.path)
            self._codec = ttrpc.Connection(ttrpc.CLIENT)
        timeout_nano = int(self.timeout * 1e9)
        stream, frame = self._codec.request(service, method, request.SerializeToString(), timeout_nano, metadata)
        self._sock.sendall(frame)
        while True:
            event = self._codec.next_event()
            if event is ttrpc.NEED_DATA:
                self._codec.receive_data(self._sock.recv(1 << 16))
            elif event is ttrpc.CLOSED:
                raise TtrpcProtocolError("connection closed before the response")
            elif isinstance(event, ttrpc.Response | ttrpc.Refused) and event.stream_id == stream:
                if isinstance(event, ttrpc.Refused) or event.code:
                    raise CallError(event.code, event.message)
                return response_type.FromString(event.payload)
