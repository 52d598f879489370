"""The signing server's audit log: one JSON line per signature and per refusal.

A line says who asked (:mod:`.auth`), from where, when (RFC 3339, UTC),
what was signed — the SHA-256 of the exact bytes, and for an inclavare
enclave signature body (docs/enclave-identity.md, "Signing") the enclave's
measurement, product id, SVN and debug flag — and with which algorithm::

    {"time":"2025-01-02T03:04:05.678Z","event":"signature","who":"token:node-7",
     "peer":"10.0.0.7:40112","algorithm":"ed25519","sha256":"...","size":142,
     "enclave":{"measurement":"...","isv_prod_id":0,"isv_svn":0,"debug":false}}

The line is written (one ``O_APPEND`` write) before the signature leaves the
server; if it cannot be written the request fails: no signature without its
record. Lines never hold tokens, keys or signatures.
"""

from __future__ import annotations

import json
import os
import threading
import time


def rfc3339(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


class AuditLog:
    """Appends JSON lines to `path` (created 0600) or, without one, to standard error."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or "<stderr>"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600) if path else 2
        self._own = path is not None
        self._lock = threading.Lock()

    def write(self, at: float, event: str, **fields: object) -> None:
        """Append one line; an OSError means the record is not written (the caller refuses)."""
        doc = {"time": rfc3339(at), "event": event, **fields}
        line = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if os.write(self._fd, line) != len(line):
                raise OSError(0, "short write")

    def close(self) -> None:
        if self._own and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
