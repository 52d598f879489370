"""The public surface of inclavare.attestation is small and deliberate (pinned here)."""

from __future__ import annotations

import importlib.util
import inspect as pyinspect

import inclavare.attestation as att
from inclavare.attestation import software
from inclavare.attestation.verifiers import REGISTRY


def test_no_export_is_shadowed_by_a_submodule() -> None:
    """Names are loaded lazily (PEP 562 __getattr__): a submodule with an
    exported name would replace it on the package once anything imports that
    submodule, and `from inclavare.attestation import detect` would then give
    a module (this broke when detect() lived in detect.py)."""
    for name in att.__all__:
        assert importlib.util.find_spec(f"inclavare.attestation.{name}") is None, name


def test_exported_names() -> None:
    assert sorted(att.__all__) == sorted(
        [
            "REPORT_DATA_SIZE",
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
            "VerifierFault",
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
