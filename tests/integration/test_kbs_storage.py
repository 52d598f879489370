"""The storage contract, run against SQLite and a real PostgreSQL server the test starts.

Also: a writer SIGKILLed in the middle of a transaction leaves nothing
half-done (SQLite's journal; PostgreSQL rolls back the dead connection).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from inclavare.kbs.atrest import Kek, Keyring
from inclavare.kbs.errors import InvalidRequest, TokenNotFound
from inclavare.kbs.protocol.messages import Request
from inclavare.kbs.protocol.session import SessionState, open_session
from inclavare.kbs.storage import AuditRecord, Storage

_names = itertools.count()
KEYRING = Keyring(Kek(bytes(range(32))))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> Storage:
    if request.param == "sqlite":
        from inclavare.kbs.storage.sqlite import SqliteStorage

        s: Storage = SqliteStorage(str(tmp_path / "kbs.db"), KEYRING)
    else:
        from inclavare.kbs.storage.postgres import PostgresStorage

        s = PostgresStorage(request.getfixturevalue("postgres").create_database(f"contract{next(_names)}"), KEYRING)
    s.verify_keys(0.0)
    yield s
    s.close()


def rec(event: str = "release", **kw: object) -> AuditRecord:
    return AuditRecord(at=1.0, event=event, outcome="ok", **kw)  # type: ignore[arg-type]


def attested_session(store: Storage, now: float = 0.0):
    _, session, _ = open_session(Request("0.4.0", "software"), "sha384", now=now, timeout=100, rng=os.urandom)
    store.insert_session(session)
    done = session.transition(SessionState.ATTESTED, tee_pubkey={"kty": "EC"}, claims={"jti": "x"})
    assert store.finish_attestation(done, rec("attest"))
    return done


def test_sessions(store):
    _, session, _ = open_session(Request("0.4.0", "software"), "sha512", now=5.0, timeout=100, rng=os.urandom)
    store.insert_session(session)
    assert store.get_session(session.key) == session
    failed = session.transition(SessionState.FAILED)
    assert store.finish_attestation(failed, rec("attest"))
    assert not store.finish_attestation(session.transition(SessionState.ATTESTED), rec("attest"))  # not AUTHED any more
    assert store.get_session(session.key).state is SessionState.FAILED
    assert [r.outcome for r in store.audit_log()] == ["ok", "failed"]
    assert store.get_session("0" * 64) is None
    assert store.purge_sessions(104.0) == 0
    assert store.purge_sessions(106.0) == 1


def test_release_once_per_request_key(store):
    session = attested_session(store)
    store.put_resource("r/t/a", b"\x00value", 1.0, rec("resource.set"))
    store.put_resource("r/t/b", b"b", 1.0, rec("resource.set"))
    first = store.release(
        "r/t/a", session_key=session.key, now=1.0, audit=rec(subject="s", resource="r/t/a", request_key="k1")
    )
    again = store.release(
        "r/t/a", session_key=session.key, now=1.0, audit=rec(subject="s", resource="r/t/a", request_key="k1")
    )
    other = store.release(
        "r/t/a", session_key=None, now=1.0, audit=rec(subject="t", resource="r/t/a", request_key="k1")
    )
    keyless = [
        store.release("r/t/b", session_key=None, now=1.0, audit=rec(subject="t", resource="r/t/b")) for _ in range(2)
    ]
    assert (first.value, first.replayed, again.replayed, again.audit_id) == (b"\x00value", False, True, first.audit_id)
    assert not other.replayed  # request keys are per requester
    assert keyless[0].audit_id != keyless[1].audit_id
    with pytest.raises(InvalidRequest):
        store.release("r/t/b", session_key=None, now=1.0, audit=rec(subject="s", resource="r/t/b", request_key="k1"))
    assert store.release("r/t/none", session_key=None, now=1.0, audit=rec(subject="s", resource="r/t/none")) is None
    with pytest.raises(TokenNotFound):
        store.release("r/t/a", session_key=session.key, now=100.0, audit=rec(subject="s", resource="r/t/a"))
    counts = [(r.subject, r.request_key, r.deliveries) for r in store.audit_log() if r.event == "release"]
    assert counts == [("s", "k1", 2), ("t", "k1", 1), ("t", None, 1), ("t", None, 1)]


def test_concurrent_retries_record_one_release(store):
    session = attested_session(store)
    store.put_resource("r/t/a", b"v", 1.0, rec("resource.set"))
    barrier = threading.Barrier(6)
    results = []

    def retry() -> None:
        barrier.wait()
        results.append(
            store.release(
                "r/t/a", session_key=session.key, now=1.0, audit=rec(subject="s", resource="r/t/a", request_key="same")
            )
        )

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.replayed for r in results) == [False] + [True] * 5
    assert [(r.request_key, r.deliveries) for r in store.audit_log() if r.event == "release"] == [("same", 6)]


def test_resources_policies_reference_values(store):
    store.put_resource("a/b/c", b"1", 1.0, rec("resource.set"))
    store.put_resource("a/b/c", b"2", 2.0, rec("resource.set"))
    store.put_resource("x/y/z", b"3", 2.0, rec("resource.set"))
    assert store.list_resources() == ["a/b/c", "x/y/z"]
    assert store.list_resources("x/") == ["x/y/z"]
    assert store.delete_resource("a/b/c", rec("resource.delete"))
    assert not store.delete_resource("a/b/c", rec("resource.delete"))
    store.put_policy("resource", "*", "p1", 1.0, rec("policy.set"))
    store.put_policy("resource", "*", "p2", 1.0, rec("policy.set"))
    store.put_policy("attestation", "default", "a", 1.0, rec("policy.set"))
    assert dict(store.policies("resource")) == {"*": "p2"}
    assert store.delete_policy("resource", "*", rec("policy.delete"))
    store.put_reference_values("software.measurement", ["aa", "bb"], None, 1.0, rec("reference.set"))
    store.put_reference_values("software.measurement", ["bb"], 50.0, 2.0, rec("reference.set"))
    values = store.reference_values("software.measurement")
    assert [(v.value, v.expires_at, v.live(49.0), v.live(50.0)) for v in values] == [
        ("aa", None, True, True),
        ("bb", 50.0, True, False),
    ]
    assert store.expire_reference_values("software.measurement", "aa", 10.0, rec("reference.expire")) == 1
    assert store.delete_reference_values("software.measurement", None, rec("reference.delete")) == 2
    assert store.reference_values() == []
    assert len(store.audit_log(limit=1000)) == 13
    assert [r.id for r in store.audit_log(since_id=11)] == [12, 13]


WRITER = """
import os, sys, time
from inclavare.kbs.atrest import Kek, Keyring
from inclavare.kbs.storage.interface import AuditRecord
backend, target = sys.argv[1], sys.argv[2]
if backend == "sqlite":
    from inclavare.kbs.storage.sqlite import SqliteStorage as S
