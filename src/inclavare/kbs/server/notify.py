"""sd_notify(3) without libsystemd: tell the service manager the broker is ready, or stopping.

With ``Type=notify`` (deploy/systemd/inclavare-kbs.service) systemd sets
``NOTIFY_SOCKET`` to a unix datagram socket and waits for ``READY=1`` before
it calls the unit started — so units ordered after the broker start only
once it accepts connections. The message is newline-separated ``KEY=VALUE``
assignments in one datagram; a path starting with ``@`` is in the abstract
namespace (sd_notify(3), "NOTES"). Without ``NOTIFY_SOCKET`` nothing is sent.
A failure to notify is logged, never fatal: the broker serves either way,
and systemd's start timeout reports a unit that never said ready.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("inclavare.kbs")


def sd_notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``"READY=1\\nSTATUS=..."``) to ``$NOTIFY_SOCKET``; True if a datagram was sent."""
    path = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not path:
        return False
    if path[0] not in "/@":
        log.error("NOTIFY_SOCKET %r is not a unix socket path; systemd was not told %s", path, state.split("\n")[0])
        return False
    address = "\0" + path[1:] if path[0] == "@" else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.error("NOTIFY_SOCKET %s: %s; systemd was not told %s", path, exc.strerror or exc, state.split("\n")[0])
        return False
    return True
