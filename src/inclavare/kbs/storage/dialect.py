"""What every SQL part of the storage stands on: the DB-API cursor, the dialect, one transaction per call.

Backends (:mod:`.sqlite`, :mod:`.postgres`) supply a :class:`Dialect` and a
``transaction()`` context manager yielding a DB-API cursor. Statements are
written once, in the SQL SQLite 3.35+ and PostgreSQL 9.5+ share (``ON
CONFLICT``, ``RETURNING``), with ``?`` placeholders that PostgreSQL's
dialect rewrites; the few words that differ are the dialect's fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from .interface import AuditRecord


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[object] = ...) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True)
class Dialect:
    name: str
    blob: str
    real: str
    serial_pk: str
    lock_row: str  # appended to a SELECT that must lock the row until commit ("" where the DB is locked)
    share_row: str  # appended to a SELECT whose row must not change until commit
    skip_locked: str  # appended to a SELECT whose rows are taken only if no one else holds them
    greatest: str  # the two-argument maximum: MAX in SQLite, GREATEST in PostgreSQL
    unlogged: str  # "UNLOGGED " where a table may skip the write-ahead log (state that may be lost in a crash)
    exists: str  # a query counting tables and indexes named ? (in the search path)

    def sql(self, text: str) -> str:
        return text if self.name == "sqlite" else text.replace("?", "%s")


AUDIT_COLUMNS = "at, event, outcome, subject, resource, request_key, tee, source, replica, detail, deliveries"


class SqlBase:
    """A transaction per call; subclasses provide ``dialect`` and ``transaction()``."""

    dialect: Dialect

    def transaction(self) -> AbstractContextManager[Cursor]:
        raise TypeError(f"{type(self).__name__} must define transaction()")

    def reading(self) -> AbstractContextManager[Cursor]:
        """A transaction that only reads; a backend may run it without taking the write lock."""
        return self.transaction()

    def unsynced(self) -> AbstractContextManager[Cursor]:
        """A write whose loss in a power failure breaks no guarantee (a new, unanswered challenge):
        a backend may answer before it reaches the disk. Everything that burns a nonce or records
        a release or a refusal uses :meth:`transaction`."""
        return self.transaction()

    def _run(self, c: Cursor, sql: str, params: Sequence[object] = ()) -> Cursor:
        c.execute(self.dialect.sql(sql), tuple(params))
        return c

    def _audit(self, c: Cursor, a: AuditRecord, conflict: str = "") -> int | None:
        values = (
            a.at,
            a.event,
            a.outcome,
            a.subject,
            a.resource,
            a.request_key,
            a.tee,
            a.source,
            a.replica,
            a.detail,
            1 if a.event == "release" else 0,
        )
        sql = f"INSERT INTO kbs_audit ({AUDIT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) {conflict} RETURNING id"
        row = self._run(c, sql, values).fetchone()
        return int(row[0]) if row is not None else None

    def _has_table(self, c: Cursor, name: str) -> bool:
        return int(self._run(c, self.dialect.exists, (name,)).fetchone()[0]) > 0

    def _create(self, c: Cursor, schema: Sequence[tuple[str, str]]) -> None:
        """Create what is missing, and only that: even ``CREATE INDEX IF NOT EXISTS`` of an index that
        exists takes a SHARE lock on its table in PostgreSQL, and a replica starting (or ``rotate-kek``)
        would then wait on writes in flight while they wait on it: a deadlock."""
        for name, statement in schema:
            if not self._has_table(c, name):
                c.execute(statement)
