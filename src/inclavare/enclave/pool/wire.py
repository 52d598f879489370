"""The pool's messages: one JSON object per SOCK_SEQPACKET datagram, fds beside it.

SOCK_SEQPACKET keeps message boundaries, so there is no framing to get wrong,
and SCM_RIGHTS fds travel with the datagram they belong to (unix(7)). Bytes
travel as hex. Every message has an ``op``; a refusal is
``{"op": "error", "msg": ..., "kind": ...}``, raised on the receiving side as
the :mod:`inclavare.enclave.errors` class that `kind` names, so `rune` shows
the same one line it would have shown without the pool.

A datagram is bounded by the sender's socket buffer (wmem_default, ~208 KiB),
and a process spec may carry a large environment: a message over
:data:`INLINE` bytes travels in a memfd instead, passed as the datagram's last
fd, the datagram saying only ``{"op": ..., "spilled": size}``.
"""

from __future__ import annotations

import array
import os
import socket

from ... import _fastjson
from ...errors import EnclaveError
from .. import errors as enclave_errors

MAX_MESSAGE = 8 << 20  # a process spec with a large environment (ARG_MAX is 2 MiB) still fits
INLINE = 64 << 10  # larger ones are spilled to a memfd
MAX_FDS = 8

# The refusals that cross the wire keep their class (anything else is an EnclaveError).
_KINDS = {cls.__name__: cls for cls in (
    enclave_errors.EnclaveStateError, enclave_errors.EnclaveNotSupported,
    enclave_errors.EnclaveUnavailable,
)}  # fmt: skip


class PoolProtocolError(EnclaveError):
    """The other side of a pool socket said something this side does not understand."""


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, msg: dict[str, object], fds: tuple[int, ...] | list[int] = ()) -> None:
    data = _fastjson.dumps(msg).encode()  # not json: rune create loads this (docs in _fastjson)
    if len(data) > MAX_MESSAGE:
        raise PoolProtocolError(f"enclave pool: a {msg.get('op')} message of {len(data)} bytes is too large")
    if len(data) > INLINE:
        _send_spilled(sock, str(msg.get("op")), data, list(fds))
    elif fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def _send_spilled(sock: socket.socket, op: str, data: bytes, fds: list[int]) -> None:
    memfd = os.memfd_create("inclavare-pool-message", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(memfd, view) :]
        header = _fastjson.dumps({"op": op, "spilled": len(data)}).encode()
        socket.send_fds(sock, [header], [*fds, memfd])
    finally:
        os.close(memfd)


def recv(sock: socket.socket) -> tuple[dict[str, object], list[int]]:
    """The next message and its fds (close-on-exec); EOF is a PoolProtocolError."""
    # recvmsg, not socket.recv_fds: that one drops its flags argument (CPython 3.11), and the
    # fds must be close-on-exec from the start, not after: other threads fork (the native runtime).
    data, ancillary, flags, _ = sock.recvmsg(INLINE, socket.CMSG_SPACE(MAX_FDS * 4),
                                             socket.MSG_CMSG_CLOEXEC)  # fmt: skip
    received = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
    fds = list(received)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        _close(fds)
        raise PoolProtocolError("enclave pool: a message or its fds were truncated")
    if not data:
        _close(fds)
        raise PoolProtocolError("enclave pool: the other side closed the connection")
    try:
        msg = _fastjson.loads(data)
    except ValueError:
        msg = None
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        _close(fds)
        raise PoolProtocolError("enclave pool: a message is not a JSON object with an op")
    if "spilled" in msg:
        return _unspill(msg, fds), fds
    return msg, fds


def _unspill(header: dict[str, object], fds: list[int]) -> dict[str, object]:
    """The message a spilled header stands for, read from its memfd (the last fd, closed here)."""
    size = header["spilled"]
    if not fds or not isinstance(size, int) or isinstance(size, bool) or not INLINE < size <= MAX_MESSAGE:
        _close(fds)
        raise PoolProtocolError("enclave pool: a spilled message without its memfd or with a bad size")
    memfd = fds.pop()
    try:
        data = os.pread(memfd, size + 1, 0)
    except OSError as exc:
        _close(fds)
        raise PoolProtocolError(f"enclave pool: reading a spilled message: {exc.strerror}") from None
    finally:
        os.close(memfd)
    try:
        msg = _fastjson.loads(data) if len(data) == size else None
    except ValueError:
        msg = None
    if not isinstance(msg, dict) or msg.get("op") != header["op"]:
        _close(fds)
        raise PoolProtocolError("enclave pool: a spilled message is not the JSON object its header announced")
    return msg


def expect(sock: socket.socket, op: str) -> tuple[dict[str, object], list[int]]:
    """The next message, which must be `op`; an error message is raised as its kind."""
    msg, fds = recv(sock)
    if msg["op"] == op:
        return msg, fds
    _close(fds)
    if msg["op"] == "error":
        raise error_of(msg)
    raise PoolProtocolError(f"enclave pool: expected {op}, got {str(msg['op'])[:40]!r}")


def error_message(exc: BaseException) -> dict[str, object]:
    text = str(exc) if isinstance(exc, EnclaveError | OSError) else f"{type(exc).__name__}: {exc}"
    return {"op": "error", "msg": text.splitlines()[0] if text else type(exc).__name__,
            "kind": type(exc).__name__}  # fmt: skip


def error_of(msg: dict[str, object]) -> EnclaveError:
    cls = _KINDS.get(str(msg.get("kind")), EnclaveError)
    return cls(str(msg.get("msg", "enclave pool: unspecified error")))


def string(msg: dict[str, object], name: str) -> str:
    value = msg.get(name)
    if not isinstance(value, str):
        raise PoolProtocolError(f"enclave pool: {msg['op']}.{name} is not a string")
    return value


def hexbytes(msg: dict[str, object], name: str) -> bytes:
    try:
        return bytes.fromhex(string(msg, name))
    except ValueError:
        raise PoolProtocolError(f"enclave pool: {msg['op']}.{name} is not hex") from None


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
