"""Tampering is rejected: flipped bytes in every signed region, swapped certificates, instants outside windows.

Offsets are sampled deterministically (evenly spaced, first and last byte
included) so failures reproduce exactly.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from inclavare.attestation import AttestationError, CollateralStore, Policy, VerificationFailed, verify
from inclavare.attestation.collateral import CollateralStore as Store
from inclavare.attestation.hazmat.quote import parse_quote

from .vectors import BY_ID, VECTORS, at, evidence, store

POLICY = Policy.genuine_only()
SECOND = timedelta(seconds=1)


def offsets(start: int, end: int, n: int = 10) -> list[int]:
    if end - start <= n:
        return list(range(start, end))
    return sorted({start + (end - 1 - start) * i // (n - 1) for i in range(n)})


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def rejected(data: bytes, s: dict, collateral: CollateralStore | None = None, when: datetime | None = None) -> str:
    with pytest.raises(AttestationError) as info:
        verify(data, at=when or at(s), collateral=collateral or store(s), policy=POLICY)
    return str(info.value)


def quote_regions(data: bytes) -> dict[str, tuple[int, int]]:
    q = parse_quote(data)
    so = len(q.signed_data) + 4  # signature data starts after sig_data_len
    qe = so + 128 + (6 if q.header.version >= 4 else 0)
    auth = qe + 384 + 64 + 2
    cert = auth + len(q.qe_auth_data) + 6
    return {
        "header": (0, 48),
        "body": (len(q.signed_data) - len(q.body.raw), len(q.signed_data)),
        "quote signature": (so, so + 64),
        "attestation key": (so + 64, so + 128),
        "qe report": (qe, qe + 384),
        "qe report signature": (qe + 384, qe + 448),
        "qe auth data": (auth, auth + len(q.qe_auth_data)),
        "pck chain": (cert, cert + len(q.cert_data)),
    }


REASONS = {
    "body": "quote signature does not verify",
    "quote signature": "quote signature does not verify",
    "attestation key": "QE report data is not SHA-256",
    "qe report": "QE report signature does not verify",
    "qe report signature": "QE report signature does not verify",
    "qe auth data": "QE report data is not SHA-256",
}


@pytest.mark.parametrize("set_id", ["sgx-dcapqvl", "tdx-dcapqvl", "tdx-gotdx-v5"])
@pytest.mark.parametrize("region", ["header", "body", *REASONS.keys() - {"body"}, "pck chain"])
def test_flipping_a_quote_byte_is_rejected(set_id: str, region: str) -> None:
    s = BY_ID[set_id]
    data = evidence(s)
    collateral = store(s)
    verify(data, at=at(s), collateral=collateral, policy=POLICY)  # the untouched quote verifies
    start, end = quote_regions(data)[region]
    for offset in offsets(start, end):
        message = rejected(flip(data, offset), s, collateral)
        if region in REASONS:
            assert REASONS[region] in message, (offset, message)


@pytest.mark.parametrize("set_id", ["sgx-gramine-ratls", "tdx-gotdx-cos113"])
def test_flipping_signed_collateral_bytes_is_rejected(set_id: str) -> None:
    s = BY_ID[set_id]
    for role in ("tcb_info", "qe_identity", "pck_crl", "root_ca_crl"):
        original = (VECTORS / s["files"][role]).read_bytes()
        others = [
            VECTORS / p
            for r, v in s["files"].items()
            if r not in (role, "quote")
            for p in ([v] if isinstance(v, str) else v)
        ]
        for offset in offsets(0, len(original), 8):
            with pytest.raises(AttestationError):
                _verify_with_changed(s, others, flip(original, offset))


def _verify_with_changed(s: dict, others: list, changed: bytes) -> None:
    """Loading the changed collateral may already fail (malformed); otherwise verification must."""
    collateral = Store.from_files(str(p) for p in others)
    collateral.add_bytes(changed, "changed")
    verify(evidence(s), at=at(s), collateral=collateral, policy=POLICY)


@pytest.mark.parametrize("set_id", ["snp-trustee-milan", "snp-trustee-vlek-aws", "snp-azure-genoa"])
def test_flipping_snp_report_bytes_is_rejected(set_id: str) -> None:
    s = BY_ID[set_id]
    data = evidence(s)
    base = s["files"]["report_offset"]
    collateral = store(s)
    for offset in offsets(base, base + 0x2A0, 24):
        message = rejected(flip(data, offset), s, collateral)
        if 0x50 <= offset - base < 0x180:  # report data, measurement, host data, digests, report ids
            assert "sev-snp report signature: does not verify" in message
    for offset in offsets(base + 0x2A0, base + 0x4A0, 12):  # r, s and the unsigned padding
        rejected(flip(data, offset), s, collateral)


@pytest.mark.parametrize("set_id", ["nitro-evervault-ga", "nitro-evervault-prod-2022"])
def test_flipping_nitro_document_bytes_is_rejected(set_id: str) -> None:
    s = BY_ID[set_id]
    data = evidence(s)
    for offset in offsets(0, len(data), 40):
        rejected(flip(data, offset), s, CollateralStore())


# -- swapped certificates -------------------------------------------------------------------


def with_pck_chain(quote: bytes, pem: bytes) -> bytes:
    """A v3 quote with its certification data replaced (length fields fixed; signatures untouched)."""
    q = parse_quote(quote)
    cert = quote_regions(quote)["pck chain"][0]
    head = quote[: cert - 4] + struct.pack("<I", len(pem)) + pem
    sig_len = len(head) - len(q.signed_data) - 4
    return q.signed_data + struct.pack("<I", sig_len) + head[len(q.signed_data) + 4 :]


def pem_chain(quote: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(parse_quote(quote).cert_data.rstrip(b"\0"))


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def test_swapped_pck_leaf_fails_the_qe_report_signature() -> None:
    s = BY_ID["sgx-dcapqvl"]
    leaf, ca, root = pem_chain(evidence(s))
    other_leaf = pem_chain(evidence(BY_ID["sgx-mobilecoin"]))[0]
    verify(with_pck_chain(evidence(s), pem(leaf, ca, root)), at=at(s), collateral=store(s), policy=POLICY)
    message = rejected(with_pck_chain(evidence(s), pem(other_leaf, ca, root)), s)
    assert "QE report signature does not verify under the PCK certificate" in message


def test_swapped_pck_ca_or_root_breaks_the_chain() -> None:
    s = BY_ID["sgx-dcapqvl"]
    leaf, _, root = pem_chain(evidence(s))
    platform_ca = x509.load_pem_x509_certificates((VECTORS / "roots/intel_pck_platform_ca_chain.pem").read_bytes())[0]
    assert "is not signed by" in rejected(with_pck_chain(evidence(s), pem(leaf, platform_ca, root)), s)
    message = rejected(with_pck_chain(evidence(s), pem(leaf, platform_ca, platform_ca)), s)
    assert "root certificate in the quote is not the pinned Intel SGX Root CA" in message


def test_snp_report_with_another_chips_vcek_fails_the_signature() -> None:
    s = BY_ID["snp-trustee-milan"]
    other = Store.from_files([str(VECTORS / "snp/virtee/vcek_milan.der"), str(VECTORS / "roots/amd_milan_ask_ark.pem")])
    assert "sev-snp report signature: does not verify under the VCEK" in rejected(evidence(s), s, other)


def test_snp_vcek_with_the_wrong_intermediate_is_rejected() -> None:
    s = BY_ID["snp-trustee-milan"]
    genoa = Store.from_files([str(VECTORS / "snp/trustee/test-vcek.der"), str(VECTORS / "roots/amd_genoa_ask_ark.pem")])
    assert "no 'SEV-Milan' certificate" in rejected(evidence(s), s, genoa)
    vlek_chain = Store.from_files(
        [str(VECTORS / "snp/trustee/test-vlek.der"), str(VECTORS / "roots/amd_milan_ask_ark.pem")]
    )
    assert "no 'SEV-VLEK-Milan' certificate" in rejected(evidence(BY_ID["snp-trustee-vlek-aws"]), s, vlek_chain)


def _renitro(data: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    cose = cbor2.loads(data)
    payload = cbor2.loads(cose[2])
    change(payload)
    cose[2] = cbor2.dumps(payload)
    return cbor2.dumps(cose)


def test_nitro_cabundle_swaps_break_the_chain() -> None:
    s = BY_ID["nitro-evervault-ga"]
    data = evidence(s)

    def swap(p: dict) -> None:
        p["cabundle"][1], p["cabundle"][2] = p["cabundle"][2], p["cabundle"][1]

    assert "nitro chain" in rejected(_renitro(data, swap), s, CollateralStore())

    def foreign_root(p: dict) -> None:
        p["cabundle"][0] = p["cabundle"][1]

    assert "cabundle[0] is not the pinned AWS Nitro Enclaves root G1" in rejected(
        _renitro(data, foreign_root), s, CollateralStore()
    )

    def other_leaf(p: dict) -> None:
        p["certificate"] = cbor2.loads(cbor2.loads(evidence(BY_ID["nitro-evervault-prod-2022"]))[2])["certificate"]

    assert "nitro chain" in rejected(_renitro(data, other_leaf), s, CollateralStore())


# -- instants outside validity windows -------------------------------------------------------


def _intel_windows(s: dict) -> list[tuple[str, datetime, datetime]]:
    collateral = store(s)
    windows = [("tcb info", t.issue_date, t.next_update) for t in collateral.tcb_infos]
    windows += [("qe identity", q.issue_date, q.next_update) for q in collateral.qe_identities]
    windows += [("crl", c.last_update_utc, c.next_update_utc) for c in collateral.crls]  # type: ignore[misc]
    certs = pem_chain(evidence(s))[:2] + collateral.certificates_named("Intel SGX TCB Signing")
    windows += [(c.subject.rfc4514_string(), c.not_valid_before_utc, c.not_valid_after_utc) for c in certs]
    return windows


@pytest.mark.parametrize("set_id", ["sgx-dcapqvl", "tdx-gotdx-cos113", "sgx-gramine-ratls"])
def test_instants_outside_each_intel_window_are_rejected(set_id: str) -> None:
    s = BY_ID[set_id]
    collateral = store(s)
    for what, start, end in _intel_windows(s):
        for when in (start - SECOND, end + SECOND):
            with pytest.raises(AttestationError):
                verify(evidence(s), at=when, collateral=collateral, policy=POLICY)
        assert start <= at(s) <= end, what


@pytest.mark.parametrize("set_id", ["snp-gosev-milan", "snp-trustee-vlek-aws", "snp-azure-genoa"])
def test_instants_outside_the_vcek_window_are_rejected(set_id: str) -> None:
    s = BY_ID[set_id]
    collateral = store(s)
    signer = next(
        c
        for c in collateral.certificates
        if "SEV-V" in c.subject.rfc4514_string() and "LEK-" not in c.subject.rfc4514_string()
    )
    for when in (signer.not_valid_before_utc - SECOND, signer.not_valid_after_utc + SECOND):
        assert "chain" in rejected(evidence(s), s, collateral, when)
    verify(evidence(s), at=signer.not_valid_before_utc, collateral=collateral, policy=POLICY)


@pytest.mark.parametrize("set_id", ["nitro-evervault-ga", "nitro-evervault-debug-2022", "nitro-evervault-prod-2022"])
def test_instants_outside_each_nitro_certificate_are_rejected(set_id: str) -> None:
    s = BY_ID[set_id]
    payload = cbor2.loads(cbor2.loads(evidence(s))[2])
    for der in [payload["certificate"], *payload["cabundle"][1:]]:
        cert = x509.load_der_x509_certificate(der)
        for when in (cert.not_valid_before_utc - SECOND, cert.not_valid_after_utc + SECOND):
            with pytest.raises(VerificationFailed):
                verify(evidence(s), at=when, collateral=CollateralStore(), policy=POLICY)
