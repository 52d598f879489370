"""The caches: metadata in SQLite, data on disk under the root, bounded by size and age.

Layout (root is 0700, root's)::

    <root>/epm.db             the metadata (db_path may put it elsewhere)
    <root>/data/<key>         an entry's data, a file or a tree; <key> = SHA-256 of type, subType, ID
    <root>/tmp/               copies in progress (emptied at start)

An entry is (type, subType, ID) with its parent, size, creation and last
use. Saving copies the data into tmp/, renames it into data/, then records
it; deleting forgets it, then removes the data. So a crash leaves at worst
data without a record or a record without data, and :meth:`Store.open`
removes both: after a restart every entry listed has its data.

Bounds: an entry older than ``max_age`` (since it was saved) is gone — a
lookup treats it as missing and removes it; past ``max_size`` bytes in all,
the least recently used entries go until the total fits. Removing an entry
removes its descendants (cache1 under cache0, cache2 under cache1), as the
original's nested directories did.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from . import files
from .errors import FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, CacheError

Key = tuple[str, str, str]  # (type, subType, ID)
_MAX_ID = 256
_SCHEMA = """
CREATE TABLE IF NOT EXISTS caches (
    type TEXT NOT NULL, subtype TEXT NOT NULL, id TEXT NOT NULL,
    parent_type TEXT, parent_subtype TEXT, parent_id TEXT,
    name TEXT NOT NULL, size INTEGER NOT NULL, created INTEGER NOT NULL, used REAL NOT NULL,
    PRIMARY KEY (type, subtype, id)
);
CREATE INDEX IF NOT EXISTS caches_parent ON caches (parent_type, parent_subtype, parent_id);
"""
_COLUMNS = "type, subtype, id, parent_type, parent_subtype, parent_id, name, size, created, used"


@dataclasses.dataclass(frozen=True)
class Entry:
    key: Key
    parent: Key | None
    path: str  # the data, absolute
    size: int
    created: int  # seconds since the epoch


class Store:
    def __init__(self, root: str, database: str, *, timeout: float = 10, max_size: int = 1 << 30,
                 max_age: int = 7 * 86400, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.root = root
        self.database = database
        self.timeout = timeout
        self.max_size = max_size
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._seq = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> Store:
        for d in (self.root, self._dir("data"), self._dir("tmp")):
            os.makedirs(d, 0o700, exist_ok=True)
            os.chmod(d, 0o700)  # cached enclaves are root's alone, whatever the umask made
        files.remove(self._dir("tmp"))
        os.mkdir(self._dir("tmp"), 0o700)
        db = sqlite3.connect(self.database, timeout=self.timeout, check_same_thread=False, isolation_level=None)
        os.chmod(self.database, 0o600)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        self._db = db
        with self._lock:
            self._reconcile()
            self._evict(keep=None)
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def healthy(self) -> bool:
        with self._lock:
            try:
                self._conn().execute("SELECT 1").fetchone()
            except (sqlite3.Error, CacheError):
                return False
            return True

    # -- the operations ----------------------------------------------------------------------

    def get(self, key: Key) -> Entry | None:
        with self._lock:
            return self._live(key)

    def save(self, key: Key, parent: Key | None, source: str) -> Entry:
        _check_key(key, "cache")
        if parent is not None:
            _check_key(parent, "cache.parent")
        with self._lock:
            self._seq += 1
            tmp = os.path.join(self._dir("tmp"), f"{os.getpid()}-{self._seq}")
        try:
            size = files.copy_in(source, tmp, self.max_size)
            with self._lock:
                if parent is not None and self._live(parent) is None:
                    raise CacheError(FAILED_PRECONDITION, "cache.parent", f"{_show(parent)} is not cached")
                name = _name(key)
                old = self._path(name) + f".old-{self._seq}"
                if os.path.lexists(self._path(name)):
                    os.rename(self._path(name), old)
                os.rename(tmp, self._path(name))
                files.remove(old)
                now = self.clock()
                p = parent or (None, None, None)
                self._conn().execute(
                    f"INSERT OR REPLACE INTO caches ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (*key, *p, name, size, int(now), now),
                )
                self._evict(keep=key)
                entry = self._live(key)
            if entry is None:
                raise CacheError(RESOURCE_EXHAUSTED, _show(key), "does not fit in the cache's max_size")
            return entry
        finally:
            files.remove(tmp)

    def load(self, key: Key, target: str) -> Entry:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                raise CacheError(NOT_FOUND, _show(key), "not cached")
            self._conn().execute("UPDATE caches SET used=? WHERE type=? AND subtype=? AND id=?", (self.clock(), *key))
            # Copied under the lock: eviction cannot remove the data half-way through.
            files.copy_out(entry.path, target)
            return entry

    def delete(self, key: Key) -> None:
        with self._lock:
            if self._live(key) is None:
                raise CacheError(NOT_FOUND, _show(key), "not cached")
            self._remove(key)

    def list(self, typ: str, subtype: str, after: str, limit: int) -> builtins.list[Entry]:
        """Entries of (typ, subtype) with IDs after `after`, in ID order, at most `limit`."""
        with self._lock:
            self._expire()
            rows = (
                self._conn()
                .execute(
                    f"SELECT {_COLUMNS} FROM caches WHERE type=? AND subtype=? AND id>? ORDER BY id LIMIT ?",
                    (typ, subtype, after, limit),
                )
                .fetchall()
            )
            return [self._entry(r) for r in rows]

    def children(self, typ: str, subtype: str, parent: dict[str, str], limit: int) -> builtins.list[Entry]:
        """Entries of (typ, subtype) whose parent matches every given field (type/subType/ID)."""
        where, args = ["type=?", "subtype=?"], [typ, subtype]
        for field, column in (("type", "parent_type"), ("subType", "parent_subtype"), ("ID", "parent_id")):
            if field in parent:
                where.append(f"{column}=?")
                args.append(parent[field])
        with self._lock:
            self._expire()
            sql = f"SELECT {_COLUMNS} FROM caches WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
            return [self._entry(r) for r in self._conn().execute(sql, (*args, limit)).fetchall()]

    def total(self) -> int:
        with self._lock:
            return int(self._conn().execute("SELECT COALESCE(SUM(size), 0) FROM caches").fetchone()[0])

    # -- under the lock ----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise CacheError(FAILED_PRECONDITION, self.database, "the store is closed")
        return self._db

    def _live(self, key: Key) -> Entry | None:
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM caches WHERE type=? AND subtype=? AND id=?", key).fetchone()
        if row is None:
            return None
        if row[8] < self.clock() - self.max_age:
            self._remove(key)
            return None
        return self._entry(row)

    def _entry(self, row: tuple[Any, ...]) -> Entry:
        parent = (row[3], row[4], row[5]) if row[3] is not None else None
        return Entry((row[0], row[1], row[2]), parent, self._path(row[6]), int(row[7]), int(row[8]))

    def _remove(self, key: Key) -> None:
        """Forget `key` and its descendants, then remove their data."""
        rows = (
            self._conn()
            .execute(
                """WITH RECURSIVE doomed(type, subtype, id, name) AS (
                   SELECT type, subtype, id, name FROM caches WHERE type=? AND subtype=? AND id=?
                   UNION SELECT c.type, c.subtype, c.id, c.name FROM caches c JOIN doomed d
                       ON c.parent_type=d.type AND c.parent_subtype=d.subtype AND c.parent_id=d.id)
               SELECT type, subtype, id, name FROM doomed""",
                key,
            )
            .fetchall()
        )
        db = self._conn()
        db.execute("BEGIN")
        db.executemany("DELETE FROM caches WHERE type=? AND subtype=? AND id=?", [r[:3] for r in rows])
        db.execute("COMMIT")
        for row in rows:
            files.remove(self._path(row[3]))

    def _expire(self) -> None:
        old = (
            self._conn()
            .execute("SELECT type, subtype, id FROM caches WHERE created < ?", (self.clock() - self.max_age,))
            .fetchall()
        )
        for row in old:
            self._remove((row[0], row[1], row[2]))

    def _evict(self, keep: Key | None) -> None:
        """Expire, then drop the least recently used entries until the total fits (`keep` last)."""
        self._expire()
        db = self._conn()
        while True:
            total = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM caches").fetchone()[0])
            if total <= self.max_size:
                return
            row = db.execute(
                "SELECT type, subtype, id FROM caches WHERE NOT (type=? AND subtype=? AND id=?) ORDER BY used LIMIT 1",
                keep or ("", "", ""),
            ).fetchone()
            if row is None:  # only `keep` is left, and it alone is too large
                if keep is not None:
                    self._remove(keep)
                return
            self._remove((row[0], row[1], row[2]))

    def _reconcile(self) -> None:
        """After a crash: no record without its data, no data without its record."""
        db = self._conn()
        names = set()
        for row in db.execute("SELECT type, subtype, id, name FROM caches").fetchall():
            if os.path.lexists(self._path(row[3])):
                names.add(row[3])
            else:
                self._remove((row[0], row[1], row[2]))
        for name in os.listdir(self._dir("data")):
            if name not in names:
                files.remove(self._path(name))

    def _dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _path(self, name: str) -> str:
        return os.path.join(self.root, "data", name)


def _name(key: Key) -> str:
    return hashlib.sha256("\0".join(key).encode()).hexdigest()


def _show(key: Key) -> str:
    typ, subtype, ident = key
    return f"{typ}/{subtype}/{ident}" if subtype else f"{typ}/{ident}"


def _check_key(key: Key, field: str) -> None:
    ident = key[2]
    if not ident or len(ident) > _MAX_ID or not ident.isprintable():
        raise CacheError(INVALID_ARGUMENT, f"{field}.ID", f"must be 1 to {_MAX_ID} printable characters")
    if len(key[1]) > _MAX_ID or not key[1].isprintable():
        raise CacheError(INVALID_ARGUMENT, f"{field}.subType", f"must be at most {_MAX_ID} printable characters")
