"""SEV-SNP details the sets do not isolate: Turin chain and TCB layout, TCB and chip-id checks, policy bits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509

from inclavare.attestation import CollateralError, CollateralStore, VerificationFailed
from inclavare.attestation.hazmat import amd
from inclavare.attestation.hazmat.certs import load_certificates
from inclavare.attestation.hazmat.snp import decode_policy, decode_tcb, parse_report, product_from_cpuid
from inclavare.attestation.verifiers import snp

from .vectors import VECTORS

AT = datetime(2025, 6, 1, tzinfo=UTC)


def cert(path: str) -> x509.Certificate:
    return load_certificates((VECTORS / path).read_bytes(), path, VerificationFailed)[0]


def test_turin_vcek_chains_to_the_pinned_turin_ark() -> None:
    vcek = cert("snp/virtee/vcek_turin.der")
    store = CollateralStore.from_files([str(VECTORS / "snp/virtee/cert_chain_turin.pem")])
    assert snp._chain(vcek, store, AT, "VCEK") == "Turin"
    info = amd.cert_info(vcek, "vcek")
    assert info.product_name == "Turin"
    assert len(info.hwid or b"") == 8
    assert set(amd.tcb_fields("Turin")) <= set(info.spl)
    milan_only = CollateralStore.from_files([str(VECTORS / "roots/amd_milan_ask_ark.pem")])
    with pytest.raises(CollateralError, match="no 'SEV-Turin' certificate"):
        snp._chain(vcek, milan_only, AT, "VCEK")


def test_tcb_layouts() -> None:
    raw = bytes([1, 2, 3, 4, 5, 6, 7, 8])
    milan = decode_tcb(raw, "Milan")
    assert (milan.bootloader, milan.tee, milan.snp, milan.microcode, milan.fmc) == (1, 2, 7, 8, None)
    turin = decode_tcb(raw, "Turin")
    assert (turin.fmc, turin.bootloader, turin.tee, turin.snp, turin.microcode) == (1, 2, 3, 4, 8)
    assert product_from_cpuid((0x19, 0x01, 0x01)) == "Milan"
    assert product_from_cpuid((0x19, 0x11, 0x01)) == "Genoa"
    assert product_from_cpuid((0x1A, 0x02, 0x00)) == "Turin"
    assert product_from_cpuid(None) is None


def test_reported_tcb_and_chip_id_must_match_the_certificate() -> None:
    report = parse_report((VECTORS / "snp/trustee/test-report.bin").read_bytes())
    info = amd.cert_info(cert("snp/trustee/test-vcek.der"), "vcek")
    snp._tcb(report, info, "Milan", "VCEK")
    snp._chip_id(report, info)
    other = amd.cert_info(cert("snp/trustee/test-vcek-invalid-legacy.der"), "vcek")  # TCB and hwID changed
    with pytest.raises(VerificationFailed, match="sev-snp tcb: reported TCB snp 8 is not the VCEK's 10"):
        snp._tcb(report, other, "Milan", "VCEK")
    with pytest.raises(VerificationFailed, match="sev-snp chip id: CHIP_ID is not the VCEK's hwID"):
        snp._chip_id(report, other)
    masked = parse_report(report.raw[:0x48] + bytes([report.raw[0x48] | 2]) + report.raw[0x49:])
    with pytest.raises(VerificationFailed, match="CHIP_ID is masked"):
        snp._chip_id(masked, info)


def test_vlek_reports_have_no_chip_id_and_a_csp() -> None:
    report = parse_report((VECTORS / "snp/trustee/test-vlek-report.bin").read_bytes())
    info = amd.cert_info(cert("snp/trustee/test-vlek.der"), "vlek")
    assert report.signing_key == "VLEK"
    assert not any(report.chip_id)
    assert info.hwid is None
    assert info.csp_id == "CN=cc-us-east-2.amazonaws.com"


def test_policy_bits() -> None:
    p = decode_policy(0xB0000)
    assert (p.smt_allowed, p.debug_allowed, p.migrate_ma_allowed, p.single_socket) == (True, True, False, False)
    p = decode_policy(0x3001F)
    assert (p.abi_minor, p.abi_major, p.debug_allowed) == (0x1F, 0, False)
    assert decode_policy(1 << 25).page_swap_disabled
