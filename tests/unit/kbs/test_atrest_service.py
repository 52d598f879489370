"""Encryption at rest through the broker (SQLite): the file holds no secret, tampering is refused, keys change."""

from __future__ import annotations

import base64
import glob
import os
import sqlite3
from pathlib import Path

import pytest

from inclavare.kbs.atrest import Kek, Keyring, kek_id, maintenance
from inclavare.kbs.config import parse_config
from inclavare.kbs.errors import ConfigError, ResourceNotFound, StorageUnavailable, StoredDataCorrupt
from inclavare.kbs.service import KbsService
from inclavare.kbs.storage import AuditRecord

from .helpers import SECRET, Broker, make_broker

OTHER = b"second secret \x01\x02 for the dump test"
LEGACY_SCHEMA = "CREATE TABLE kbs_resources (path TEXT PRIMARY KEY, value BLOB NOT NULL, updated_at REAL NOT NULL)"


def db_bytes(root) -> bytes:
    """The database file and its WAL and shared-memory files: what a copy of the disk holds."""
    return b"".join(open(p, "rb").read() for p in sorted(glob.glob(f"{root}/kbs.db*")))


def sql(root, statement: str, *params: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"{root}/kbs.db", isolation_level=None)
    try:
        return db.execute(statement, params).fetchall()
    finally:
        db.close()


def kek_file(root, name: str, key: bytes) -> str:
    path = os.path.join(root, name)
    with open(path, "wb") as f:
        f.write(base64.b64encode(key))
    os.chmod(path, 0o600)
    return path


def restart(broker: Broker, root, kek: dict[str, object]) -> Broker:
    broker.service.close()
    return make_broker(str(root), {"storage": {"kek": kek}}, world=broker.world)


def test_the_database_file_holds_no_secret(tmp_path, broker: Broker):
    broker.setup_release()
    broker.admin("set_resource", ("default", "key", "other"), OTHER, "t")
    broker.admin("set_resource", ("default", "key", "other"), OTHER + b"!", "t")  # and an overwritten version
    cookie, token, key = broker.attest()
    assert key.decrypt(broker.get(cookie=cookie)) == SECRET
    dump = db_bytes(tmp_path)
    assert b"kbs_secrets" in dump  # the right file
    for secret in (SECRET, OTHER, OTHER + b"!", cookie.encode(), token.encode()):
        assert secret not in dump
    kid = kek_id(base64.b64decode(Path(broker.world.kek).read_text()))
    assert sql(tmp_path, "SELECT kek_id, version FROM kbs_secrets ORDER BY path") == [(kid, 1), (kid, 3)]
    assert sql(tmp_path, "SELECT id, active FROM kbs_keks") == [(kid, 1)]


