"""The collateral store: the documented cache layout, content classification, version selection, gaps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from inclavare.attestation import CollateralError, CollateralStore, Policy, verify

from .vectors import BY_ID, SETS, VECTORS, at, cli_args, evidence, run_cli, store

POLICY = Policy.genuine_only()


def test_every_sets_collateral_loads_from_a_saved_cache(tmp_path: Path) -> None:
    for s in SETS:
        cache = tmp_path / s["id"]
        direct = store(s)
        direct.save(str(cache))
        cached = CollateralStore.open(str(cache))
        assert len(cached.tcb_infos) == len(direct.tcb_infos)
        assert len(cached.crls) == len(direct.crls)
        assert len(cached.certificates) == len(direct.certificates)
        try:
            want = verify(evidence(s), at=at(s), collateral=direct, policy=POLICY)
        except Exception as exc:  # the same failure, from the cache
            with pytest.raises(type(exc), match=str(exc)[:40].replace("(", "\\(").replace("[", "\\[")):
                verify(evidence(s), at=at(s), collateral=cached, policy=POLICY)
            continue
        assert verify(evidence(s), at=at(s), collateral=cached, policy=POLICY) == want


def test_cache_layout(tmp_path: Path) -> None:
    store(BY_ID["sgx-gramine-ratls"]).save(str(tmp_path))
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert "intel/tcbinfo/sgx-00606A000000-20250815T050818Z.json" in names
    assert "intel/qeidentity/qe-20250815T043646Z.json" in names
    assert {n.split("-")[0] for n in names if n.startswith("intel/crl/")} == {"intel/crl/platform", "intel/crl/root"}
    assert all(n.endswith(".pem") for n in names if n.startswith("certs/"))
    body = (tmp_path / "intel/tcbinfo/sgx-00606A000000-20250815T050818Z.json").read_bytes()
    original = (VECTORS / "sgx/collateral-00606A000000-2025-08/sgx_tcbinfov3_00606a000000.json").read_bytes()
    assert body == original  # the PCS body is kept byte for byte


def test_cli_verifies_from_a_cache_directory(tmp_path: Path) -> None:
    s = BY_ID["tdx-azure"]
    store(s).save(str(tmp_path))
    rc, out, err = run_cli(
        "verify", str(VECTORS / s["files"]["quote"]), "--collateral", str(tmp_path), "--at", s["verify_at"]
    )
    assert rc == 0, err
    assert json.loads(out)["tcb"]["status"] == "OutOfDate"


def test_the_version_valid_at_the_instant_is_chosen() -> None:
    both = CollateralStore.from_files(
        [
            str(VECTORS / "tdx/go-tdx-guest/sample_tcbinfo_response_v5"),
            str(VECTORS / "tdx/dcap-qvl/tdx_quote_outdated_collateral.json"),
        ]
    )
    fmspc = bytes.fromhex("90C06F000000")
    assert len([t for t in both.tcb_infos if t.fmspc == fmspc]) == 2
    assert (
        both.tcb_info("TDX", fmspc, datetime(2026, 2, 10, tzinfo=UTC)).issue_date.day == 1
    )  # only the go-tdx-guest one
    assert both.tcb_info("TDX", fmspc, datetime(2026, 3, 1, tzinfo=UTC)).issue_date.day == 18  # both valid: newest
    assert both.tcb_info("TDX", fmspc, datetime(2026, 3, 10, tzinfo=UTC)).issue_date.day == 18  # only dcap-qvl's


def test_the_reissued_tcb_signing_certificate_is_chosen_by_instant() -> None:
    s = BY_ID["sgx-mobilecoin"]
    collateral = store(s)
    collateral.add_path(str(VECTORS / "roots/intel_tcb_signing_chain_2025.pem"))
    assert len(collateral.certificates_named("Intel SGX TCB Signing")) == 2
    result = verify(
        evidence(s),
        at=at(s),
        collateral=collateral,
        policy=Policy(accept_tcb_status=frozenset(POLICY.accept_tcb_status), accept_expired_collateral=True),
    )
    assert result.tcb.status.value == "SWHardeningNeeded"


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("tcb_info", "sgx tcb info: no SGX TCB info for FMSPC 00606A000000 in the collateral"),
        ("qe_identity", "sgx qe identity: no QE identity in the collateral"),
        ("pck_crl", "sgx pck crl: no CRL issued by 'Intel SGX PCK Platform CA'"),
        ("root_ca_crl", "sgx root ca crl: no CRL issued by 'Intel SGX Root CA'"),
        ("tcb_info_issuer_chain", "sgx tcb signing chain: no 'Intel SGX TCB Signing' certificate"),
    ],
)
def test_missing_collateral_is_named(drop: str, message: str) -> None:
    s = BY_ID["sgx-occlum"]
    paths = [
        VECTORS / p
        for role, v in s["files"].items()
        if role not in ("quote", drop)
        for p in ([v] if isinstance(v, str) else v)
    ]
    collateral = CollateralStore.from_files(str(p) for p in paths)
    with pytest.raises(CollateralError, match=message):
        verify(evidence(s), at=at(s), collateral=collateral, policy=POLICY)


def test_snp_without_a_vcek() -> None:
    s = BY_ID["snp-virtee-milan"]
    with pytest.raises(CollateralError, match="sev-snp vcek: no VCEK certificate in the collateral"):
        verify(evidence(s), at=at(s), collateral=CollateralStore(), policy=POLICY)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b'{"hello": 1}', "neither a PCS TCB info"),
        (b'{"tcbInfo": {}, "tcbInfo": {}, "signature": ""}', "duplicate key 'tcbInfo'"),
        (b'{"tcbInfo": {}, "signature": "00", "extra": 1}', "members must be exactly 'tcbInfo' and 'signature'"),
        (b"\x30\x03\x02\x01\x00", "not a valid X.509 certificate"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a valid PEM public key"),
        (b"-----BEGIN FOO-----\n", "holds no certificate, CRL or public key"),
    ],
)
def test_unclassifiable_files_are_refused(content: bytes, message: str) -> None:
    with pytest.raises(CollateralError, match=message):
        CollateralStore().add_bytes(content, "file")


def test_only_ed25519_public_keys_are_host_keys() -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(CollateralError, match="must be Ed25519 software-TEE host keys"):
        CollateralStore().add_bytes(pem, "key.pem")


def test_pcs_evaluation_data_numbers_are_skipped() -> None:
    collateral = CollateralStore()
    collateral.add_path(str(VECTORS / "sgx/collateral-00606A000000-2025-08"))
    assert len(collateral.tcb_infos) == 1
    assert len(collateral.qe_identities) == 1


def test_cli_cert_option_needs_certificates(tmp_path: Path) -> None:
    s = BY_ID["snp-gosev-milan"]
    args = cli_args(s)
    bogus = tmp_path / "x.der"
    bogus.write_bytes(b"not a certificate")
    rc, _, err = run_cli(*args, "--cert", str(bogus))
    assert rc == 1
    assert "not a valid X.509 certificate" in err
