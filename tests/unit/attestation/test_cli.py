"""``inclavare evidence``: inspect, format detection (binary, hex, base64, PEM), trailing bytes, usage errors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from inclavare.attestation import EvidenceFormatError, EvidenceKind, Policy, VerificationFailed, detect, inspect, verify
from inclavare.attestation.hazmat import hcl
from inclavare.attestation.hazmat.quote import parse_quote

from .vectors import BY_ID, SETS, VECTORS, at, cli_args, evidence, evidence_path, run_cli, store

KINDS = {"sgx": "sgx-quote", "tdx": "tdx-quote", "aws-nitro": "nitro-document"}


@pytest.mark.parametrize("set_id", [s["id"] for s in SETS])
def test_inspect_every_set(set_id: str) -> None:
    s = BY_ID[set_id]
    rc, out, err = run_cli("inspect", str(evidence_path(s)))
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["verified"] is False
    offset = s["files"].get("report_offset")
    assert doc["kind"] == KINDS.get(s["tee"], "azure-hcl-report" if offset else "snp-report")
    if s["tee"] in ("sgx", "tdx"):
        assert doc["trailing_bytes"] == s["decoded"]["trailing_bytes_after_signature_data"]
        assert doc["body"]["report_data"] == s["decoded"]["body"]["report_data"]


def test_text_encodings_are_detected(tmp_path: Path) -> None:
    b64 = VECTORS / "nitro/evervault/valid-attestation-doc-base64"
    rc, out, err = run_cli("verify", str(b64), "--at", BY_ID["nitro-evervault-ga"]["verify_at"])
    assert rc == 0, err
    assert json.loads(out)["claims"]["module_id"] == "i-0918f6c55e3b61d89-enc018aa8b8e2285d13"
    virtee = BY_ID["snp-virtee-milan"]
    args = cli_args(virtee)
    args[1] = str(VECTORS / "snp/virtee/report_milan.hex")
    rc, _, err = run_cli(*args)
    assert rc == 0, err


def test_trailing_zero_padding_is_accepted_but_anything_else_is_not() -> None:
    s = BY_ID["tdx-gotdx-cos113"]  # a 4935-byte quote in an 8000-byte zero-padded buffer
    padded = evidence(s)
    quote = parse_quote(padded)
    assert len(quote.raw) == 4935
    assert len(quote.trailing) == 3065
    verify(padded, at=at(s), collateral=store(s), policy=Policy.genuine_only())
    for tail in (b"\x01", b"\0" * 100 + b"x"):
        with pytest.raises(EvidenceFormatError, match="bytes after the end of the quote are not all zero"):
            verify(quote.raw + tail, at=at(s), collateral=store(s), policy=Policy.genuine_only())
    snp = BY_ID["snp-gosev-milan"]
    verify(evidence(snp) + bytes(16), at=at(snp), collateral=store(snp), policy=Policy.genuine_only())
    with pytest.raises(EvidenceFormatError, match="sev-snp report: 1 bytes after the report are not all zero"):
        verify(evidence(snp) + b"!", at=at(snp), collateral=store(snp), policy=Policy.genuine_only())


def test_inner_lengths_must_add_up() -> None:
    data = bytearray(evidence(BY_ID["sgx-dcapqvl"]))
    data[432:436] = (int.from_bytes(data[432:436], "little") + 1).to_bytes(4, "little")  # sig_data_len one too long
    with pytest.raises(EvidenceFormatError, match="1 unexpected bytes after the last field"):
        parse_quote(bytes(data) + b"\0")
    data[432:436] = (int.from_bytes(data[432:436], "little") - 2).to_bytes(4, "little")  # one too short
    with pytest.raises(EvidenceFormatError, match="truncated at offset"):
        parse_quote(bytes(data))


def test_azure_tdx_hcl_report_binds_the_td_quote_but_is_not_evidence_itself() -> None:
    report = hcl.parse_hcl_report((VECTORS / "tdx/azure/hcl-report.bin").read_bytes())
    quote = parse_quote(evidence(BY_ID["tdx-azure"]))
    assert report.report_type == hcl.REPORT_TYPE_TDX
    assert hcl.binds(report, quote.body.report_data)
    assert not hcl.binds(report, quote.body.report_data[:63] + b"\1")
    with pytest.raises(EvidenceFormatError, match="verify the TD quote instead"):
        verify(
            (VECTORS / "tdx/azure/hcl-report.bin").read_bytes(),
            at=at(BY_ID["tdx-azure"]),
            collateral=store(BY_ID["tdx-azure"]),
            policy=Policy.genuine_only(),
        )


def test_azure_snp_hcl_binding_is_checked() -> None:
    s = BY_ID["snp-azure-milan"]
    data = bytearray(evidence(s))
    data[0x4D4 + 2] ^= 1  # change the runtime data JSON (not covered by the SNP signature)
    with pytest.raises(
        VerificationFailed, match="azure hcl report: REPORT_DATA is not the hash of the HCL runtime data"
    ):
        verify(bytes(data), at=at(s), collateral=store(s), policy=Policy.genuine_only())
    result = verify(evidence(s), at=at(s), collateral=store(s), policy=Policy.genuine_only())
    assert result.claims.host_runtime_data.startswith(b'{"keys":[{"kid":"HCLAkPub"')


def test_unknown_formats_and_naive_instants() -> None:
    with pytest.raises(EvidenceFormatError, match="evidence: unrecognised format"):
        detect(b"hello world")
    assert detect(evidence(BY_ID["snp-virtee-milan"])) == EvidenceKind.SNP_REPORT
    s = BY_ID["tdx-dcapqvl"]
    with pytest.raises(VerificationFailed, match="must be timezone-aware"):
        verify(evidence(s), at=datetime(2025, 7, 1), collateral=store(s), policy=Policy.genuine_only())
    assert inspect(evidence(s))["kind"] == "tdx-quote"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify"], "the following arguments are required: file"),
        (["verify", "x", "--at", "yesterday"], None),
        (["nope"], "invalid choice"),
    ],
)
def test_usage_errors(args: list[str], message: str | None, tmp_path: Path) -> None:
    if message is None:
        (tmp_path / "x").write_bytes(evidence(BY_ID["tdx-dcapqvl"]))
        args = ["verify", str(tmp_path / "x"), "--at", "yesterday"]
        message = "--at: 'yesterday' is not an RFC 3339 time"
    rc, out, err = run_cli(*args)
    assert rc == 1
    assert out == ""
    assert message in err
    assert err.count("\n") == 1


def test_missing_file_and_naive_at(tmp_path: Path) -> None:
    rc, _, err = run_cli("verify", str(tmp_path / "absent"))
    assert rc == 1
    assert "No such file or directory" in err
    (tmp_path / "q").write_bytes(evidence(BY_ID["tdx-dcapqvl"]))
    rc, _, err = run_cli("verify", str(tmp_path / "q"), "--at", "2025-07-01T00:00:00")
    assert "needs a time zone" in err


def test_evidence_objects_cannot_be_relabelled() -> None:
    from inclavare.attestation import Evidence

    s = BY_ID["tdx-dcapqvl"]
    ok = verify(
        Evidence(EvidenceKind.TDX_QUOTE, evidence(s)), at=at(s), collateral=store(s), policy=Policy.genuine_only()
    )
    assert ok.kind == EvidenceKind.TDX_QUOTE
    with pytest.raises(EvidenceFormatError, match="declared sgx-quote but the bytes are a tdx-quote"):
        verify(
            Evidence(EvidenceKind.SGX_QUOTE, evidence(s)), at=at(s), collateral=store(s), policy=Policy.genuine_only()
        )
