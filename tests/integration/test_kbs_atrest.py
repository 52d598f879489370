"""Encryption at rest on SQLite and a real PostgreSQL: dumps hold no secret; migration and rotation are resumable.

"A dump" is what leaves the broker's hands: the SQLite file (with its WAL)
and ``pg_dump``'s output. Each is searched for every stored value in every
form a dump can show it (raw bytes, hex as PostgreSQL prints bytea, base64),
and the search is shown to find a plaintext value first, so it can fail.
"""

from __future__ import annotations

import base64
import glob
import itertools
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from inclavare.kbs.atrest import Kek, Keyring, maintenance
from inclavare.kbs.storage import AuditRecord, Storage
from inclavare.testing.kbs import PG_BIN

_names = itertools.count()
OLD, NEW = Kek(bytes(range(32))), Kek(bytes(range(64, 96)))
VALUES = {f"tenant-{i % 3}/key/k{i}": f"secret {i}: ".encode() + os.urandom(24) for i in range(40)}
LEGACY = "CREATE TABLE kbs_resources (path TEXT PRIMARY KEY, value {blob} NOT NULL, updated_at {real} NOT NULL)"


def holds(dump: bytes, secret: bytes) -> bool:
    """``secret`` in ``dump`` as raw bytes, as hex (bytea), or as base64."""
    forms = (secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret))
    return any(form in dump for form in forms)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """(name, target, open(keyring) -> Storage, dump() -> bytes) for one fresh database."""
    if request.param == "sqlite":
        from inclavare.kbs.storage.sqlite import SqliteStorage

        target = str(tmp_path / "kbs.db")

        def dump() -> bytes:
            return b"".join(open(p, "rb").read() for p in sorted(glob.glob(target + "*")))

        return "sqlite", target, lambda ring: SqliteStorage(target, ring), dump
    from inclavare.kbs.storage.postgres import PostgresStorage

    target = request.getfixturevalue("postgres").create_database(f"atrest{next(_names)}")

    def pg_dump() -> bytes:
        return subprocess.run([f"{PG_BIN}/pg_dump", "--dbname", target], capture_output=True, check=True).stdout

    return "postgres", target, lambda ring: PostgresStorage(target, ring), pg_dump


def record(event: str) -> AuditRecord:
    return AuditRecord(1.0, event, "ok", subject="local:test")


def release(store: Storage, path: str) -> bytes:
    got = store.release(path, session_key=None, now=1.0, audit=AuditRecord(1.0, "release", "ok", resource=path))
    assert got is not None
    return got.value


def legacy_database(store: Storage, dialect_blob: str, dialect_real: str) -> None:
    """The database as the broker wrote it before encryption at rest: one plaintext table."""
    with store.transaction() as c:
        c.execute("DROP TABLE kbs_secrets")
        c.execute(LEGACY.format(blob=dialect_blob, real=dialect_real))
        for path, value in VALUES.items():
            store._run(c, "INSERT INTO kbs_resources (path, value, updated_at) VALUES (?, ?, 1.0)", (path, value))
        c.execute("DELETE FROM kbs_keks")


def test_a_dump_holds_no_stored_secret(backend):
    name, _, open_store, dump = backend
    store = open_store(Keyring(OLD))
    store.verify_keys(0.0)
    for path, value in VALUES.items():
        store.put_resource(path, value, 1.0, record("resource.set"))
    for path, value in list(VALUES.items())[:5]:  # updated: the old versions must not linger either
        store.put_resource(path, value[::-1], 2.0, record("resource.set"))
    assert release(store, "tenant-1/key/k7") == VALUES["tenant-1/key/k7"]
    store.close()
    out = dump()
    assert b"tenant-2/key/k2" in out
    assert b"kbs_secrets" in out
    found = [p for p, v in VALUES.items() if holds(out, v) or holds(out, v[::-1])]
    assert found == [], f"{name}: {len(found)} stored secret(s) readable in the dump"


def test_migration_is_resumable_after_a_kill_and_leaves_no_plaintext(backend, tmp_path):
    name, target, open_store, dump = backend
    store = open_store(Keyring(OLD))
    blob, real = store.dialect.blob, store.dialect.real
    legacy_database(store, blob, real)
    store.close()
    before = dump()
    assert all(holds(before, v) for v in VALUES.values())  # the search finds plaintext where there is some

    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(MIGRATOR), name, target], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    while int(proc.stdout.readline()) < 10:  # let it seal a few rows, one transaction each ...
        pass
    proc.send_signal(signal.SIGKILL)  # ... then kill it between or inside a transaction
    proc.wait(10)
    store = open_store(Keyring(OLD))
    state = store.key_state()
    assert 0 < state.plaintext < len(VALUES)
    assert state.plaintext + sum(state.wrapped.values()) == len(VALUES)  # every row in exactly one table

    report = maintenance.migrate(store, record("resource.seal"))  # run again: it finishes the rest
    assert report.done == state.plaintext
    assert (report.state.plaintext, report.state.wrapped) == (0, {OLD.id: len(VALUES)})
    assert maintenance.migrate(store, record("resource.seal")).done == 0  # and again: nothing left to do
    store.verify_keys(2.0)  # a broker may serve now
    assert {p: release(store, p) for p in VALUES} == VALUES
    store.close()
    after = dump()
    assert b"kbs_resources" not in after  # the plaintext table is gone, not just empty
    assert [p for p, v in VALUES.items() if holds(after, v)] == []


