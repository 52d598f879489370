"""Collateral the admin API adds: trusted software-TEE host keys and SGX/TDX/SNP endorsements, in SQL.

Table::

    kbs_collateral (id PK, kind, summary, data, added_at)   one item per row (kbs/service/collateral.py)

and ``kbs_counters["collateral"]``, the *generation*: every add or removal
bumps it in the same transaction. A replica compares its cached generation
with the database's (one indexed read) and reloads the rows only when it
moved, so every replica on a shared database picks a change up without a
restart and without re-reading the table on every attestation.

Collateral is public (public keys, signed Intel/AMD documents,
certificates): it is stored as given, not sealed. A database *writer* who
adds a host key can have forged software evidence accepted — as one who
edits policies can (docs/kbs.md, "Encryption at rest").
"""

from __future__ import annotations

from dataclasses import dataclass

from .dialect import Cursor, Dialect, SqlBase
from .interface import AuditRecord

COUNTER = "collateral"


def schema(d: Dialect) -> list[tuple[str, str]]:
    return [
        (
            "kbs_collateral",
            f"""CREATE TABLE kbs_collateral (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, summary TEXT NOT NULL, data {d.blob} NOT NULL,
            added_at {d.real} NOT NULL)""",
        )
    ]


@dataclass(frozen=True)
class CollateralItem:
    id: str  # a host key's key id (SHA-256 of the raw key), else SHA-256 of the bytes, hex
    kind: str  # host-key | tcb-info | qe-identity | crl | certificate | bundle
    summary: str
    data: bytes
    added_at: float

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "summary": self.summary, "added": self.added_at}


class StoredCollateral(SqlBase):
    """``kbs_collateral`` and its generation; mixed into :class:`~.sql.SqlStorage`."""

    def put_collateral(self, item: CollateralItem, audit: AuditRecord) -> bool:
        """Store ``item``; False (and no new generation) if an item with its id is already there."""
        with self.transaction() as c:
            row = self._run(
                c,
                "INSERT INTO kbs_collateral (id, kind, summary, data, added_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (item.id, item.kind, item.summary, item.data, item.added_at),
            ).fetchone()
            if row is not None:
                self._bump(c)
            self._audit(c, audit)
        return row is not None

    def delete_collateral(self, item_id: str, audit: AuditRecord) -> bool:
        with self.transaction() as c:
            gone = self._run(c, "DELETE FROM kbs_collateral WHERE id = ?", (item_id,)).rowcount == 1
            if gone:
                self._bump(c)
            self._audit(c, audit)
        return gone

    def collateral_generation(self) -> int:
        with self.transaction() as c:
            return self._generation(c)

    def collateral(self) -> tuple[int, list[CollateralItem]]:
        """(generation, every item) read in one transaction, so the pair is consistent."""
        with self.transaction() as c:
            generation = self._generation(c)
            rows = self._run(
                c, "SELECT id, kind, summary, data, added_at FROM kbs_collateral ORDER BY added_at, id"
            ).fetchall()
        return generation, [CollateralItem(r[0], r[1], r[2], bytes(r[3]), float(r[4])) for r in rows]

    def _generation(self, c: Cursor) -> int:
        row = self._run(c, "SELECT value FROM kbs_counters WHERE name = ?", (COUNTER,)).fetchone()
        return 0 if row is None else int(row[0])

    def _bump(self, c: Cursor) -> None:
        self._run(
            c,
            "INSERT INTO kbs_counters (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = kbs_counters.value + 1",
            (COUNTER,),
        )
