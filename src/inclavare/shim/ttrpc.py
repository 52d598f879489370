"""ttrpc, the RPC protocol between containerd and its shims, sans-IO.

ttrpc is gRPC without HTTP/2: protobuf messages in frames on a unix socket
(github.com/containerd/ttrpc v1.1.1, the version containerd 1.6 vendors:
channel.go, types.go, server.go). Every frame is a 10-byte header and a
payload::

    0        4        8    9    10
    | length | stream | ty | fl | payload (length bytes, at most 4 MiB)
      uint32   uint32   u8   u8
      big-endian

    type 1 = request:  ttrpc.Request{service, method, payload, timeout_nano, metadata}
    type 2 = response: ttrpc.Response{status: google.rpc.Status, payload}

A client numbers its streams 1, 3, 5, ... (odd: client-initiated); the
response comes back on the request's stream, so requests on one connection
are answered in any order (containerd keeps a Wait pending while it sends
Kill). The RPC's own request and response are protobuf messages inside
``payload`` (proto/github.com/containerd/ttrpc/request.proto).

This module holds no socket, like :mod:`inclavare.enclave.agent`: it turns
bytes into events and messages into bytes, and the caller does the I/O::

    conn = Connection(SERVER)
    conn.receive_data(sock.recv(65536))   # b"" at EOF
    event = conn.next_event()             # Request, Response, Refused, NEED_DATA or CLOSED
    sock.sendall(conn.respond(event.stream_id, reply.SerializeToString()))

What upstream's server answers with an error status rather than by dropping
the connection (server.go), so does this codec, as a :class:`Refused` event
for that stream: a frame over 4 MiB (its bytes are skipped, not buffered),
a request that does not decode, an even stream id. Frames of another type
are ignored, for compatibility with later protocol versions. A connection
closed inside a frame raises :class:`~.errors.TtrpcProtocolError`, after
which the connection is dead.
"""

from __future__ import annotations

from .._sansio import CLOSED, NEED_DATA, Sentinel
from .errors import INVALID_ARGUMENT, OK, RESOURCE_EXHAUSTED, TtrpcProtocolError
from .pb import DecodeError, rpc
from .pb import ttrpc as pb

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = [
    "CLIENT", "CLOSED", "HEADER", "MAX_MESSAGE", "NEED_DATA", "REQUEST", "RESPONSE", "SERVER",
    "Connection", "Refused", "Request", "Response",
]  # fmt: skip

HEADER = 10  # messageHeaderLength
MAX_MESSAGE = 4 << 20  # messageLengthMax
REQUEST, RESPONSE = 1, 2  # messageTypeRequest, messageTypeResponse
CLIENT, SERVER = "client", "server"


class Request:
    """A request frame as the server receives it."""

    __slots__ = ("metadata", "method", "payload", "service", "stream_id", "timeout_nano")

    def __init__(self, stream_id: int, service: str, method: str, payload: bytes, timeout_nano: int = 0,
                 metadata: dict[str, str] | None = None) -> None:  # fmt: skip
        self.stream_id = stream_id
        self.service = service
        self.method = method
        self.payload = payload
        self.timeout_nano = timeout_nano
        self.metadata = metadata or {}

    def __repr__(self) -> str:
        return f"Request({self.stream_id}, {self.service}/{self.method}, {len(self.payload)} bytes)"


class Response:
    """A response frame as the client receives it; ``code`` 0 is success."""

    __slots__ = ("code", "message", "payload", "stream_id")

    def __init__(self, stream_id: int, payload: bytes = b"", code: int = OK, message: str = "") -> None:
        self.stream_id = stream_id
        self.payload = payload
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"Response({self.stream_id}, code={self.code}, {self.message!r}, {len(self.payload)} bytes)"


class Refused:
    """A frame the protocol answers with an error on its own stream (the
    server sends ``respond(stream_id, code=..., message=...)``; to a client it
    is that call's failure)."""

    __slots__ = ("code", "message", "stream_id")

    def __init__(self, stream_id: int, code: int, message: str) -> None:
        self.stream_id = stream_id
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"Refused({self.stream_id}, code={self.code}, {self.message!r})"


Event = Request | Response | Refused | Sentinel