def test_a_row_moved_or_rolled_back_is_released_to_nobody(tmp_path, broker: Broker):
    broker.setup_release()
    broker.admin("set_resource", ("default", "key", "other"), OTHER, "t")
    cookie, _, key = broker.attest()
    # someone with write access to the database copies the row of default/key/db over default/key/other
    sql(
        tmp_path,
        "UPDATE kbs_secrets SET (version, kek_id, dek, ciphertext) = "
        "(SELECT version, kek_id, dek, ciphertext FROM kbs_secrets WHERE path = 'default/key/db') "
        "WHERE path = 'default/key/other'",
    )
    with pytest.raises(StoredDataCorrupt) as e:
        broker.get("default/key/other", cookie=cookie)
    assert e.value.status == 500
    assert e.value.public_detail == "stored data failed its integrity check"
    denials = [r for r in broker.service.deps.storage.audit_log() if r.event == "deny"]
    assert [(r.outcome, r.resource, r.detail) for r in denials] == [
        ("failed", "default/key/other", "stored resource failed its integrity check")
    ]
    assert not [r for r in broker.service.deps.storage.audit_log() if r.event == "release"]  # nothing released

    # a rollback: the row as it was before an update, put back after the broker served the update
    old = sql(tmp_path, "SELECT version, dek, ciphertext FROM kbs_secrets WHERE path = 'default/key/db'")[0]
    broker.admin("set_resource", ("default", "key", "db"), b"rotated password", "t")
    assert key.decrypt(broker.get(cookie=cookie)) == b"rotated password"
    sql(tmp_path, "UPDATE kbs_secrets SET version = ?, dek = ?, ciphertext = ? WHERE path = 'default/key/db'", *old)
    with pytest.raises(StoredDataCorrupt):
        broker.get(cookie=cookie)
    # and a deleted resource put back
    broker.admin("set_resource", ("default", "key", "gone"), b"deleted", "t")
    row = sql(tmp_path, "SELECT * FROM kbs_secrets WHERE path = 'default/key/gone'")[0]
    broker.admin("delete_resource", ("default", "key", "gone"), "t")
    with pytest.raises(ResourceNotFound):
        broker.get("default/key/gone", cookie=cookie)
    sql(tmp_path, "INSERT INTO kbs_secrets VALUES (?,?,?,?,?,?)", *row)
    with pytest.raises(StoredDataCorrupt, match="rolled back"):
        broker.get("default/key/gone", cookie=cookie)


def test_a_wrong_or_missing_kek_stops_the_broker_before_it_serves(tmp_path, broker: Broker):
    broker.setup_release()
    with pytest.raises(ConfigError) as e:
        restart(broker, tmp_path, {"file": kek_file(tmp_path, "wrong", bytes(32))})
    assert str(e.value).startswith(
        f"kbs.toml: storage.kek: wrong key: this database's key-encryption key is "
        f"{kek_id(base64.b64decode(Path(broker.world.kek).read_text()))}, not a configured one ({kek_id(bytes(32))} "
    )
    doc = {"storage": {"path": str(tmp_path / "kbs.db")}}
    with pytest.raises(ConfigError, match=r"^kbs.toml: storage.kek: missing: "):
        KbsService.from_config(parse_config(doc))


def test_rotation_with_reload_and_no_downtime(tmp_path, broker: Broker):
    """Keys change under a broker that keeps serving: reload (SIGHUP's work), rotate, reload again."""
    broker.setup_release()
    cookie, _, key = broker.attest()
    service = broker.service
    old = {"file": broker.world.kek}
    new = {"file": kek_file(tmp_path, "new", bytes(range(7, 39)))}

    def reload(kek: dict[str, object]) -> None:
        doc = {"storage": {"path": str(tmp_path / "kbs.db"), "kek": kek}}
        service.reload_keys(parse_config(doc))

    with pytest.raises(ConfigError, match="wrong key"):  # the new key alone cannot read the database: refused
        reload(new)
    assert key.decrypt(broker.get(cookie=cookie)) == SECRET  # ... and the old keyring stayed
    reload({**new, "previous": [old]})
    broker.admin("set_resource", ("default", "key", "during"), b"written before rotate-kek", "t")
    storage = service.deps.storage
    assert set(storage.key_state().wrapped) == {storage.keyring.previous[0].id}  # the database's KEK, not ours

    record = AuditRecord(service.deps.clock(), "resource.rewrap", "ok", subject="local:test")
    report = maintenance.rotate(storage, record)
    assert (report.done, report.failures, report.previous_active) == (2, [], storage.keyring.previous[0].id)
    assert report.state.wrapped == {kek_id(bytes(range(7, 39))): 2}
    assert key.decrypt(broker.get(cookie=cookie)) == SECRET
    with pytest.raises(ConfigError, match=r"^kbs.toml: storage.kek: wrong key"):  # the old key alone: refused
        reload(old)
    reload(new)  # rotation done: the old key can go
    assert key.decrypt(broker.get("default/key/during", cookie=cookie)) == b"written before rotate-kek"
    assert maintenance.rotate(storage, record).done == 0  # run again: nothing to do
    assert [r.event for r in storage.audit_log(limit=100)].count("resource.rewrap") == 2


