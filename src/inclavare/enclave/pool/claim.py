"""init's side of epm's pool socket: claim an instance for a pool key.

One request per connection: ``{"op": "claim", "key": HEX}`` answered by
``{"op": "hit"}`` with the instance's control socket as its one fd, or
``{"op": "miss"}``. epm hands each instance out once and forgets it.

The socket is trusted only if the process serving it is root (SO_PEERCRED):
whoever answers a claim chooses the code that runs as the container's
enclave. A socket that is absent, refuses, is not root's, or answers
nonsense is a miss: the container starts the unpooled way (fail safe, not
open: that path verifies everything itself).
"""

from __future__ import annotations

import os
import socket
import struct

from . import wire

DEFAULT_SOCKET = "/run/inclavare/epm-pool.sock"
_TIMEOUT = 2.0  # seconds; epm answers from memory


def claim(path: str, key: str) -> tuple[socket.socket | None, str]:
    """(the instance's control socket, "") on a hit; (None, why) otherwise."""
    if not path or not os.path.exists(path):
        return None, f"no pool socket at {path}" if path else "the pool is off"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(_TIMEOUT)
        sock.connect(path)
        uid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != 0:
            return None, f"{path} is served by uid {uid}, not root"
        wire.send(sock, {"op": "claim", "key": key})
        msg, fds = wire.recv(sock)
        if msg["op"] == "hit" and len(fds) == 1:
            try:
                instance = socket.socket(fileno=fds[0])
            except OSError:
                os.close(fds[0])
                return None, "epm answered with something that is not a socket"
            instance.settimeout(None)
            return instance, ""
        for fd in fds:
            os.close(fd)
        return None, "no instance for this enclave" if msg["op"] == "miss" else f"epm answered {msg['op']!r}"
    except (OSError, wire.PoolProtocolError) as exc:
        return None, f"{path}: {exc}"
    finally:
        sock.close()
