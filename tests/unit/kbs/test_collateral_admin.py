"""Host keys and collateral through the admin API: stored in the database, seen by every replica on it.

Two :class:`KbsService` on one SQLite file stand for two replicas (the
PostgreSQL version with real processes is tests/integration/test_kbs_ops.py);
the injected clock drives the refresh interval, so "within N seconds" is
exact here.
"""

from __future__ import annotations

import json
import os

import pytest

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.enclave.identity import HostKey
from inclavare.kbs.admin import Admin
from inclavare.kbs.config import parse_config
from inclavare.kbs.errors import AdminForbidden, AttestationFailed, InvalidRequest, StorageUnavailable
from inclavare.kbs.service import KbsService

from .helpers import OPS, Broker, make_broker

NEW_HOST = HostKey.from_seed(bytes(range(100, 132)))


def _attest(broker: Broker, host: HostKey) -> str:
    broker.attester = SoftwareAttester(broker.world.identity, host)
    return broker.attest()[1]


def _pair(tmp_path, refresh: float) -> tuple[Broker, Broker]:
    a = make_broker(str(tmp_path), {"attestation": {"collateral_refresh": refresh}})
    doc = {
        "storage": {"path": os.path.join(str(tmp_path), "kbs.db"), "kek": {"file": a.world.kek}},
        "attestation": {"collateral": [f"{a.world.root}/host-key.pub.pem"], "policy": "allow-software",
                        "collateral_refresh": refresh},
        "token": {"signing_key": f"{a.world.root}/token.pem"},
        "audit": {"replica": "b"},
    }  # fmt: skip
    b = Broker(KbsService.from_config(parse_config(doc), clock=a.clock), a.clock, a.world)
    a.setup_release()
    return a, b


def test_a_host_key_added_is_trusted_and_removed_is_not(broker: Broker):
    broker.setup_release()
    with pytest.raises(AttestationFailed, match="not a trusted software-TEE host key"):
        _attest(broker, NEW_HOST)
    item = broker.service.admin.add_collateral(OPS, NEW_HOST.public_pem, "host-key", "t")
    assert (item["id"], item["kind"], item["added"]) == (NEW_HOST.key_id.hex(), "host-key", True)
    assert _attest(broker, NEW_HOST)  # the replica that made the change: at once
    listed = broker.service.admin.list_collateral(OPS, "host-key")
    assert [i["id"] for i in listed] == [NEW_HOST.key_id.hex()]
    assert broker.service.admin.delete_collateral(OPS, NEW_HOST.key_id.hex(), "t") is True
    with pytest.raises(AttestationFailed, match="not a trusted"):
        _attest(broker, NEW_HOST)
    assert _attest(broker, broker.world.host_key)  # the config's key is untouched
    events = [(r["event"], r.get("resource")) for r in broker.service.admin.audit_log(OPS, 0, 1000)]
    assert ("collateral.add", f"host-key:{NEW_HOST.key_id.hex()[:16]}") in events
    assert ("collateral.delete", NEW_HOST.key_id.hex()[:16]) in events


def test_another_replica_sees_a_change_within_the_refresh_interval(tmp_path):
    a, b = _pair(tmp_path, refresh=5.0)
    try:
        with pytest.raises(AttestationFailed):
            _attest(b, NEW_HOST)  # b has looked at the generation now
        a.service.admin.add_collateral(OPS, NEW_HOST.public_pem, None, "t")
        a.clock.now += 4.9
        with pytest.raises(AttestationFailed):
            _attest(b, NEW_HOST)  # cached: b looked 4.9 s ago
        a.clock.now += 0.2
        assert _attest(b, NEW_HOST)
        a.service.admin.delete_collateral(OPS, NEW_HOST.key_id.hex(), "t")
        a.clock.now += 5.1
        with pytest.raises(AttestationFailed, match="not a trusted"):
            _attest(b, NEW_HOST)
    finally:
        a.service.close()
        b.service.close()


def test_the_json_host_key_prints_is_accepted_and_junk_is_refused(broker: Broker):
    printed = {"path": "/x", "key_id": NEW_HOST.key_id.hex(), "public_key": NEW_HOST.public_pem.decode()}
    item = broker.service.admin.add_collateral(OPS, json.dumps(printed).encode(), "host-key", "t")
    assert item["id"] == NEW_HOST.key_id.hex()
    again = broker.service.admin.add_collateral(OPS, NEW_HOST.public_pem, None, "t")
    assert again["added"] is False  # the same key, whatever form it came in
    with pytest.raises(InvalidRequest, match="PEM holds no certificate"):
        broker.service.admin.add_collateral(OPS, b"-----BEGIN NOTHING-----\n", None, "t")
    with pytest.raises(InvalidRequest, match="empty"):
        broker.service.admin.add_collateral(OPS, b"  \n", None, "t")
    with pytest.raises(InvalidRequest, match="64 lower-case hex"):
        broker.service.admin.delete_collateral(OPS, "../x", "t")


def test_collateral_needs_the_global_scope(broker: Broker):
    tenant = Admin("tenant-a", ("tenant-a/*",))
    with pytest.raises(AdminForbidden):
        broker.service.admin.add_collateral(tenant, NEW_HOST.public_pem, None, "t")
    with pytest.raises(AdminForbidden):
        broker.service.admin.list_collateral(tenant, None)


def test_intel_collateral_is_classified(broker: Broker):
    vectors = os.path.join(os.path.dirname(__file__), "..", "..", "vectors")
    found = [os.path.join(d, f) for d, _, fs in os.walk(vectors) for f in fs if f.endswith(".json")]
    tcb = next((data for data in map(_read, found) if data.lstrip().startswith(b'{"tcbInfo"')), None)
    if tcb is None:
        pytest.skip("no PCS TCB info among the test vectors")
    item = broker.service.admin.add_collateral(OPS, tcb, None, "t")
    assert item["kind"] == "tcb-info"
    assert "TCB info FMSPC" in str(item["summary"])
    with pytest.raises(InvalidRequest, match="not a host-key"):
        broker.service.admin.add_collateral(OPS, tcb, "host-key", "t")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_an_unreadable_generation_is_a_503_not_the_stale_store(broker: Broker, monkeypatch):
    """A replica that cannot look must not keep trusting a key that may have been removed."""
    broker.setup_release()
    broker.clock.now += 10  # the cached look is stale

    def unreachable() -> int:
        raise StorageUnavailable("postgres: OperationalError: connection lost")

    monkeypatch.setattr(broker.service.deps.storage, "collateral_generation", unreachable)
    cookie, hs, report_data = broker.auth()
    body = json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data)).encode()
    with pytest.raises(StorageUnavailable):
        broker.service.rcar.attest(body, cookie, "t")
    monkeypatch.undo()
    token, _ = broker.service.rcar.attest(body, cookie, "t")  # the broker's trouble: the nonce was not spent
    assert token
