"""The software attester and the attester registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inclavare.attestation import CollateralStore, EvidenceKind, Policy, PolicyRejected, Tee, verify
from inclavare.attestation.attesters import (
    REGISTRY,
    Attester,
    AttesterError,
    AttesterOptions,
    SoftwareAttester,
    create,
)
from inclavare.enclave.identity import EnclaveIdentity, HostKey

IDENTITY = EnclaveIdentity(measurement=b"m" * 32, signer=b"s" * 32, isv_prod_id=7, isv_svn=3, debug=False)
KEY = HostKey.from_seed(bytes(range(32)))
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_software_evidence_is_deterministic_and_verifies() -> None:
    attester: Attester = create("software", AttesterOptions(identity=IDENTITY, host_key=KEY))
    assert isinstance(attester, SoftwareAttester)
    assert attester.tee == Tee.SOFTWARE
    rd = bytes(range(64))
    evidence = attester.collect_evidence(rd)
    assert evidence.kind == EvidenceKind.SOFTWARE
    assert evidence == attester.collect_evidence(rd)  # Ed25519 is deterministic (RFC 8032 5.1.6)
    assert evidence != attester.collect_evidence(bytes(64))
    store = CollateralStore()
    store.add_host_key(KEY.public_key)
    result = verify(evidence, at=NOW, collateral=store, policy=Policy(allow_software=True))
    claims = result.claims
    assert (claims.measurement, claims.signer, claims.svn, claims.product_id) == (b"m" * 32, b"s" * 32, 3, 7)
    assert claims.report_data == rd
    with pytest.raises(PolicyRejected, match="allow_software"):
        verify(evidence, at=NOW, collateral=store, policy=Policy())
    assert "SoftwareAttester(measurement=6d6d6d6d6d6d6d6d..." in repr(attester)


def test_registry_names_aliases_and_errors() -> None:
    assert sorted(REGISTRY) == ["sev-snp", "sgx", "software", "tdx"]
    with pytest.raises(
        AttesterError, match=r"^attester 'nullattester': unknown \(known: software, sgx, tdx, sev-snp\)$"
    ):
        create("nullattester")
    with pytest.raises(AttesterError, match="software attester: needs the identity of a signed enclave"):
        create("software")
    with pytest.raises(AttesterError, match=r"^software attester: needs the host's software-TEE key$"):
        create("software", AttesterOptions(identity=IDENTITY))  # the caller chooses the key file, not this layer
    with pytest.raises(AttesterError, match="report data must be 64 bytes, not 0"):
        SoftwareAttester(IDENTITY, KEY).collect_evidence(b"")
