"""SQLite storage: the embedded default for one broker (one or several worker processes on one host).

One connection per process, serialized by a lock. Every write is a ``BEGIN
IMMEDIATE`` transaction, so a broker killed mid-request leaves either the
whole operation or none of it; reads are deferred transactions, which in
WAL mode neither wait for nor block a writer (https://sqlite.org/wal.html,
"Concurrency"). WAL mode also lets the workers of ``kbs serve --workers``
and a second process (``inclavare kbs-client`` on the same host, tests)
share the file. ``path = ":memory:"`` is a private database.

**Durability, with group commit.** A write is durable once the WAL frames
holding its commit are on disk. ``synchronous=FULL`` would fsync the WAL
inside every COMMIT, while the database's one write lock is held, so
concurrent requests queue behind each other's fsyncs (~2 ms each here).
Instead the connection commits with ``synchronous=NORMAL`` (in WAL mode
that skips only the per-commit WAL sync; checkpoints still sync the WAL
before and the database after: https://sqlite.org/pragma.html#pragma_synchronous)
and the writer then waits in :class:`WalSync` until an fsync of the WAL
*started after its commit* has returned. One fsync covers every commit
written before it, by any thread or worker, so concurrent requests share
it. A storage call returns only after that, so a response still never
carries a release, a token or a refusal whose record could vanish in a
power failure. The one exception is :meth:`~.dialect.SqlBase.unsynced`
(a new session: losing it loses an unanswered challenge, nothing else).
A caller that sets :data:`DEFERRED_SYNC` gets that wait handed back
instead, and must run it before it answers: the server runs quick calls on
its event loop and only the wait in a thread (server/app.py).

**Writers queue in the kernel.** SQLite has one write lock per database,
and a connection that finds it taken retries on a timer: 1, 2, 5, 10 ms
and on (sqlite3.c, ``sqliteDefaultBusyCallback``), blocking its thread,
which for the RCAR calls is the worker's event loop (server/app.py). With
``kbs serve --workers`` the workers' writes, ~50 µs each, meet often: on a
bench run (bench/kbs.py --workers 2 --seconds 6, both tables) their loops
waited 3.1-3.3 s in BEGIN, ~1,800 times over 0.5 ms; with the queue,
1.0-1.2 s, ~300 times (what is left is the other worker's transaction
itself, its process descheduled meanwhile included). So a write
transaction first takes an exclusive ``flock(2)`` on
``<database>-writers``: a writer waiting behind another process's wakes
the moment it is released. SQLite's own locks still guard the file,
against any process that does not take this one (the busy timeout is their
arbiter, as before); reads (WAL snapshots) queue for nothing.

Resources are sealed (:mod:`.sealed`) before they reach the file; after a
migration from plaintext, :meth:`SqliteStorage.compact` rewrites the file
so no freed page still holds a plaintext value.
"""

from __future__ import annotations

import fcntl
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

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
# A list here collects the durability waits of the commits made in this context, for the caller to run.
DEFERRED_SYNC: ContextVar[list[Callable[[], None]] | None] = ContextVar("kbs_deferred_sync", default=None)


