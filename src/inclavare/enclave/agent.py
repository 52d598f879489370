"""The agent protocol between a runelet and the init-runelet, sans-IO.

`rune exec` and `rune attest` run a *runelet* in the container, which asks
the *init-runelet* (the container's init, which holds the enclave) to do the
work (docs/architecture.md, "init (init-runelet)"). They talk over a connected unix stream socket
(``<root>/<id>/agent.sock``). This module holds no socket: like h11, it turns
bytes into messages and messages into bytes, and the caller does the I/O::

    runelet                                             init-runelet
      |-- exec {argv, env, cwd, tty} ---------------------->|  create_process
      |     + SCM_RIGHTS [stdin, stdout, stderr] (same      |
      |       sendmsg as the frame's bytes, in this order)  |
      |-- kill {sig} -- any number, as signals arrive ----->|  kill(pid, sig)
      |<------------------------ exec_response {exit_code, error}
      close                                                 |

      |-- attest {report_data, target_info, is_ra, quote_type} ->|  local_report
      |<------------------------ attest_response {report, error}

Frames keep the original's framing: a 4-byte little-endian length, then the
payload; the payload is JSON (:mod:`.agent_messages`) instead of protobuf.
The signal channel is the same socket's later ``kill`` frames, where the
original passed a separate pipe as a fourth fd. One request per connection.

Usage (init-runelet side)::

    conn = AgentConnection(INIT)
    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 3)
    conn.receive_data(data, fds)          # b"" at EOF
    event = conn.next_event()             # a message, NEED_DATA or CLOSED
    sock.sendall(conn.send(ExecResponse(code)))

Every malformed input raises :class:`~.errors.AgentProtocolError`, after which
the connection is dead. File descriptors that arrived but were not handed out
with an ExecRequest are returned by :meth:`AgentConnection.take_fds`; closing
them is the caller's job.
"""

from __future__ import annotations

from .. import _fastjson
from .._sansio import CLOSED, NEED_DATA, Sentinel
from .agent_messages import REQUESTS, RESPONSES, AttestRequest, AttestResponse, ExecRequest, ExecResponse, Kill, Message
from .errors import AgentProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:  # `rune exec` imports this module; typing alone costs ~15 ms
    from collections.abc import Sequence
    from typing import NoReturn

__all__ = [
    "CLOSED", "INIT", "MAX_FRAME", "NEED_DATA", "RUNELET", "AgentConnection", "AttestRequest",
    "AttestResponse", "ExecRequest", "ExecResponse", "Kill", "Message",
]  # fmt: skip

RUNELET, INIT = "runelet", "init-runelet"
HEADER = 4  # little-endian uint32 payload length, as the original's agent.go framed its protobufs
MAX_FRAME = 4 << 20  # 4 MiB, as ttrpc: fits any argv+env the kernel accepts (ARG_MAX 2 MiB)
STDIO_FDS = 3  # stdin, stdout, stderr


# What each side may receive, in order: one request (or one response), then
# for requests only any number of kill frames.
_FIRST: dict[str, tuple[type[Message], ...]] = {
    INIT: (ExecRequest, AttestRequest),
    RUNELET: (ExecResponse, AttestResponse),
}
_ANSWERS = {ExecRequest: ExecResponse, AttestRequest: AttestResponse}


