"""The SQL both backends share: the schema and one transaction per storage operation.

Backends (:mod:`.sqlite`, :mod:`.postgres`) supply a dialect and a
``transaction()`` (:mod:`.dialect`); everything else is written once:
sessions, releases, the audit log, policies and reference values here,
sealed resources and their keys in :mod:`.sealed`, shared rate-limit state
in :mod:`.rates`, admin-added collateral in :mod:`.collateral`. Timestamps are seconds since the epoch (floats).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from ..errors import InvalidRequest, TokenNotFound
from ..protocol.session import Session, SessionState
from . import collateral, rates, sealed
from .collateral import StoredCollateral
from .dialect import AUDIT_COLUMNS, Cursor, Dialect
from .interface import AuditRecord, ReferenceValue, Release
from .rates import SharedRates
from .sealed import SealedResources


def schema(d: Dialect) -> list[tuple[str, str]]:
    """(name, statement) for every table and index; :meth:`~.dialect.SqlBase._create` runs the missing ones."""
    return [
        (
            "kbs_sessions",
            f"""CREATE TABLE kbs_sessions (
            key TEXT PRIMARY KEY, state TEXT NOT NULL, tee TEXT NOT NULL, nonce TEXT NOT NULL,
            hash_algorithm TEXT NOT NULL, created_at {d.real} NOT NULL, expires_at {d.real} NOT NULL,
            tee_pubkey TEXT, claims TEXT, releases INTEGER NOT NULL DEFAULT 0)""",
        ),
        (
            "kbs_policies",
            f"""CREATE TABLE kbs_policies (
            kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, updated_at {d.real} NOT NULL,
            PRIMARY KEY (kind, name))""",
        ),
        (
            "kbs_reference_values",
            f"""CREATE TABLE kbs_reference_values (
            name TEXT NOT NULL, value TEXT NOT NULL, expires_at {d.real}, created_at {d.real} NOT NULL,
            PRIMARY KEY (name, value))""",
        ),
        (
            "kbs_audit",
            f"""CREATE TABLE kbs_audit (
            id {d.serial_pk}, at {d.real} NOT NULL, event TEXT NOT NULL, outcome TEXT NOT NULL,
            subject TEXT NOT NULL, resource TEXT, request_key TEXT, tee TEXT, source TEXT NOT NULL,
            replica TEXT NOT NULL, detail TEXT NOT NULL, deliveries INTEGER NOT NULL DEFAULT 0,
            UNIQUE (subject, request_key))""",
        ),
        *sealed.schema(d),
        *rates.schema(d),
        *collateral.schema(d),
    ]


_SESSION_COLUMNS = "key, state, tee, nonce, hash_algorithm, created_at, expires_at, tee_pubkey, claims"


class SqlStorage(SealedResources, SharedRates, StoredCollateral):
    """Storage over a DB-API connection; subclasses provide ``dialect`` and ``transaction()``.

    Resources are sealed under the keyring's KEKs (:mod:`.sealed`); a
    backend calls :meth:`_init_sealed` before its first transaction.
    """

    # -- sessions -----------------------------------------------------------
    def insert_session(self, session: Session) -> None:
        s = session
        with self.unsynced() as c:
            self._run(
                c,
                f"INSERT INTO kbs_sessions ({_SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (s.key, s.state.value, s.tee, s.nonce, s.hash_algorithm, s.created_at, s.expires_at, None, None),
            )

    def get_session(self, key: str) -> Session | None:
        with self.reading() as c:
            row = self._run(c, f"SELECT {_SESSION_COLUMNS} FROM kbs_sessions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return Session(
            key=row[0],
            state=SessionState(row[1]),
            tee=row[2],
            nonce=row[3],
            hash_algorithm=row[4],
            created_at=float(row[5]),
            expires_at=float(row[6]),
            tee_pubkey=json.loads(row[7]) if row[7] else None,
            claims=json.loads(row[8]) if row[8] else None,
        )

    def finish_attestation(self, session: Session, audit: AuditRecord) -> bool:
        pubkey = json.dumps(dict(session.tee_pubkey)) if session.tee_pubkey is not None else None
        claims = json.dumps(dict(session.claims)) if session.claims is not None else None
        with self.transaction() as c:
            # The conditional update is the state machine's guard: only one attempt per nonce wins.
            cur = self._run(
                c,
                "UPDATE kbs_sessions SET state = ?, tee_pubkey = ?, claims = ? WHERE key = ? AND state = ?",
                (session.state.value, pubkey, claims, session.key, SessionState.AUTHED.value),
            )
            won = cur.rowcount == 1
            self._audit(c, audit if won else _refused_replay(audit))
        return won

    def purge_sessions(self, now: float) -> int:
        with self.transaction() as c:
            return self._run(c, "DELETE FROM kbs_sessions WHERE expires_at < ?", (now,)).rowcount

    # -- releases and the audit log ------------------------------------------
    def release(self, path: str, *, session_key: str | None, now: float, audit: AuditRecord) -> Release | None:
        with self.transaction() as c:
            if session_key is not None:
                self._live_session(c, session_key, now)
            value = self._unsealed(c, path)
            if value is None:
                return None
            new_id = self._audit(c, audit, "ON CONFLICT (subject, request_key) DO NOTHING")
            if new_id is None:
                return Release(value, self._replay(c, audit, path), replayed=True)
            if session_key is not None:
                self._run(c, "UPDATE kbs_sessions SET releases = releases + 1 WHERE key = ?", (session_key,))
            return Release(value, new_id, replayed=False)

    def _live_session(self, c: Cursor, key: str, now: float) -> None:
        lock = self.dialect.lock_row
        row = self._run(c, f"SELECT state, expires_at FROM kbs_sessions WHERE key = ? {lock}", (key,)).fetchone()
        if row is None or row[0] != SessionState.ATTESTED.value or float(row[1]) <= now:
            raise TokenNotFound("session: no longer attested or live")

    def _replay(self, c: Cursor, audit: AuditRecord, path: str) -> int:
        row = self._run(
            c,
            "SELECT id, resource FROM kbs_audit WHERE subject = ? AND request_key = ?",
            (audit.subject, audit.request_key),
        ).fetchone()
        if row[1] != path:
            raise InvalidRequest("Idempotency-Key: already used for another resource")
        self._run(c, "UPDATE kbs_audit SET deliveries = deliveries + 1 WHERE id = ?", (row[0],))
        return int(row[0])

    def record(self, audit: AuditRecord) -> None:
        with self.transaction() as c:
            self._audit(c, audit)

    def audit_log(self, since_id: int = 0, limit: int = 100) -> list[AuditRecord]:
        with self.reading() as c:
            rows = self._run(
                c, f"SELECT id, {AUDIT_COLUMNS} FROM kbs_audit WHERE id > ? ORDER BY id LIMIT ?", (since_id, limit)
            ).fetchall()
        return [
            AuditRecord(
                id=int(r[0]),
                at=float(r[1]),
                event=r[2],
                outcome=r[3],
                subject=r[4],
                resource=r[5],
                request_key=r[6],
                tee=r[7],
                source=r[8],
                replica=r[9],
                detail=r[10],
                deliveries=int(r[11]),
            )
            for r in rows
        ]

    # -- policies ------------------------------------------------------------
    def put_policy(self, kind: str, name: str, body: str, now: float, audit: AuditRecord) -> None:
        with self.transaction() as c:
            self._run(
                c,
                "INSERT INTO kbs_policies (kind, name, body, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                (kind, name, body, now),
            )
            self._audit(c, audit)

    def delete_policy(self, kind: str, name: str, audit: AuditRecord) -> bool:
        with self.transaction() as c:
            gone = self._run(c, "DELETE FROM kbs_policies WHERE kind = ? AND name = ?", (kind, name)).rowcount == 1
            self._audit(c, audit)
        return gone

    def policies(self, kind: str) -> Mapping[str, str]:
        with self.reading() as c:
            rows = self._run(c, "SELECT name, body FROM kbs_policies WHERE kind = ?", (kind,)).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- reference values ------------------------------------------------------
    def put_reference_values(
        self, name: str, values: list[str], expires_at: float | None, now: float, audit: AuditRecord
    ) -> None:
        with self.transaction() as c:
            for value in values:
                self._run(
                    c,
                    "INSERT INTO kbs_reference_values (name, value, expires_at, created_at) VALUES (?,?,?,?) "
                    "ON CONFLICT (name, value) DO UPDATE SET expires_at = excluded.expires_at",
                    (name, value, expires_at, now),
                )
            self._audit(c, audit)

    def expire_reference_values(self, name: str, value: str | None, at: float, audit: AuditRecord) -> int:
        where, params = _name_value(name, value)
        with self.transaction() as c:
            count = self._run(
                c, f"UPDATE kbs_reference_values SET expires_at = ? WHERE {where}", (at, *params)
            ).rowcount
            self._audit(c, audit)
        return count

    def delete_reference_values(self, name: str, value: str | None, audit: AuditRecord) -> int:
        where, params = _name_value(name, value)
        with self.transaction() as c:
            count = self._run(c, f"DELETE FROM kbs_reference_values WHERE {where}", params).rowcount
            self._audit(c, audit)
        return count

    def reference_values(self, name: str | None = None) -> list[ReferenceValue]:
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        with self.reading() as c:
            rows = self._run(
                c,
                f"SELECT name, value, expires_at, created_at FROM kbs_reference_values {where} ORDER BY name, value",
                params,
            ).fetchall()
        return [ReferenceValue(r[0], r[1], None if r[2] is None else float(r[2]), float(r[3])) for r in rows]


def _name_value(name: str, value: str | None) -> tuple[str, tuple[str, ...]]:
    if value is None:
        return "name = ?", (name,)
    return "name = ? AND value = ?", (name, value)


def _refused_replay(audit: AuditRecord) -> AuditRecord:
    return replace(audit, outcome="failed", detail="session already used its nonce (replay)")
