"""The broker without HTTP: RCAR, releases and refusals, on SQLite with an injected clock."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.enclave.identity import EnclaveIdentity, HostKey
from inclavare.kbs.errors import (
    AttestationFailed,
    InvalidRequest,
    PolicyDeny,
    ResourceNotFound,
    TokenInvalid,
    TokenNotFound,
)
from inclavare.kbs.jwe import TeeKey

from .helpers import OPS, SECRET, Broker, make_broker


def test_attest_and_release(broker: Broker):
    broker.setup_release()
    cookie, token, key = broker.attest()
    assert key.decrypt(broker.get(cookie=cookie)) == SECRET
    assert key.decrypt(broker.get(token=token)) == SECRET  # passport style: the token alone
    events = [(r.event, r.outcome, r.subject.split(":")[0]) for r in broker.service.deps.storage.audit_log()]
    assert events[-3:] == [("attest", "ok", "session"), ("release", "ok", "session"), ("release", "ok", "token")]
    m = broker.service.deps.metrics
    assert m.attestation_successes.labels("software")._value.get() == 1
    assert m.releases._value.get() == 2


def test_a_release_is_recorded_once_per_request_key(broker: Broker):
    broker.setup_release()
    broker.admin("set_resource", ("default", "key", "other"), b"x", "t")
    cookie, _, key = broker.attest()
    for _ in range(3):  # a client retrying the same request
        assert key.decrypt(broker.get(cookie=cookie, key="request-0001")) == SECRET
    broker.get(cookie=cookie, key="request-0002")
    releases = [r for r in broker.service.deps.storage.audit_log() if r.event == "release"]
    assert [(r.request_key, r.deliveries) for r in releases] == [("request-0001", 3), ("request-0002", 1)]
    with pytest.raises(InvalidRequest, match="already used for another resource"):
        broker.get("default/key/other", cookie=cookie, key="request-0001")
    with pytest.raises(InvalidRequest, match="Idempotency-Key"):
        broker.get(cookie=cookie, key="short")


def test_replayed_nonce_is_refused(broker: Broker):
    broker.setup_release()
    cookie, hs, report_data = broker.auth()
    body = json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data)).encode()
    broker.service.rcar.attest(body, cookie, "t")
    with pytest.raises(AttestationFailed) as exc:
        broker.service.rcar.attest(body, cookie, "t")
    assert exc.value.public_detail == "attestation failed: challenge spent"


def test_evidence_for_another_challenge_is_refused_and_burns_the_session(broker: Broker):
    broker.setup_release()
    _, hs1, report_data1 = broker.auth()
    cookie2, hs2, report_data2 = broker.auth()
    stale = hs1.attestation(broker.attester.collect_evidence(report_data1).data)
    with pytest.raises(AttestationFailed, match="nonce"):
        broker.service.rcar.attest(json.dumps(stale).encode(), cookie2, "t")
    good = hs2.attestation(broker.attester.collect_evidence(report_data2).data)
    with pytest.raises(AttestationFailed, match="nonce already used"):
        broker.service.rcar.attest(json.dumps(good).encode(), cookie2, "t")
    # evidence over the old nonce, claimed for the new one: the binding catches it
    old_evidence = broker.attester.collect_evidence(report_data1).data
    cookie3, hs3, _ = broker.auth()
    with pytest.raises(AttestationFailed, match="report data does not bind"):
        broker.service.rcar.attest(json.dumps(hs3.attestation(old_evidence)).encode(), cookie3, "t")


def test_evidence_bound_to_another_key_is_refused(broker: Broker):
    broker.setup_release()
    cookie, hs, report_data = broker.auth(key=TeeKey.generate())
    evidence = broker.attester.collect_evidence(report_data).data
    swapped = {**hs.attestation(evidence)}
    swapped["runtime-data"] = {**swapped["runtime-data"], "tee-pubkey": TeeKey.generate().public_jwk()}
    with pytest.raises(AttestationFailed, match="does not bind"):
        broker.service.rcar.attest(json.dumps(swapped).encode(), cookie, "t")


@pytest.mark.parametrize(
    ("case", "reason", "category"),
    [
        ("declared-sgx", "may not carry software-evidence", "unsupported evidence"),
        ("untrusted-host", "not a trusted software-TEE host key", "no trusted host key"),
        ("debug", "contraindicated", "policy: denied"),
        ("init-data", "init-data", "unsupported evidence"),
        ("additional-evidence", "additional", "unsupported evidence"),
    ],
)
def test_refused_attestations(broker: Broker, case: str, reason: str, category: str):
    broker.setup_release()
    attester = broker.attester
    if case == "untrusted-host":
        attester = SoftwareAttester(broker.world.identity, HostKey.from_seed(bytes(32)))
    if case == "debug":
        i = broker.world.identity
        attester = SoftwareAttester(
            EnclaveIdentity(i.measurement, i.signer, i.isv_prod_id, i.isv_svn, True), broker.world.host_key
        )
    cookie, hs, report_data = broker.auth("sgx" if case == "declared-sgx" else "software")
    body = hs.attestation(attester.collect_evidence(report_data).data)
    if case == "init-data":
        body["init-data"] = {"format": "toml", "body": "x"}
    if case == "additional-evidence":
        body["tee-evidence"]["additional_evidence"] = '{"sampledevice": {}}'
    with pytest.raises(AttestationFailed, match=reason) as exc:
        broker.service.rcar.attest(json.dumps(body).encode(), cookie, "t")
    assert exc.value.public_detail == f"attestation failed: {category}"
    assert broker.service.deps.metrics.attestation_failures.labels(hs.tee)._value.get() == 1


def test_the_default_attestation_policy_refuses_software(tmp_path):
    b = make_broker(str(tmp_path), {"attestation": {"policy": "default"}})
    b.setup_release()
    with pytest.raises(AttestationFailed, match="contraindicated"):
        b.attest()
    b.admin("set_attestation_policy", json.dumps({"builtin": "allow-software", "policy_id": "default"}).encode(), "t")
    cookie, _, key = b.attest()  # the admin's policy replaces the built-in one of the same id
    assert key.decrypt(b.get(cookie=cookie)) == SECRET
    b.service.close()


def test_a_malformed_attestation_burns_the_session_like_any_failed_attest(broker: Broker):
    broker.setup_release()
    cookie, hs, report_data = broker.auth()
    with pytest.raises(AttestationFailed, match=r"^attestation body: "):
        broker.service.rcar.attest(b'{"runtime-data": {}}', cookie, "t")
    with pytest.raises(AttestationFailed, match="nonce already used"):
        broker.service.rcar.attest(
            json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data)).encode(), cookie, "t"
        )


def test_expiry_of_sessions_and_tokens(broker: Broker):
    broker.setup_release()
    cookie, hs, report_data = broker.auth()
    broker.clock.now += 300
    with pytest.raises(TokenNotFound, match="expired"):
        broker.service.rcar.attest(
            json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data)).encode(), cookie, "t"
        )
    cookie, token, _ = broker.attest()
    broker.clock.now += 299
    broker.get(cookie=cookie)
    broker.clock.now += 1
    with pytest.raises(TokenNotFound, match="expired"):
        broker.get(cookie=cookie)
    with pytest.raises(TokenInvalid, match="expired"):
        broker.get(token=token)
    with pytest.raises(TokenNotFound):
        broker.get(cookie="not-a-session")
    with pytest.raises(TokenNotFound):
        broker.get()


def test_reference_values_expire_at_evaluation_time(broker: Broker):
    broker.setup_release()
    rv = broker.service.admin
    measurement = broker.world.identity.measurement.hex()
    rv.delete_reference_values(OPS, "software.measurement", None, "t")
    body = {"name": "software.measurement", "values": [measurement], "expires": broker.clock.now + 100}
    rv.add_reference_values(OPS, json.dumps(body).encode(), "t")
    cookie, _, key = broker.attest()
    assert key.decrypt(broker.get(cookie=cookie)) == SECRET
    broker.clock.now += 100  # the reference value is now expired: executables are unrecognized
    cookie, token, _ = broker.attest()
    claims = broker.service.deps.tokens.verify(token, broker.clock.now)
    assert claims["submods"]["cpu0"]["ear.trustworthiness-vector"]["executables"] == 33
    with pytest.raises(PolicyDeny):
        broker.get(cookie=cookie)
    listed = rv.list_reference_values(OPS, "software.measurement")
    assert [(v["value"], v["live"]) for v in listed] == [(measurement, False)]
    rv.add_reference_values(OPS, json.dumps({"name": "software.measurement", "values": [measurement]}).encode(), "t")
    assert (
        rv.expire_reference_values(OPS, "software.measurement", json.dumps({"at": broker.clock.now + 5}).encode(), "t")
        == 1
    )
    assert rv.list_reference_values(OPS, None)[0]["live"] is True
    assert rv.delete_reference_values(OPS, "software.measurement", measurement, "t") == 1
    assert rv.list_reference_values(OPS, None) == []


def test_policy_first_then_existence(broker: Broker):
    broker.setup_release()
    cookie, _, _ = broker.attest()
    with pytest.raises(ResourceNotFound):
        broker.get("default/key/missing", cookie=cookie)
    for path in ("tenant-a/key/db", "tenant-a/key/missing"):  # no policy covers tenant-a: 403 either way
        with pytest.raises(PolicyDeny):
            broker.get(path, cookie=cookie)
    denials = [(r.resource, r.outcome, r.detail) for r in broker.service.deps.storage.audit_log() if r.event == "deny"]
    assert denials == [
        ("default/key/missing", "not-found", "no such resource"),
        ("tenant-a/key/db", "denied", "no policy covers this path"),
        ("tenant-a/key/missing", "denied", "no policy covers this path"),
    ]


def test_one_attestation_wins_a_race(broker: Broker):
    broker.setup_release()
    cookie, hs, report_data = broker.auth()
    body = json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data)).encode()
    results: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            broker.service.rcar.attest(body, cookie, "t")
            results.append("token")
        except AttestationFailed:
            results.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["refused", "refused", "refused", "token"]


def test_no_secret_in_logs_or_audit(broker: Broker, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    broker.setup_release()
    cookie, token, key = broker.attest()
    jwe = broker.get(cookie=cookie, key="request-0001")
    with pytest.raises(PolicyDeny):
        broker.get("tenant-a/key/db", cookie=cookie)
    assert key.decrypt(jwe) == SECRET
    logged = caplog.text.encode()
    audit_file = (tmp_path / "audit.jsonl").read_bytes()
    audit_db = json.dumps([r.to_json() for r in broker.service.deps.storage.audit_log()]).encode()
    assert b'"event":"release"' in audit_file
    for blob in (logged, audit_file, audit_db):
        for secret in (SECRET, SECRET[:12], cookie.encode(), token.encode(), token.split(".")[2].encode()):
            assert secret not in blob


def test_refusals_are_audited_and_counted(broker: Broker):
    broker.setup_release()
    cookie, hs, report_data = broker.auth()
    body = json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data)).encode()
    broker.service.rcar.attest(body, cookie, "10.1.2.3")
    with pytest.raises(AttestationFailed):
        broker.service.rcar.attest(body, cookie, "10.1.2.3")
    attests = [(r.outcome, r.source, r.detail) for r in broker.service.deps.storage.audit_log() if r.event == "attest"]
    assert attests[0][:2] == ("ok", "10.1.2.3")
    assert attests[1][:2] == ("failed", "10.1.2.3")
    assert "nonce already used" in attests[1][2]
    m = broker.service.deps.metrics
    assert (
        m.attestation_successes.labels("software")._value.get(),
        m.attestation_failures.labels("software")._value.get(),
    ) == (1, 1)
