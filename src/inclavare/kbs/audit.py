"""The audit log: one JSON line per release, denial, attestation and admin change.

Records are written to the database inside the transaction that does the
work (see :mod:`.storage.interface`), which is the authoritative log, and
then mirrored here as JSON lines — to ``audit.path`` if configured (one
``O_APPEND`` write per line, so concurrent writers do not interleave) and
to the ``inclavare.kbs.audit`` logger. Records name resources, requesters
(by session-key prefix, token id or admin name), outcomes and reasons;
never resource bytes, cookies, tokens or keys.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace

from .storage.interface import AuditRecord

log = logging.getLogger("inclavare.kbs.audit")


def rfc3339(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


class AuditLog:
    def __init__(self, replica: str, path: str | None = None) -> None:
        self.replica = replica
        self.path = path
        self._fd: int | None = None
        if path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def record(self, at: float, event: str, outcome: str, **fields: object) -> AuditRecord:
        """A record stamped with this replica's name (not yet written anywhere)."""
        # fields are AuditRecord's optional members (subject, resource, ...): a wrong name fails in the constructor
        return AuditRecord(at=at, event=event, outcome=outcome, replica=self.replica, **fields)  # type: ignore[arg-type]  # see above

    def emit(self, record: AuditRecord, audit_id: int | None = None) -> None:
        """Mirror a committed record as one JSON line."""
        if audit_id is not None:
            record = replace(record, id=audit_id)
        doc = record.to_json()
        doc["time"] = rfc3339(record.at)
        del doc["at"]
        line = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        log.info("%s", line)
        if self._fd is not None:
            try:
                os.write(self._fd, (line + "\n").encode())
            except OSError as exc:  # the database copy is authoritative; a full disk must not fail requests
                log.error("audit file %s: %s", self.path, exc.strerror)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