class WalSync:
    """Group commit: fsync the WAL for every commit that asks, one fsync for all who wait together."""

    def __init__(self, path: str) -> None:
        self.wal = path + "-wal"  # https://sqlite.org/walformat.html: "<database>-wal" beside the database
        self.db = path
        self.fsyncs = 0
        self._cond = threading.Condition()
        self._written = 0  # commits made, numbered in commit order
        self._synced = 0  # every commit up to this number is on disk
        self._busy = False
        self._failed = ""  # why an fsync failed: sticky (wait's docstring)

    def committed(self) -> int:
        """Number the commit that just returned (call under the connection's lock, so numbers follow commits)."""
        with self._cond:
            self._written += 1
            return self._written

    def wait(self, commit: int) -> None:
        """Return once commit number ``commit`` is on disk; StorageUnavailable if the fsync fails.

        A failed fsync is final (fsync(2): Linux reports a writeback error once and may
        mark the pages clean, so a second fsync can succeed with the data lost): every
        later wait fails too, and the broker must restart to recover from the WAL."""
        with self._cond:
            while self._synced < commit:
                if self._failed:
                    raise StorageUnavailable(f"sqlite: an earlier fsync of the WAL failed: {self._failed}")
                if not self._busy:  # lead: one fsync for everything committed so far
                    self._busy, target = True, self._written
                    break
                self._cond.wait()
            else:
                return
        try:
            self._fsync()
        except OSError as exc:
            with self._cond:
                self._failed = exc.strerror or str(exc)
                self._busy = False
                self._cond.notify_all()
            raise StorageUnavailable(f"sqlite: fsync of the WAL failed: {exc.strerror}") from None
        with self._cond:
            self._synced = max(self._synced, target)
            self._busy = False
            self._cond.notify_all()

    def _fsync(self) -> None:
        try:
            fd = os.open(self.wal, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # checkpointed and removed: the frames are in the (synced) database file
            fd = os.open(self.db, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fdatasync(fd)
            self.fsyncs += 1
        finally:
            os.close(fd)


class SqliteStorage(SqlStorage):
    dialect = DIALECT

    def __init__(self, path: str, keyring: Keyring, rng: Callable[[int], bytes] = os.urandom) -> None:
        self._init_sealed(keyring, rng)
        self._sync: WalSync | None = None
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        try:
            if path != ":memory:":  # resources are stored here: 0600 from the first byte, not chmod'ed later
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
                os.chmod(path, 0o600)  # an existing file made by an older version
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
            # Group commit relies on WAL (NORMAL there skips only the per-commit sync); a file system that
            # refuses WAL keeps its rollback journal with synchronous=FULL, each commit synced inside.
            if path != ":memory:" and self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                self._sync = WalSync(os.path.abspath(path))
            # NORMAL: the WAL is synced by WalSync after the commit, outside the write lock (module docstring).
            self._db.execute("PRAGMA synchronous=NORMAL" if self._sync else "PRAGMA synchronous=FULL")
        except (sqlite3.Error, OSError) as exc:
            raise StorageUnavailable(f"sqlite {path}: {exc}") from None
        self._lock = threading.Lock()
        self._writers: int | None = None  # the writers' queue (module docstring), beside the database
        if path != ":memory:":
            try:
                self._writers = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._db.close()
                raise StorageUnavailable(f"sqlite {path}-writers: {exc.strerror}") from None
        with self.transaction() as c:
            self._create(c, schema(DIALECT))

    def transaction(self) -> AbstractContextManager[Cursor]:
        return self._transaction("BEGIN IMMEDIATE", durable=True)

    def reading(self) -> AbstractContextManager[Cursor]:
        return self._transaction("BEGIN DEFERRED", durable=False)

    def unsynced(self) -> AbstractContextManager[Cursor]:
        return self._transaction("BEGIN IMMEDIATE", durable=False)

    @contextmanager
    def _transaction(self, begin: str, durable: bool) -> Iterator[Cursor]:
        commit = 0
        with self._lock, self._queued(begin != "BEGIN DEFERRED"):
            cursor = self._db.cursor()
            try:
                cursor.execute(begin)
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"sqlite: {exc}") from None
            changes = self._db.total_changes
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
            if durable and self._sync is not None and self._db.total_changes != changes:
                commit = self._sync.committed()
        if commit and self._sync is not None:  # outside the lock: the next writer commits while this one waits
            wait = functools.partial(self._sync.wait, commit)
            pending = DEFERRED_SYNC.get()
            if pending is None:
                wait()
            else:
                pending.append(wait)

    @contextmanager
    def _queued(self, writer: bool) -> Iterator[None]:
        """A write transaction waits its turn in the kernel (flock), behind the other processes' writers."""
        if not writer or self._writers is None:
            yield
            return
        queued = _take_turn(self._writers)
        try:
            yield
        finally:
            if queued:
                fcntl.flock(self._writers, fcntl.LOCK_UN)

    @property
    def defers_sync(self) -> bool:
        """Whether a durable commit can hand its wait for the disk back (:data:`DEFERRED_SYNC`): WAL mode."""
        return self._sync is not None

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
            if self._writers is not None:
                os.close(self._writers)
                self._writers = None


_TURN_TIMEOUT = 10.0  # the connection's busy timeout: past it, SQLite's own lock decides


def _take_turn(fd: int) -> bool:
    """flock(LOCK_EX) on the writers' queue, waiting at most the busy timeout; False if it did not
    come. A writer whose process is stopped or hung inside its transaction must not hang every
    other worker's event loop for good: after the timeout the write goes to SQLite's lock, whose
    busy handler ends in "database is locked" (a 503), as before the queue. The wait polls from
    50 µs up to 1 ms, still far below SQLite's 1-2-5-10 ms sleeps."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    deadline, pause = time.monotonic() + _TURN_TIMEOUT, 50e-6
    while time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 1e-3)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue
    return False
