"""Sealed resources in SQL: their table, the database's active KEK, and the checks before a broker serves.

Tables::

    kbs_secrets   (path PK, version, kek_id, dek, ciphertext, updated_at)  one sealed row per resource
    kbs_keks      (id PK, active, since)   every KEK id this database has used; exactly one active
    kbs_counters  (name PK, value)         "resource_version": each write of a resource takes the next value

A database written before encryption at rest also has ``kbs_resources
(path, value, updated_at)`` in plaintext: :meth:`SealedResources.migrate_batch`
moves its rows into ``kbs_secrets`` and :meth:`~SealedResources.drop_plaintext`
drops it (``inclavare kbs migrate``). A broker refuses to serve while it has
rows, and never reads it.

**The active KEK is the database's.** New data keys are wrapped under the
KEK ``kbs_keks`` marks active, whichever key a replica's config calls
current: replicas that already hold a new key keep writing under the old
one until ``inclavare kbs rotate-kek`` marks the new one active, and then
they all follow at once. A write reads the active id under a shared row
lock, so the switch waits for writes in flight (PostgreSQL; SQLite
serializes writes anyway). A read uses the KEK id of its row.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from ..atrest.envelope import Sealed, VersionMarks, rewrap, seal, unseal
from ..atrest.kek import Kek, Keyring
from ..errors import ConfigError, KbsError, StorageUnavailable
from .dialect import Cursor, Dialect, SqlBase
from .interface import AuditRecord, KeyState

LEGACY = "kbs_resources"


def schema(d: Dialect) -> list[tuple[str, str]]:
    return [
        (
            "kbs_secrets",
            f"""CREATE TABLE kbs_secrets (
            path TEXT PRIMARY KEY, version BIGINT NOT NULL, kek_id TEXT NOT NULL, dek {d.blob} NOT NULL,
            ciphertext {d.blob} NOT NULL, updated_at {d.real} NOT NULL)""",
        ),
        ("kbs_secrets_kek", "CREATE INDEX kbs_secrets_kek ON kbs_secrets (kek_id)"),
        ("kbs_keks", f"CREATE TABLE kbs_keks (id TEXT PRIMARY KEY, active INTEGER NOT NULL, since {d.real} NOT NULL)"),
        ("kbs_keks_one_active", "CREATE UNIQUE INDEX kbs_keks_one_active ON kbs_keks (active) WHERE active = 1"),
        ("kbs_counters", "CREATE TABLE kbs_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)"),
    ]


def check_keys(keyring: Keyring, state: KeyState, file: str = "kbs.toml", *, serving: bool = True) -> None:
    """Refuse (one located line) a keyring that cannot read every row, or, to serve, a database with plaintext."""
    if serving and state.plaintext:
        raise ConfigError(
            "storage",
            f"{state.plaintext} resource(s) are stored in plaintext (written before encryption at rest): "
            f"run `inclavare kbs migrate --config {file}` first",
            file,
        )
    if state.active is not None and keyring.get(state.active) is None:
        raise ConfigError(
            "storage.kek",
            f"wrong key: this database's key-encryption key is {state.active}, not a configured one "
            f"({keyring.describe()})",
            file,
        )
    for kid, count in sorted(state.wrapped.items()):
        if keyring.get(kid) is None:
            raise ConfigError(
                "storage.kek.previous",
                f"{count} resource(s) are wrapped under KEK {kid}, which is not configured: keep it here until "
                "`inclavare kbs rotate-kek` has finished",
                file,
            )


class SealedResources(SqlBase):
    """Resources as sealed rows; mixed into :class:`~.sql.SqlStorage`."""

    keyring: Keyring
    marks: VersionMarks
    rng: Callable[[int], bytes]

    def _init_sealed(self, keyring: Keyring, rng: Callable[[int], bytes] = os.urandom) -> None:
        self.keyring = keyring
        self.marks = VersionMarks()
        self.rng = rng

    # -- keys ------------------------------------------------------------------
    def key_state(self) -> KeyState:
        with self.transaction() as c:
            row = self._run(c, "SELECT id FROM kbs_keks WHERE active = 1").fetchone()
            wrapped = self._run(c, "SELECT kek_id, count(*) FROM kbs_secrets GROUP BY kek_id").fetchall()
            plaintext = 0
            if self._has_table(c, LEGACY):
                plaintext = int(self._run(c, f"SELECT count(*) FROM {LEGACY}").fetchone()[0])
        return KeyState(None if row is None else row[0], {r[0]: int(r[1]) for r in wrapped}, plaintext)

    def verify_keys(self, now: float, file: str = "kbs.toml", *, serving: bool = True) -> KeyState:
        """Before serving: a database without an active KEK takes the keyring's current one; then :func:`check_keys`."""
        with self.transaction() as c:
            if self._run(c, "SELECT id FROM kbs_keks WHERE active = 1").fetchone() is None:
                self._run(
                    c,
                    "INSERT INTO kbs_keks (id, active, since) VALUES (?, 1, ?) ON CONFLICT DO NOTHING",
                    (self.keyring.current.id, now),
                )
        state = self.key_state()
        check_keys(self.keyring, state, file, serving=serving)
        return state

    def reload_keys(self, keyring: Keyring, file: str = "kbs.toml") -> KeyState:
        """Swap in a new keyring if it reads every row (else ConfigError, and the old one stays)."""
        state = self.key_state()
        check_keys(keyring, state, file)
        self.keyring = keyring  # one reference assignment: requests see the old keyring or the new one
        return state

    def activate(self, kek: Kek, now: float) -> str | None:
        """Make ``kek`` the database's active KEK; the id it replaces (None if none)."""
        with self.transaction() as c:
            row = self._run(c, "SELECT id FROM kbs_keks WHERE active = 1").fetchone()
            self._run(c, "UPDATE kbs_keks SET active = 0 WHERE active = 1 AND id <> ?", (kek.id,))
            self._run(
                c,
                "INSERT INTO kbs_keks (id, active, since) VALUES (?, 1, ?) "
                "ON CONFLICT (id) DO UPDATE SET active = 1, since = excluded.since",
                (kek.id, now),
            )
        return None if row is None else row[0]

    def _active_kek(self, c: Cursor) -> Kek:
        for _ in range(3):  # PostgreSQL: a SELECT that waited on a concurrent switch may see neither row; ask again
            row = self._run(c, f"SELECT id FROM kbs_keks WHERE active = 1 {self.dialect.share_row}").fetchone()
            if row is not None:
                break
        else:
            raise StorageUnavailable("kbs_keks: the database has no active key-encryption key")
        kek = self.keyring.get(row[0])
        if kek is None:
            raise StorageUnavailable(
                f"the database's active KEK is {row[0]}, which this replica does not hold "
                "(add it to storage.kek and reload: SIGHUP)"
            )
        return kek

    def _next_version(self, c: Cursor) -> int:
        sql = (
            "INSERT INTO kbs_counters (name, value) VALUES ('resource_version', 1) "
            "ON CONFLICT (name) DO UPDATE SET value = kbs_counters.value + 1 RETURNING value"
        )
        return int(self._run(c, sql).fetchone()[0])

    # -- resources -----------------------------------------------------------
    def put_resource(self, path: str, value: bytes, now: float, audit: AuditRecord) -> None:
        floor = self.marks.floor(path)
        with self.transaction() as c:
            kek, version = self._active_kek(c), self._next_version(c)
            self.marks.seen(path, version, floor)  # the counter went backwards: refuse before writing
            s = seal(kek, path, version, value, self.rng)
            self._run(
                c,
                "INSERT INTO kbs_secrets (path, version, kek_id, dek, ciphertext, updated_at) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT (path) DO UPDATE SET version = excluded.version, kek_id = excluded.kek_id, "
                "dek = excluded.dek, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                (path, version, s.kek_id, s.dek, s.ciphertext, now),
            )
            self._audit(c, audit)

    def delete_resource(self, path: str, audit: AuditRecord) -> bool:
        with self.transaction() as c:
            row = self._run(c, "DELETE FROM kbs_secrets WHERE path = ? RETURNING version", (path,)).fetchone()
            self._audit(c, audit)
        if row is not None:
            self.marks.deleted(path, int(row[0]))
        return row is not None

    def list_resources(self, prefix: str = "") -> list[str]:
        with self.transaction() as c:
            rows = self._run(c, "SELECT path FROM kbs_secrets ORDER BY path").fetchall()
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def _unsealed(self, c: Cursor, path: str) -> bytes | None:
        """The value of ``path`` (inside the caller's transaction), None if absent; KbsError if it fails a check."""
        floor = self.marks.floor(path)
        row = self._run(
            c, "SELECT version, kek_id, dek, ciphertext FROM kbs_secrets WHERE path = ?", (path,)
        ).fetchone()
        if row is None:
            return None
        version = int(row[0])
        value = unseal(self.keyring, path, version, Sealed(row[1], bytes(row[2]), bytes(row[3])))
        self.marks.seen(path, version, floor)
        return value

    # -- maintenance (inclavare kbs migrate / rotate-kek) ------------------------
    def migrate_batch(self, limit: int, record: AuditRecord) -> int:
        """Seal up to ``limit`` plaintext rows, each moved in the same transaction; the number moved."""
        with self.transaction() as c:
            if not self._has_table(c, LEGACY):
                return 0
            lock = self.dialect.lock_row
            rows = self._run(c, f"SELECT path, value FROM {LEGACY} ORDER BY path LIMIT ? {lock}", (limit,)).fetchall()
            kek = self._active_kek(c) if rows else None
            for path, value in rows:
                assert kek is not None
                version = self._next_version(c)
                s = seal(kek, path, version, bytes(value), self.rng)
                self._run(
                    c,
                    "INSERT INTO kbs_secrets (path, version, kek_id, dek, ciphertext, updated_at) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT (path) DO NOTHING",  # a sealed row is newer: keep it
                    (path, version, s.kek_id, s.dek, s.ciphertext, record.at),
                )
                self._run(c, f"DELETE FROM {LEGACY} WHERE path = ?", (path,))
                detail = f"sealed under KEK {kek.id}, version {version}"
                self._audit(c, replace(record, resource=path, detail=detail))
        return len(rows)

    def drop_plaintext(self) -> bool:
        """Drop the emptied plaintext table (so no dump shows it); False while it still has rows."""
        with self.transaction() as c:
            if not self._has_table(c, LEGACY):
                return True
            if int(self._run(c, f"SELECT count(*) FROM {LEGACY}").fetchone()[0]):
                return False
            self._run(c, f"DROP TABLE {LEGACY}")
        return True

    def rewrap_batch(self, to: Kek, after: str, limit: int, record: AuditRecord) -> tuple[int, str, list[str]]:
        """Re-wrap under ``to`` up to ``limit`` data keys of paths after ``after``: (done, last path, failures)."""
        done, last, failures = 0, after, []
        with self.transaction() as c:
            rows = self._run(
                c,
                "SELECT path, version, kek_id, dek FROM kbs_secrets WHERE kek_id <> ? AND path > ? "
                f"ORDER BY path LIMIT ? {self.dialect.lock_row}",
                (to.id, after, limit),
            ).fetchall()
            for path, version, kid, dek in rows:
                last = path
                try:
                    s = rewrap(self.keyring, path, int(version), Sealed(kid, bytes(dek), b""), to, self.rng)
                except KbsError as exc:  # one bad row must not stop the rotation; it is reported
                    failures.append(str(exc))
                    continue
                self._run(c, "UPDATE kbs_secrets SET kek_id = ?, dek = ? WHERE path = ?", (s.kek_id, s.dek, path))
                self._audit(c, replace(record, resource=path, detail=f"data key re-wrapped from KEK {kid} to {to.id}"))
                done += 1
        return done, last, failures