else:
    from inclavare.kbs.storage.postgres import PostgresStorage as S
s = S(target, Keyring(Kek(bytes(range(32)))))
with s.transaction() as c:
    s._run(c, "INSERT INTO kbs_secrets (path, version, kek_id, dek, ciphertext, updated_at) VALUES (?,?,?,?,?,?)",
           ("half/done/write", 99, "x", b"x", b"x", 1.0))
    s._audit(c, AuditRecord(at=1.0, event="resource.set", outcome="ok"))
    print("inside", flush=True)
    time.sleep(60)
"""


def test_a_writer_killed_mid_transaction_leaves_nothing(store, tmp_path, request):
    backend = request.node.callspec.params["store"]
    store.put_resource("before/the/kill", b"kept", 1.0, rec("resource.set"))
    target = str(tmp_path / "kbs.db") if backend == "sqlite" else store._dsn  # type: ignore[attr-defined]
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), backend, target], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"inside\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert store.list_resources() == ["before/the/kill"]
    assert [r.event for r in store.audit_log()] == ["resource.set"]
    store.put_resource("after/the/kill", b"ok", 2.0, rec("resource.set"))  # the database is not wedged
    assert store.list_resources() == ["after/the/kill", "before/the/kill"]


def test_sqlite_file_is_private_from_its_first_byte(tmp_path):
    """Created 0600 (not chmod'ed after sqlite made it 0644: a reader could
    open it in between and keep reading every resource stored later)."""
    import stat

    from inclavare.kbs.storage.sqlite import SqliteStorage

    old = os.umask(0o022)
    try:
        s = SqliteStorage(str(tmp_path / "fresh.db"), KEYRING)
    finally:
        os.umask(old)
    made = sorted(name for name in os.listdir(tmp_path) if name.startswith("fresh.db"))
    assert "fresh.db" in made
    for name in made:  # the WAL and shared-memory files take the database's mode
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    del s
