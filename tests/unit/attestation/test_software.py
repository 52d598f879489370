"""Software evidence: the published format, its verifier and the policy gate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from inclavare.attestation import (
    CollateralError,
    CollateralStore,
    EvidenceFormatError,
    EvidenceKind,
    Policy,
    PolicyRejected,
    Tee,
    VerificationFailed,
    detect,
    verify,
)
from inclavare.attestation.software import PROTECTED, decode_report, encode_report, host_key_id, verify_report

from .vectors import run_cli

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
AT = datetime(2026, 1, 1, tzinfo=UTC)
ALLOW = Policy(allow_software=True, allow_debug=True)


def report(**overrides: object) -> bytes:
    fields: dict = {
        "measurement": bytes(range(32)),
        "signer": bytes(32 * [0xAB]),
        "product_id": 513,
        "svn": 7,
        "debug": False,
        "report_data": b"nonce".ljust(64, b"\0"),
        "host_key": KEY,
    }
    return encode_report(**{**fields, **overrides})


def trusted(*keys: Ed25519PrivateKey) -> CollateralStore:
    store = CollateralStore()
    for key in keys:
        store.add_host_key(key.public_key())
    return store


def test_layout_is_the_documented_one() -> None:
    data = report()
    assert data[:10] == bytes.fromhex("d28443a10127a059012a")  # tag 18, [h'A10127', {}, bstr(298) ...
    assert len(data) == 76 + 298
    assert data[-66:-64] == b"\x58\x40"
    payload = cbor2.loads(data).value[2]
    assert payload[:5] == b"\xa8\x63svn"
    assert list(cbor2.loads(payload)) == [
        "svn", "format", "signer", "attributes", "product_id", "host_key_id", "measurement", "report_data",
    ]  # fmt: skip
    assert PROTECTED == b"\xa1\x01\x27"


def test_round_trip_and_claims() -> None:
    data = report(debug=True)
    assert detect(data) == EvidenceKind.SOFTWARE
    decoded = decode_report(data)
    assert (decoded.product_id, decoded.svn, decoded.debug, decoded.software) == (513, 7, True, True)
    assert decoded.host_key_id == host_key_id(KEY.public_key())
    result = verify(data, at=AT, collateral=trusted(OTHER, KEY), policy=ALLOW)
    assert result.tee == Tee.SOFTWARE
    assert result.tcb.status is None
    assert result.claims.measurement == bytes(range(32))
    assert result.claims.debug is True


def test_software_evidence_needs_an_explicit_policy() -> None:
    with pytest.raises(PolicyRejected, match="software evidence is not accepted by this policy"):
        verify(report(), at=AT, collateral=trusted(KEY), policy=Policy())
    with pytest.raises(PolicyRejected, match="software evidence is not accepted by this policy"):
        verify(report(), at=AT, collateral=trusted(KEY), policy=Policy.genuine_only())


def test_untrusted_or_missing_host_key_is_rejected() -> None:
    with pytest.raises(VerificationFailed, match="is not a trusted software-TEE host key"):
        verify(report(), at=AT, collateral=trusted(OTHER), policy=ALLOW)
    with pytest.raises(CollateralError, match="no trusted software-TEE host keys"):
        verify(report(), at=AT, collateral=CollateralStore(), policy=ALLOW)


def test_every_byte_is_covered() -> None:
    data = report()
    for offset in range(len(data)):
        changed = data[:offset] + bytes([data[offset] ^ 0x04]) + data[offset + 1 :]
        with pytest.raises((EvidenceFormatError, VerificationFailed)):
            verify_report(changed, [KEY.public_key()])


def test_a_key_swap_is_detected() -> None:
    forged = report(host_key=OTHER)  # signed by OTHER, so it names OTHER's key id
    with pytest.raises(VerificationFailed):
        verify_report(forged, [KEY.public_key()])
    item = cbor2.loads(forged)
    resigned = cbor2.dumps(cbor2.CBORTag(18, [item.value[0], {}, cbor2.loads(report()).value[2], item.value[3]]))
    with pytest.raises(VerificationFailed, match="signature does not verify"):
        verify_report(resigned, [KEY.public_key(), OTHER.public_key()])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(svn=70000), "svn must be an integer"),
        (lambda p: p.update(format="other/1"), "format"),
        (lambda p: p.update(attributes={"debug": False, "software": False}), "attributes"),
        (lambda p: p.update(report_data=b"short"), "report_data must be 64 bytes"),
        (lambda p: p.update(extra=1), "exactly the keys"),
    ],
)
def test_malformed_payloads_are_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    payload = dict(cbor2.loads(cbor2.loads(report()).value[2]))
    change(payload)
    raw = cbor2.dumps(cbor2.CBORTag(18, [PROTECTED, {}, cbor2.dumps(payload, canonical=True), b"\0" * 64]))
    with pytest.raises(EvidenceFormatError, match=message):
        decode_report(raw)


def test_non_deterministic_encodings_are_refused() -> None:
    item = cbor2.loads(report()).value
    payload = cbor2.loads(item[2])
    unsorted = cbor2.dumps(dict(reversed(list(payload.items()))))
    with pytest.raises(EvidenceFormatError):
        decode_report(cbor2.dumps(cbor2.CBORTag(18, [PROTECTED, {}, unsorted, item[3]])))
    untagged = cbor2.dumps(list(item))
    with pytest.raises(EvidenceFormatError, match="tag 18"):
        decode_report(untagged)


def test_cli_with_a_policy_file_and_a_host_key_file(tmp_path: Path) -> None:
    (tmp_path / "ev.cbor").write_bytes(report())
    key = KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "host.pem").write_bytes(key)
    (tmp_path / "policy.json").write_text(
        json.dumps({"allow_software": True, "measurements": [bytes(range(32)).hex()]})
    )
    args = [
        "verify",
        str(tmp_path / "ev.cbor"),
        "--collateral",
        str(tmp_path / "host.pem"),
        "--at",
        "2026-01-01T00:00:00Z",
    ]
    rc, _, err = run_cli(*args)
    assert rc == 1
    assert err == "inclavare evidence: policy: allow_software: software evidence is not accepted by this policy\n"
    rc, out, err = run_cli(*args, "--policy", str(tmp_path / "policy.json"))
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["tee"] == "software"
    assert doc["claims"]["software"] is True
    assert doc["claims"]["product_id"] == 513
