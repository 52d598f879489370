"""SQLite storage: the embedded default for a single broker.

One connection, serialized by a lock; every operation is a ``BEGIN
IMMEDIATE`` transaction, so a broker killed mid-request leaves either the
whole operation or none of it (SQLite's rollback journal / WAL). WAL mode
lets a second process (``inclavare kbs-client`` on the same host, tests)
read while the broker writes. ``path = ":memory:"`` is a private database.
Resources are sealed (:mod:`.sealed`) before they reach the file; after a
migration from plaintext, :meth:`SqliteStorage.compact` rewrites the file
so no freed page still holds a plaintext value.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..atrest.kek import Keyring
from ..errors import StorageUnavailable
from .dialect import Cursor, Dialect
from .sql import SqlStorage, schema

DIALECT = Dialect(
    name="sqlite",
    blob="BLOB",
    real="REAL",
    serial_pk="INTEGER PRIMARY KEY AUTOINCREMENT",
    lock_row="",
    share_row="",
    skip_locked="",
    greatest="MAX",
    unlogged="",
    exists="SELECT count(*) FROM sqlite_master WHERE name = ?",
)


class SqliteStorage(SqlStorage):
    dialect = DIALECT

    def __init__(self, path: str, keyring: Keyring, rng: Callable[[int], bytes] = os.urandom) -> None:
        self._init_sealed(keyring, rng)
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        try:
            if path != ":memory:":  # resources are stored here: 0600 from the first byte, not chmod'ed later
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
                os.chmod(path, 0o600)  # an existing file made by an older version
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
            if path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        except (sqlite3.Error, OSError) as exc:
            raise StorageUnavailable(f"sqlite {path}: {exc}") from None
        self._lock = threading.Lock()
        with self.transaction() as c:
            self._create(c, schema(DIALECT))

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self._lock:
            cursor = self._db.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"sqlite: {exc}") from None
            try:
                yield cursor
            except BaseException:
                self._db.rollback()
                raise
            try:
                self._db.commit()
            except sqlite3.Error as exc:
                self._db.rollback()
                raise StorageUnavailable(f"sqlite: commit failed: {exc}") from None

    def compact(self) -> None:
        """Rewrite the file without free pages and empty the WAL: a deleted value's bytes leave the disk file."""
        with self._lock:
            try:
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"sqlite: compact: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