MIGRATOR = """
import sys
from inclavare.kbs.atrest import Kek, Keyring, maintenance
from inclavare.kbs.storage import AuditRecord
backend, target = sys.argv[1], sys.argv[2]
if backend == "sqlite":
    from inclavare.kbs.storage.sqlite import SqliteStorage as S
else:
    from inclavare.kbs.storage.postgres import PostgresStorage as S
s = S(target, Keyring(Kek(bytes(range(32)))))
s.verify_keys(0.0, serving=False)
maintenance.migrate(s, AuditRecord(1.0, "resource.seal", "ok"), batch=1, progress=lambda n: print(n, flush=True))
"""


def test_rotation_rewraps_every_data_key_and_reports_what_it_cannot(backend):
    _, _, open_store, _ = backend
    store = open_store(Keyring(OLD))
    store.verify_keys(0.0)
    for path, value in VALUES.items():
        store.put_resource(path, value, 1.0, record("resource.set"))
    with store.transaction() as c:  # one row damaged by someone with write access: its data key no longer opens
        store._run(c, "UPDATE kbs_secrets SET path = 'tenant-0/key/moved' WHERE path = 'tenant-0/key/k0'")
    store.close()

    store = open_store(Keyring(NEW, [OLD]))
    store.verify_keys(0.0)  # staged: the new key is held, the database still writes under the old one
    store.put_resource("tenant-0/key/staged", b"staged", 1.0, record("resource.set"))
    assert store.key_state().wrapped == {OLD.id: len(VALUES) + 1}
    report = maintenance.rotate(store, record("resource.rewrap"), batch=7)
    assert report.previous_active == OLD.id
    assert report.done == len(VALUES)  # every row but the damaged one
    assert len(report.failures) == 1
    assert report.failures[0].startswith("resource tenant-0/key/moved (version 1): the data key (KEK ")
    assert report.state.wrapped == {NEW.id: len(VALUES), OLD.id: 1}
    store.put_resource("tenant-0/key/after", b"after", 2.0, record("resource.set"))
    store.close()

    store = open_store(Keyring(NEW))  # the old key dropped: every row but the damaged one still opens
    assert {p: release(store, p) for p in VALUES if p != "tenant-0/key/k0"} == {
        p: v for p, v in VALUES.items() if p != "tenant-0/key/k0"
    }
    assert release(store, "tenant-0/key/after") == b"after"
    assert store.key_state().wrapped[NEW.id] == len(VALUES) + 1
    store.close()


def test_a_replica_starting_during_a_write_neither_waits_nor_deadlocks(postgres):
    """A broker (or rotate-kek) connecting runs the schema step: it must not lock tables writes are using.

    The write here stops half-way (version taken, row not yet written) while
    a second storage opens on the same database. Creating the schema with
    ``CREATE INDEX IF NOT EXISTS`` took a SHARE lock on kbs_secrets even for
    an index that existed, and seeding the version counter then waited on
    the write, which waited on that lock: PostgreSQL's deadlock detector
    killed one of them (a 503 seen during rotations under load).
    """
    import threading

    from inclavare.kbs.storage.postgres import PostgresStorage

    dsn = postgres.create_database(f"starting{next(_names)}")
    first = PostgresStorage(dsn, Keyring(OLD))
    first.verify_keys(0.0)
    first.put_resource("r/t/a", b"one", 1.0, record("resource.set"))
    halfway, resume, errors = threading.Event(), threading.Event(), []

    def slow_write() -> None:
        try:
            with first.transaction() as c:
                kek, version = first._active_kek(c), first._next_version(c)
                halfway.set()
                resume.wait(10)
                from inclavare.kbs.atrest import seal

                s = seal(kek, "r/t/b", version, b"two")
                first._run(
                    c,
                    "INSERT INTO kbs_secrets (path, version, kek_id, dek, ciphertext, updated_at) VALUES (?,?,?,?,?,?)",
                    ("r/t/b", version, s.kek_id, s.dek, s.ciphertext, 1.0),
                )
        except Exception as exc:
            errors.append(exc)

    writer = threading.Thread(target=slow_write)
    writer.start()
    assert halfway.wait(10)
    opened: list[Storage] = []
    starter = threading.Thread(target=lambda: opened.append(PostgresStorage(dsn, Keyring(OLD))))
    starter.start()
    starter.join(3)
    resume.set()
    writer.join(15)
    starter.join(15)
    assert errors == []
    assert len(opened) == 1
    assert not starter.is_alive()
    assert release(opened[0], "r/t/b") == b"two"
    opened[0].close()
    first.close()
