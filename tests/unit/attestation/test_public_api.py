"""The public surface of inclavare.attestation is small and deliberate (pinned here)."""

from __future__ import annotations

import inspect as pyinspect

import inclavare.attestation as att
from inclavare.attestation import software
from inclavare.attestation.verifiers import REGISTRY


def test_exported_names() -> None:
    assert sorted(att.__all__) == sorted(
        [
            "AttestationError",
            "CollateralError",
            "CollateralExpired",
            "CollateralStore",
            "Evidence",
            "EvidenceFormatError",
            "EvidenceKind",
            "NitroClaims",
            "Policy",
            "PolicyFileError",
            "PolicyRejected",
            "Role",
            "SgxClaims",
            "SnpClaims",
            "SoftwareClaims",
            "TcbResult",
            "TcbStatus",
            "TdxClaims",
            "Tee",
            "VerificationFailed",
            "VerifiedClaims",
            "detect",
            "inspect",
            "verify",
        ]
    )
    for name in att.__all__:
        assert hasattr(att, name), name


def test_verify_takes_time_collateral_and_policy_by_keyword() -> None:
    params = pyinspect.signature(att.verify).parameters
    assert list(params) == ["evidence", "at", "collateral", "policy"]
    assert all(params[p].kind is pyinspect.Parameter.KEYWORD_ONLY for p in ("at", "collateral", "policy"))
    assert all(params[p].default is pyinspect.Parameter.empty for p in params)


def test_software_module_api_for_the_attester_side() -> None:
    assert {"encode_report", "decode_report", "verify_report", "host_key_id"} <= set(dir(software))
    assert list(pyinspect.signature(software.encode_report).parameters) == [
        "measurement", "signer", "product_id", "svn", "debug", "report_data", "host_key",
    ]  # fmt: skip


def test_every_evidence_kind_has_a_verifier() -> None:
    assert set(REGISTRY) == set(att.EvidenceKind)
    assert all(REGISTRY[kind].kind == kind for kind in REGISTRY)


def test_every_error_is_an_attestation_error() -> None:
    for name in (
        "CollateralError",
        "CollateralExpired",
        "EvidenceFormatError",
        "PolicyFileError",
        "PolicyRejected",
        "VerificationFailed",
    ):
        assert issubclass(getattr(att, name), att.AttestationError)
