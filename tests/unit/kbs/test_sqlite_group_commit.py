"""SQLite storage with several connections (as ``kbs serve --workers``) and group commit (storage/sqlite.py).

What must hold: a durable write returns only after an fsync of the WAL
that started once its commit was visible; concurrent writers share
fsyncs; a new session and reads do not wait for the disk; reads do not
take the write lock; and a nonce is single-use across connections.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time

import pytest

from inclavare.kbs.atrest.kek import Kek, Keyring
from inclavare.kbs.errors import AttestationFailed
from inclavare.kbs.protocol.session import Session, SessionState, session_key
from inclavare.kbs.storage import sqlite as sqlite_storage
from inclavare.kbs.storage.interface import AuditRecord
from inclavare.kbs.storage.sqlite import SqliteStorage

from .helpers import make_broker

KEYRING = Keyring(Kek(bytes(range(32))))


class FsyncLog:
    """Wraps os.fdatasync as the storage module sees it: records what was committed when each sync began."""

    def __init__(self, db: str, delay: float = 0.0) -> None:
        self.db = db
        self.delay = delay
        self.syncs: list[tuple[set[str], float]] = []  # (details committed at the start, end time)
        self.lock = threading.Lock()
        self._real = os.fdatasync

    def __call__(self, fd: int) -> None:
        with sqlite3.connect(self.db) as peek:  # what any other connection can already read
            seen = {row[0] for row in peek.execute("SELECT detail FROM kbs_audit")}
        time.sleep(self.delay)
        self._real(fd)
        with self.lock:
            self.syncs.append((seen, time.monotonic()))


@pytest.fixture
def storage(tmp_path):
    s = SqliteStorage(str(tmp_path / "kbs.db"), KEYRING)
    yield s
    s.close()


def record(detail: str) -> AuditRecord:
    return AuditRecord(at=time.time(), event="deny", outcome="denied", subject="t", detail=detail)


def test_a_durable_write_returns_after_an_fsync_begun_after_its_commit(storage, tmp_path, monkeypatch):
    log = FsyncLog(str(tmp_path / "kbs.db"))
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", log)
    storage.record(record("one"))
    assert len(log.syncs) == 1
    assert "one" in log.syncs[0][0]  # the commit was on the WAL before the sync began


def test_concurrent_writers_share_fsyncs_and_none_returns_early(storage, tmp_path, monkeypatch):
    log = FsyncLog(str(tmp_path / "kbs.db"), delay=0.05)
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", log)
    returned: dict[str, float] = {}

    def write(i: int) -> None:
        storage.record(record(f"w{i}"))
        returned[f"w{i}"] = time.monotonic()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(returned) == 8
    assert len(log.syncs) < 8  # group commit: one fsync covered several commits
    for name, at in returned.items():
        assert any(name in seen and end <= at for seen, end in log.syncs), name


def test_a_new_session_and_reads_do_not_wait_for_the_disk(storage, tmp_path, monkeypatch):
    log = FsyncLog(str(tmp_path / "kbs.db"))
    monkeypatch.setattr(sqlite_storage.os, "fdatasync", log)
    session = _session("k1")
    storage.insert_session(session)  # a lost, unanswered challenge breaks nothing: not synced
    assert storage.get_session("k1") == session
    storage.policies("resource")
    storage.reference_values()
    assert log.syncs == []
    storage.finish_attestation(session.transition(SessionState.FAILED), record("burn"))  # burns a nonce: synced
    assert len(log.syncs) == 1


def test_reads_do_not_wait_for_another_processs_write_lock(storage, tmp_path):
    storage.insert_session(_session("k1"))
    other = sqlite3.connect(str(tmp_path / "kbs.db"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker in the middle of a write
    other.execute("UPDATE kbs_sessions SET tee = 'x' WHERE key = 'k1'")
    try:
        t0 = time.monotonic()
        assert storage.get_session("k1").tee == "software"  # the last committed state, at once
        assert time.monotonic() - t0 < 1.0
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_nonce_is_single_use_across_connections(tmp_path):
    path = str(tmp_path / "kbs.db")
    a, b = SqliteStorage(path, KEYRING), SqliteStorage(path, KEYRING)
    try:
        a.insert_session(_session("k1"))
        seen_a, seen_b = a.get_session("k1"), b.get_session("k1")  # both workers see it AUTHED
        assert seen_a is not None
        assert seen_b is not None
        assert a.finish_attestation(seen_a.transition(SessionState.ATTESTED, claims={}), record("a"))
        assert not b.finish_attestation(seen_b.transition(SessionState.ATTESTED, claims={}), record("b"))
        assert b.get_session("k1").state is SessionState.ATTESTED
        assert [r.outcome for r in a.audit_log()][-2:] == ["denied", "failed"]  # b's attempt: a refused replay
    finally:
        a.close()
        b.close()


def test_the_same_attestation_on_two_workers_is_refused_on_the_second(tmp_path):
    """Two services on one database file, as two workers: whichever sees the body second refuses it."""
    first = make_broker(str(tmp_path))
    second = make_broker(str(tmp_path), world=first.world)
    try:
        first.setup_release()
        cookie, hs, report_data = first.auth()
        body = json.dumps(hs.attestation(first.attester.collect_evidence(report_data).data)).encode()
        results: list[object] = []

        def attest(broker) -> None:
            try:
                results.append(broker.service.rcar.attest(body, cookie, "t")[0])
            except AttestationFailed as exc:
                results.append(exc)

        threads = [threading.Thread(target=attest, args=(b,)) for b in (first, second, second, first)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(isinstance(r, str) for r in results) == 1
        assert sum(isinstance(r, AttestationFailed) for r in results) == 3
        session = second.service.deps.storage.get_session(session_key(cookie))
        assert session is not None
        assert session.state is SessionState.ATTESTED
    finally:
        first.service.close()
        second.service.close()


def _session(key: str) -> Session:
    return Session(
        key=key,
        state=SessionState.AUTHED,
        tee="software",
        nonce="n",
        hash_algorithm="sha384",
        created_at=time.time(),
        expires_at=time.time() + 300,
    )


def test_a_failed_fsync_fails_every_later_durable_write(storage, monkeypatch):
    """fsync(2): Linux reports a writeback error once and may mark the pages clean, so a retried fsync
    can succeed with the data lost; after one failure no durable write may answer success."""
    from inclavare.kbs.errors import StorageUnavailable

    calls = []

    def failing(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(sqlite_storage.os, "fdatasync", failing)
    with pytest.raises(StorageUnavailable, match="fsync of the WAL failed"):
        storage.record(record("lost"))
    with pytest.raises(StorageUnavailable, match="an earlier fsync of the WAL failed"):
        storage.record(record("after"))
    assert len(calls) == 1  # nothing retried the sync