class AgentConnection:
    """One end of one agent connection, as `role` (:data:`RUNELET` or :data:`INIT`)."""

    def __init__(self, role: str, max_frame: int = MAX_FRAME) -> None:
        if role not in _FIRST:
            raise ValueError(f"role must be {RUNELET!r} or {INIT!r}")
        self.role = role
        self.max_frame = max_frame
        self._buf = bytearray()
        self._fds: list[int] = []
        self._eof = False
        self._error: AgentProtocolError | None = None
        self._received: list[type[Message]] = []  # kinds of the messages received so far
        self._sent: list[type[Message]] = []

    # -- sending ---------------------------------------------------------
    def send(self, msg: Message) -> bytes:
        """The frame for `msg`; it must be this role's next message to send."""
        self._check_send(msg)
        # Round-trip through the peer's validation, so we never send what it rejects.
        wire = msg.to_wire()
        type(msg).from_wire(wire)
        payload = _fastjson.dumps(wire).encode()
        if len(payload) > self.max_frame:
            raise AgentProtocolError(f"agent {msg.TYPE} message of {len(payload)} bytes exceeds {self.max_frame}")
        self._sent.append(type(msg))
        return len(payload).to_bytes(HEADER, "little") + payload

    def _check_send(self, msg: Message) -> None:
        if self.role == RUNELET:
            ok = isinstance(msg, Kill) if self._sent else isinstance(msg, ExecRequest | AttestRequest)
        else:
            request = self._received[0] if self._received else None
            ok = not self._sent and request is not None and isinstance(msg, _ANSWERS[request])
        if not ok:
            raise AgentProtocolError(f"{self.role} cannot send {msg.TYPE} now")

    # -- receiving -------------------------------------------------------
    def receive_data(self, data: bytes, fds: Sequence[int] = ()) -> None:
        """Bytes (and SCM_RIGHTS fds) read from the socket; ``b""`` means EOF."""
        self._fds.extend(fds)
        if self._eof and (data or fds):
            self._fail("data after the end of the connection")
        if data:
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Message | Sentinel:
        """The next complete message, :data:`NEED_DATA` or :data:`CLOSED`."""
        if self._error is not None:
            raise self._error
        payload = self._next_frame()
        if payload is None:
            return CLOSED if self._eof else NEED_DATA
        msg = self._decode(payload)
        self._check_order(msg)
        self._attach_fds(msg)
        self._received.append(type(msg))
        return msg

    def take_fds(self) -> list[int]:
        """File descriptors received and not handed out with an ExecRequest."""
        fds, self._fds = self._fds, []
        return fds

    def _next_frame(self) -> bytes | None:
        buf = self._buf
        if len(buf) < HEADER:
            if self._eof and buf:
                self._fail(f"connection closed inside a frame header ({len(buf)} of {HEADER} bytes)")
            return None
        size = int.from_bytes(buf[:HEADER], "little")
        if size == 0:
            self._fail("empty frame")
        if size > self.max_frame:
            self._fail(f"frame of {size} bytes exceeds the maximum of {self.max_frame}")
        if len(buf) < HEADER + size:
            if self._eof:
                self._fail(f"connection closed inside a frame ({len(buf) - HEADER} of {size} bytes)")
            return None
        payload = bytes(buf[HEADER : HEADER + size])
        del buf[: HEADER + size]
        return payload

    def _decode(self, payload: bytes) -> Message:
        try:
            obj = _fastjson.loads(payload)
        except ValueError as exc:  # _fastjson.JSONError, also for bad UTF-8 and deep nesting
            self._fail(f"frame is not JSON: {exc}")
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            self._fail('frame is not a JSON object with a "type"')
        kinds = REQUESTS if self.role == INIT else RESPONSES
        cls = kinds.get(obj["type"])
        if cls is None:
            self._fail(f"unexpected message type {obj['type']!r} for the {self.role}")
        try:
            return cls.from_wire(obj)
        except AgentProtocolError as exc:
            self._error = exc
            raise

    def _check_order(self, msg: Message) -> None:
        if not self._received:
            if not isinstance(msg, _FIRST[self.role]):
                expected = " or ".join(c.TYPE for c in _FIRST[self.role])
                self._fail(f"unexpected {msg.TYPE} message, expected {expected}")
        elif self.role == RUNELET:
            self._fail(f"unexpected {msg.TYPE} message: one response per connection")
        elif not isinstance(msg, Kill):
            self._fail(f"unexpected {msg.TYPE} message: only kill messages may follow a request")

    def _attach_fds(self, msg: Message) -> None:
        """stdin, stdout, stderr come with the exec frame and with nothing else."""
        if isinstance(msg, ExecRequest):
            if len(self._fds) != STDIO_FDS:
                self._fail(f"exec message came with {len(self._fds)} file descriptors, expected {STDIO_FDS}")
            msg.stdio = (self._fds[0], self._fds[1], self._fds[2])
            self._fds = []
        elif self._fds:
            self._fail(f"{msg.TYPE} message came with file descriptors")

    def _fail(self, reason: str) -> NoReturn:
        self._error = AgentProtocolError(f"agent protocol: {reason}")
        raise self._error
