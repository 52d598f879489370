"""VerifyPolicy: the genuine Gramine certificate (legacy OID), legacy rats-tls OIDs, callbacks."""

from __future__ import annotations

import hashlib

import pytest

from inclavare.attestation import CollateralStore, Policy, PolicyRejected, TcbStatus, VerificationFailed
from inclavare.attestation.hazmat import x509lite
from inclavare.attestation.ratls import VerifyPolicy, generate_key, issue
from inclavare.enclave.identity import EnclaveIdentity

from . import gramine
from .test_certificate import NOW
from .world import attester, self_signed, trusted_store


def genuine_policy(**kw: object) -> VerifyPolicy:
    return VerifyPolicy(Policy.genuine_only(), gramine.store(), clock=lambda: gramine.AT, **kw)  # type: ignore[arg-type]


def test_gramine_certificate_is_read_and_verified() -> None:
    result = genuine_policy().verify_certificate(gramine.CERT)
    spki = x509lite.load(gramine.CERT).spki
    assert result.bound_key == spki
    assert result.claims.report_data == hashlib.sha256(spki).digest() + bytes(32)
    assert result.claims.measurement.hex() == "f94ccbe6a504676b2edbefdcb8781a512913f7d8864c6f88592a843d0f9d4a66"
    assert result.tcb.status == TcbStatus.OUT_OF_DATE
    strict = VerifyPolicy(Policy(), gramine.store(), clock=lambda: gramine.AT)
    with pytest.raises(PolicyRejected, match="TCB status OutOfDate is not accepted"):
        strict.verify_certificate(gramine.CERT)


def test_legacy_rats_tls_oid_is_read_and_bound_by_sha256_of_the_key() -> None:
    key = generate_key()
    der = self_signed(key, {"1.2.840.113741.1337.6": gramine.QUOTE}, NOW.replace(year=2025), NOW)
    with pytest.raises(VerificationFailed, match=r"does not bind the certificate key \(SHA-256\(SPKI\) \|\| zeros\)"):
        genuine_policy().verify_certificate(der)


def test_callback_has_the_last_word() -> None:
    cert = issue(attester(), now=NOW)
    seen = []

    def refuse_debug_svn(claims) -> None:  # type: ignore[no-untyped-def]
        seen.append(claims.claims.svn)
        raise PolicyRejected("callback", "svn 5 is revoked by the operator")

    policy = VerifyPolicy(Policy(allow_software=True), trusted_store(), callback=refuse_debug_svn, clock=lambda: NOW)
    with pytest.raises(PolicyRejected, match="policy: callback: svn 5 is revoked by the operator"):
        policy.verify_certificate(cert.der)
    assert seen == [5]


def test_reference_values_map_onto_policy() -> None:
    cert = issue(attester(), now=NOW)
    store = trusted_store()
    ok = VerifyPolicy.reference_values(
        measurements=[b"M" * 32], signers=[b"S" * 32], min_svn=5, allow_software=True, collateral=store
    )
    ok = VerifyPolicy(ok.policy, store, clock=lambda: NOW)
    assert ok.verify_certificate(cert.der).claims.product_id == 1
    for kw, field in (
        ({"signers": [b"X" * 32]}, "signers"),
        ({"min_svn": 6}, "min_svn"),
        ({"allow_software": False}, "allow_software"),
    ):
        args = {"allow_software": True, "collateral": store, **kw}
        bad = VerifyPolicy.reference_values(**args)  # type: ignore[arg-type]
        with pytest.raises(PolicyRejected, match=f"policy: {field}: "):
            VerifyPolicy(bad.policy, store, clock=lambda: NOW).verify_certificate(cert.der)
    debug = issue(attester(EnclaveIdentity(b"D" * 32, b"S" * 32, 1, 1, True)), now=NOW)
    with pytest.raises(PolicyRejected, match="policy: allow_debug: the software evidence is from a debug TEE"):
        VerifyPolicy(Policy(allow_software=True), store, clock=lambda: NOW).verify_certificate(debug.der)
    assert VerifyPolicy(Policy(allow_software=True, allow_debug=True), store, clock=lambda: NOW).verify_certificate(
        debug.der
    )
    assert isinstance(ok.collateral, CollateralStore)