class Connection:
    """One end of one ttrpc connection, as `role` (:data:`CLIENT` or :data:`SERVER`)."""

    def __init__(self, role: str, max_message: int = MAX_MESSAGE) -> None:
        if role not in (CLIENT, SERVER):
            raise ValueError(f"role must be {CLIENT!r} or {SERVER!r}")
        self.role = role
        self.max_message = max_message
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized frame still to drop
        self._eof = False
        self._error: TtrpcProtocolError | None = None
        self._next_stream = 1
        self._pending: set[int] = set()  # client: streams awaiting their response

    # -- sending ---------------------------------------------------------
    def request(self, service: str, method: str, payload: bytes, timeout_nano: int = 0,
                metadata: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
        """A request frame on a new stream: (stream id, bytes to send). Client only."""
        if self.role != CLIENT:
            raise TtrpcProtocolError("ttrpc: a server does not send requests")
        req = pb.Request(service=service, method=method, payload=payload, timeout_nano=timeout_nano,
                         metadata=[pb.KeyValue(key=k, value=v) for k, v in (metadata or {}).items()])  # fmt: skip
        stream_id = self._next_stream
        self._next_stream += 2
        self._pending.add(stream_id)
        return stream_id, self._frame(stream_id, REQUEST, req.SerializeToString())

    def respond(self, stream_id: int, payload: bytes = b"", code: int = OK, message: str = "") -> bytes:
        """The response frame for `stream_id`: `payload` on success, else `code` and `message`. Server only."""
        if self.role != SERVER:
            raise TtrpcProtocolError("ttrpc: a client does not send responses")
        status = rpc.Status(code=code, message=message)
        data = pb.Response(status=status, payload=payload).SerializeToString()
        if len(data) > self.max_message:
            # upstream's peer would discard it and fail the call the same way
            status = rpc.Status(code=RESOURCE_EXHAUSTED, message=_too_long(len(data), self.max_message))
            data = pb.Response(status=status).SerializeToString()
        return self._frame(stream_id, RESPONSE, data)

    def _frame(self, stream_id: int, kind: int, data: bytes) -> bytes:
        if len(data) > self.max_message:
            raise TtrpcProtocolError(f"ttrpc: {_too_long(len(data), self.max_message)}")
        return len(data).to_bytes(4, "big") + stream_id.to_bytes(4, "big") + bytes((kind, 0)) + data

    # -- receiving -------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Bytes read from the socket; ``b""`` means EOF."""
        if not data:
            self._eof = True
            return
        if self._eof:
            self._fail("data after the end of the connection")
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buf += data

    def next_event(self) -> Event:
        """The next complete frame as an event, :data:`NEED_DATA` or :data:`CLOSED`."""
        if self._error is not None:
            raise self._error
        while True:
            frame = self._next_frame()
            if isinstance(frame, Sentinel | Refused):
                return frame
            stream_id, kind, payload = frame
            event = self._decode(stream_id, kind, payload)
            if event is not None:
                return event

    def _next_frame(self) -> tuple[int, int, bytes] | Refused | Sentinel:
        buf = self._buf
        if self._skip or len(buf) < HEADER:
            if self._eof and (buf or self._skip):
                self._fail("connection closed inside a frame")
            return CLOSED if self._eof else NEED_DATA
        length = int.from_bytes(buf[0:4], "big")
        stream_id = int.from_bytes(buf[4:8], "big")
        kind = buf[8]
        if length > self.max_message:
            # Skip the body as it arrives instead of buffering up to 4 GiB, and
            # answer on its stream as upstream's channel.recv does.
            dropped = min(length, len(buf) - HEADER)
            del buf[: HEADER + dropped]
            self._skip = length - dropped
            return Refused(stream_id, RESOURCE_EXHAUSTED, _too_long(length, self.max_message))
        if len(buf) < HEADER + length:
            if self._eof:
                self._fail(f"connection closed inside a frame ({len(buf) - HEADER} of {length} bytes)")
            return NEED_DATA
        payload = bytes(buf[HEADER : HEADER + length])
        del buf[: HEADER + length]
        return stream_id, kind, payload

    def _decode(self, stream_id: int, kind: int, payload: bytes) -> Event | None:
        if self.role == SERVER:
            if kind != REQUEST:
                return None  # "we must ignore this for future compat" (server.go)
            try:
                req = pb.Request.FromString(payload)
            except DecodeError as exc:
                return Refused(stream_id, INVALID_ARGUMENT, f"unmarshal request error: {exc}")
            if stream_id % 2 != 1:
                return Refused(stream_id, INVALID_ARGUMENT, "StreamID must be odd for client initiated streams")
            meta = {kv.key: kv.value for kv in req.metadata}
            return Request(stream_id, req.service, req.method, req.payload, req.timeout_nano, meta)
        if kind != RESPONSE or stream_id not in self._pending:
            return None  # a response to no call of ours: dropped, as ttrpc's client does
        self._pending.discard(stream_id)
        try:
            resp = pb.Response.FromString(payload)
        except DecodeError as exc:
            return Refused(stream_id, INVALID_ARGUMENT, f"unmarshal response error: {exc}")
        return Response(stream_id, resp.payload, resp.status.code, resp.status.message)

    def _fail(self, reason: str) -> NoReturn:
        self._error = TtrpcProtocolError(f"ttrpc: {reason}")
        raise self._error


def _too_long(length: int, limit: int) -> str:
    return f"message length {length} exceed maximum message size of {limit}"
