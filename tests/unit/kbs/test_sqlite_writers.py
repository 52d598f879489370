"""The writers' queue of SQLite storage (storage/sqlite.py): a write transaction holds an flock, a read does not.

Workers of ``kbs serve --workers`` wait for each other's writes in the
kernel instead of in SQLite's busy handler, which sleeps its thread (the
event loop) 1, 2, 5 ms and on (the numbers: storage/sqlite.py's docstring).
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

import pytest

from inclavare.kbs.atrest.kek import Kek, Keyring
from inclavare.kbs.storage.interface import AuditRecord
from inclavare.kbs.storage.sqlite import SqliteStorage

KEYRING = Keyring(Kek(bytes(range(32))))


@pytest.fixture
def storage(tmp_path):
    s = SqliteStorage(str(tmp_path / "kbs.db"), KEYRING)
    yield s
    s.close()


def queue_is_free(path: str) -> bool:
    """Whether another open file description could take the writers' flock right now."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_a_write_transaction_holds_the_writers_queue_and_a_read_does_not(storage, tmp_path):
    queue = str(tmp_path / "kbs.db-writers")
    assert stat.S_IMODE(os.stat(queue).st_mode) == 0o600
    assert queue_is_free(queue)
    with storage.transaction():
        assert not queue_is_free(queue)
    with storage.unsynced():
        assert not queue_is_free(queue)
    with storage.reading():
        assert queue_is_free(queue)
    assert queue_is_free(queue)


def test_a_failed_write_leaves_the_queue(storage, tmp_path):
    with pytest.raises(RuntimeError), storage.transaction():
        raise RuntimeError("rolled back")
    assert queue_is_free(str(tmp_path / "kbs.db-writers"))
    storage.record(AuditRecord(at=time.time(), event="deny", outcome="denied", subject="t", detail="after"))


@pytest.mark.timeout(30)
def test_a_writer_in_another_process_waits_its_turn(storage, tmp_path):
    """The other worker's write blocks on the queue while this one's transaction is open, then goes on."""
    queue = str(tmp_path / "kbs.db-writers")
    ready, ready_w = os.pipe()
    go_r, go = os.pipe()
    pid = os.fork()
    if pid == 0:  # the other worker
        other = SqliteStorage(str(tmp_path / "kbs.db"), KEYRING)
        os.write(ready_w, b"r")
        os.read(go_r, 1)
        other.record(AuditRecord(at=time.time(), event="deny", outcome="denied", subject="child", detail="2nd"))
        os._exit(0)
    assert os.read(ready, 1) == b"r"
    with storage.transaction() as c:
        os.write(go, b"g")
        time.sleep(0.2)  # the child is queued now
        c.execute("INSERT INTO kbs_audit (at, event, outcome, subject, source, replica, detail) "
                  "VALUES (0, 'deny', 'denied', 'parent', 's', 'r', '1st')")  # fmt: skip
        assert not queue_is_free(queue)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [r.subject for r in storage.audit_log()][-2:] == ["parent", "child"]
    for fd in (ready, ready_w, go_r, go):
        os.close(fd)


def test_a_writer_stuck_in_its_turn_does_not_hang_the_others_for_good(tmp_path, monkeypatch):
    """A worker stopped or hung inside its write transaction holds the queue: the others wait the
    busy timeout, then go to SQLite's own lock (a 503 at worst), never block their loop for good."""
    import fcntl
    import os
    import time

    from inclavare.kbs.storage import sqlite as module

    monkeypatch.setattr(module, "_TURN_TIMEOUT", 0.2)
    path = str(tmp_path / "q")
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    waiter = os.open(path, os.O_RDWR)
    try:
        assert module._take_turn(waiter) is True  # free: taken at once
        fcntl.flock(waiter, fcntl.LOCK_UN)
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        assert module._take_turn(waiter) is False
        assert 0.2 <= time.monotonic() - started < 2
    finally:
        os.close(holder)
        os.close(waiter)