def test_a_replica_that_missed_a_rotation_answers_503(tmp_path, broker: Broker):
    broker.setup_release()
    cookie, _, _ = broker.attest()
    storage = broker.service.deps.storage
    new = Kek(bytes(range(1, 33)))
    storage.activate(new, 0.0)  # another replica (or rotate-kek) switched; this one was not reloaded
    with pytest.raises(StorageUnavailable, match=f"active KEK is {new.id}, which this replica does not hold"):
        broker.admin("set_resource", ("default", "key", "db"), b"x", "t")
    storage.reload_keys(Keyring(new, [storage.keyring.current]))
    broker.admin("set_resource", ("default", "key", "db"), b"x", "t")
    storage.keyring = Keyring(Kek(bytes(32)), [storage.keyring.previous[0]])  # stale: lacks the row's KEK
    with pytest.raises(StorageUnavailable, match=f"wrapped under KEK {new.id}, which this replica does not hold"):
        broker.get(cookie=cookie)


def test_a_plaintext_database_is_migrated_once_and_for_all(tmp_path):
    """A database written before encryption at rest: refused until migrated; then no plaintext byte is left."""
    broker = make_broker(str(tmp_path))
    broker.setup_release()
    broker.service.close()
    values = {f"default/key/old{i}": f"legacy secret {i} ".encode() * 8 for i in range(250)}
    sql(tmp_path, "DROP TABLE kbs_secrets")
    sql(tmp_path, "DELETE FROM kbs_keks")
    sql(tmp_path, LEGACY_SCHEMA)
    for path, value in values.items():
        sql(tmp_path, "INSERT INTO kbs_resources VALUES (?, ?, 1.0)", path, value)
    assert all(v in db_bytes(tmp_path) for v in values.values())

    with pytest.raises(ConfigError) as e:
        make_broker(str(tmp_path), world=broker.world)
    assert str(e.value) == (
        "kbs.toml: storage: 250 resource(s) are stored in plaintext (written before encryption at rest): "
        "run `inclavare kbs migrate --config kbs.toml` first"
    )
    from inclavare.kbs.storage.sqlite import SqliteStorage

    keyring = Keyring(Kek(base64.b64decode(Path(broker.world.kek).read_text())))
    storage = SqliteStorage(str(tmp_path / "kbs.db"), keyring)
    storage.verify_keys(0.0, serving=False)
    record = AuditRecord(1.0, "resource.seal", "ok", subject="local:test")
    assert storage.migrate_batch(100, record) == 100  # interrupted after one batch ...
    storage.close()
    storage = SqliteStorage(str(tmp_path / "kbs.db"), keyring)
    report = maintenance.migrate(storage, record, batch=64)  # ... and run again: it finishes what is left
    assert (report.done, report.state.plaintext, report.state.wrapped) == (150, 0, {keyring.current.id: 250})
    assert maintenance.migrate(storage, record).done == 0  # idempotent
    storage.close()
    dump = db_bytes(tmp_path)
    assert not [p for p, v in values.items() if v in dump]  # VACUUM: not even in free pages
    assert sql(tmp_path, "SELECT name FROM sqlite_master WHERE name = 'kbs_resources'") == []

    broker = make_broker(str(tmp_path), world=broker.world)
    broker.setup_release()
    cookie, _, key = broker.attest()
    assert key.decrypt(broker.get("default/key/old7", cookie=cookie)) == values["default/key/old7"]
    sealed = [r for r in broker.service.deps.storage.audit_log(limit=1000) if r.event == "resource.seal"]
    assert len(sealed) == 250
    assert sealed[0].detail.startswith(f"sealed under KEK {keyring.current.id}, version ")
    broker.service.close()
