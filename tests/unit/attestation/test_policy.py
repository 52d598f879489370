"""The appraisal policy: loading (JSON/TOML), strict defaults and every reference-value check."""

from __future__ import annotations

from pathlib import Path

import pytest

from inclavare.attestation import Policy, PolicyFileError, PolicyRejected, TcbStatus, Tee, verify
from inclavare.attestation.errors import CollateralExpired

from .vectors import BY_ID, at, evidence, store

SGX = BY_ID["sgx-dcapqvl"]  # ConfigurationAndSWHardeningNeeded, not debug
MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
OK_STATUS = ["ConfigurationAndSWHardeningNeeded"]


def check(s: dict, **policy: object) -> None:
    verify(evidence(s), at=at(s), collateral=store(s), policy=Policy.from_mapping(policy, "test"))


def test_default_policy_is_strict() -> None:
    p = Policy()
    assert p.accept_tcb_status == {TcbStatus.UP_TO_DATE}
    assert not p.allow_debug
    assert not p.allow_software
    with pytest.raises(PolicyRejected, match="TCB status ConfigurationAndSWHardeningNeeded is not accepted"):
        verify(evidence(SGX), at=at(SGX), collateral=store(SGX), policy=p)


def test_reference_values_accept_the_genuine_enclave() -> None:
    check(SGX, accept_tcb_status=OK_STATUS, measurements=[MRENCLAVE], signers=[MRSIGNER], min_svn=0, product_ids=[0],
          report_data=b"Hello, world!".hex(), tees=["sgx"])  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"measurements": ["00" * 32]}, "measurements: sgx measurement 33d8"),
        ({"signers": ["00" * 32]}, "signers: sgx signer 815f"),
        ({"min_svn": 1}, "min_svn: sgx SVN 0 is below 1"),
        ({"product_ids": [1]}, "product_ids: sgx product id 0"),
        ({"report_data": b"Hello".hex() + "00"}, "report_data: sgx REPORT_DATA is not the expected value"),
        ({"tees": ["tdx"]}, "tees: sgx evidence is not accepted"),
    ],
)
def test_each_reference_value_can_reject(policy: dict, message: str) -> None:
    with pytest.raises(PolicyRejected, match=message):
        check(SGX, accept_tcb_status=OK_STATUS, **policy)


def test_debug_evidence_needs_allow_debug() -> None:
    occlum = BY_ID["sgx-occlum"]  # DEBUG attribute set, TCB OutOfDate
    with pytest.raises(PolicyRejected, match="allow_debug: the sgx evidence is from a debug TEE"):
        check(occlum, accept_tcb_status=["OutOfDate"])
    check(occlum, accept_tcb_status=["OutOfDate"], allow_debug=True)
    snp = BY_ID["snp-gosev-milan"]  # guest policy allows debugging
    with pytest.raises(PolicyRejected, match="allow_debug"):
        check(snp)
    check(snp, allow_debug=True, measurements=[s for s in [evidence(snp)[0x90:0xC0].hex()]])


def test_tdx_and_nitro_have_no_signer_or_svn() -> None:
    tdx = BY_ID["tdx-dcapqvl"]
    with pytest.raises(PolicyRejected, match="signers: tdx signer \\(none\\)"):
        check(tdx, signers=["00" * 32])
    with pytest.raises(PolicyRejected, match="min_svn: tdx SVN None"):
        check(tdx, min_svn=0)
    nitro = BY_ID["nitro-evervault-prod-2022"]
    with pytest.raises(PolicyRejected, match="report_data: aws-nitro evidence carries no report data"):
        check(nitro, report_data="00")


def test_expired_collateral_is_a_verification_failure_unless_accepted() -> None:
    mobilecoin = BY_ID["sgx-mobilecoin"]
    with pytest.raises(CollateralExpired, match="sgx collateral: expired at the verification instant: pck crl"):
        check(mobilecoin, accept_tcb_status=["SWHardeningNeeded"])
    check(mobilecoin, accept_tcb_status=["SWHardeningNeeded"], accept_expired_collateral=True)


def test_files_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('accept_tcb_status = ["UpToDate", "OutOfDate"]\ntees = ["tdx"]\nmin_svn = 2\n')
    p = Policy.load(str(tmp_path / "p.toml"))
    assert p.accept_tcb_status == {TcbStatus.UP_TO_DATE, TcbStatus.OUT_OF_DATE}
    assert p.tees == {Tee.TDX}
    assert p.min_svn == 2
    (tmp_path / "p.json").write_text('{"allow_software": true, "signers": ["ab"]}')
    q = Policy.load(str(tmp_path / "p.json"))
    assert q.allow_software
    assert q.signers == {b"\xab"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('colour = "blue"', "unknown key 'colour'"),
        ('accept_tcb_status = ["Revoked"]', "Revoked can never be accepted"),
        ('accept_tcb_status = ["Fine"]', "'Fine' is not one of"),
        ("allow_debug = 1", "allow_debug: must be true or false"),
        ('measurements = ["zz"]', "measurements: must be a list of hex strings"),
        ("min_svn = -1", "min_svn: must be a non-negative integer"),
        ('report_data = "' + "00" * 65 + '"', "report_data: longer than 64 bytes"),
        ("not toml [", "malformed policy file"),
    ],
)
def test_bad_policy_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PolicyFileError, match=message):
        Policy.load(str(path))


def test_missing_policy_file() -> None:
    with pytest.raises(PolicyFileError, match="No such file"):
        Policy.load("/nonexistent/policy.toml")
