"""PostgreSQL storage: shared state for several broker replicas behind a load balancer.

Each worker thread holds its own connection; each operation is one
transaction (READ COMMITTED). Races between replicas are settled by the
database: the session's AUTHED -> ATTESTED step is a conditional UPDATE,
a release locks the session row (``SELECT ... FOR UPDATE``) and inserts
its audit record under the UNIQUE (subject, request_key) constraint with
``ON CONFLICT DO NOTHING``. A replica killed mid-transaction loses its
connection and PostgreSQL rolls the transaction back: nothing half-done
remains, and the client's retry against another replica starts clean.

A broken connection becomes :class:`~inclavare.kbs.errors.StorageUnavailable`
(503, the client retries) and is replaced on the next operation. The DSN
may hold a password: it is never logged or put into an error message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from ..atrest.kek import Keyring
from ..errors import StorageUnavailable
from .dialect import Cursor, Dialect
from .sql import SqlStorage, schema

DIALECT = Dialect(
    name="postgres",
    blob="BYTEA",
    real="DOUBLE PRECISION",
    serial_pk="BIGSERIAL PRIMARY KEY",
    lock_row="FOR UPDATE",
    share_row="FOR SHARE",
    skip_locked="FOR UPDATE SKIP LOCKED",
    greatest="GREATEST",
    unlogged="UNLOGGED ",
    exists="SELECT count(*) FROM pg_catalog.pg_class WHERE relname = ? AND pg_catalog.pg_table_is_visible(oid)",
)
_SCHEMA_LOCK = 0x4B4253  # pg_advisory_xact_lock key: replicas starting together create the schema once


class PostgresStorage(SqlStorage):
    dialect = DIALECT

    def __init__(
        self, dsn: str, keyring: Keyring, rng: Callable[[int], bytes] = os.urandom, connect_timeout: float = 10.0
    ) -> None:
        self._init_sealed(keyring, rng)
        self._dsn = dsn
        self._timeout = connect_timeout
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._all_lock = threading.Lock()
        with self.transaction() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._create(c, schema(DIALECT))

    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        try:
            conn = psycopg.connect(self._dsn, autocommit=False, connect_timeout=max(1, int(self._timeout)))
        except psycopg.Error as exc:
            raise StorageUnavailable(f"postgres: cannot connect ({type(exc).__name__})") from None
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cursor:
                yield cursor
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            conn.close()
            raise StorageUnavailable(f"postgres: {type(exc).__name__}: connection lost") from None

    def compact(self) -> None:
        """Nothing to do: a dropped table's files are removed (its WAL history stays: docs/kbs.md)."""

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
