"""This project's SGX, TDX and SNP certificates decoded field by field next to rats-tls's layout.

Genuine evidence from tests/vectors (fixed verification dates in sets.json);
rats-tls's layout as its sources define it (github.com/inclavare-containers/
rats-tls 6675532): src/crypto_wrappers/openssl/gen_cert.c (certificate),
src/core/dice.c and src/include/internal/dice.h (tags, array, claims
buffer), src/core/rtls_core_generate_certificate.c (REPORT_DATA). The
decoding uses :mod:`.libcbor_model`, not this project's reader. Run as a
module to print the tables: ``python -m attestation.ratls.test_layouts`` from
tests/unit.

A genuine quote binds its own REPORT_DATA, not our key: each certificate
passes every check of its evidence and fails only the binding, and a
rats-tls reader gets as far as its REPORT_DATA ``memcmp``.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from inclavare.attestation import Evidence, EvidenceKind, Policy, VerificationFailed, verify
from inclavare.attestation.ratls import build_certificate, spki_of

from .. import vectors
from . import libcbor_model as cb
from . import ratspeer as rp

KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())
CASES = {  # set id, evidence kind, rats-tls evidence type, tag head bytes, REPORT_DATA offset in the evidence
    "sgx": ("sgx-dcapqvl", EvidenceKind.SGX_QUOTE, "sgx_ecdsa", b"\xd9\xea\x60", 48 + 320),
    "tdx": ("tdx-dcapqvl", EvidenceKind.TDX_QUOTE, "tdx_ecdsa", b"\xd9\xea\x60", 48 + 520),
    "sev-snp": ("snp-gosev-milan", EvidenceKind.SNP_REPORT, "sev_snp", b"\xda\x00\x1a\x75\x04", 0x50),
}
SRC = "rats-tls 6675532"


def certificate(tee: str) -> tuple[bytes, bytes, dict]:
    set_id, kind, *_ = CASES[tee]
    s = vectors.BY_ID[set_id]
    raw = vectors.evidence(s)
    return build_certificate(KEY, Evidence(kind, raw), now=vectors.at(s)), raw, s


def describe(tee: str) -> list[tuple[str, str, str]]:
    """(field, value in our certificate, what rats-tls's source says) rows."""
    der, raw, _ = certificate(tee)
    x = x509.load_der_x509_certificate(der)
    spki = spki_of(KEY)
    rows = [
        ("version, serial", f"{x.version.name}, {x.serial_number}", "X509_set_version(cert, 2), serial 1 (gen_cert.c)"),
        ("subject = issuer", ", ".join(a.rfc4514_string() for a in x.subject), "O, CN (generate_certificate.c)"),
        ("validity", f"{x.not_valid_after_utc - x.not_valid_before_utc}", "gmtime_adj -3600 .. +365 days (gen_cert.c)"),
        ("key, signature", f"{x.public_key().curve.name}, {x.signature_hash_algorithm.name}", "ECC_256_SHA256 default"),
    ]  # fmt: skip
    for ext in x.extensions:
        critical = "critical" if ext.critical else "non-critical"
        rows.append((f"extension {ext.oid.dotted_string}", critical, "all non-critical (2378719)"))
    value = x.extensions.get_extension_for_oid(x509.ObjectIdentifier(rp.OID_EVIDENCE)).value.value
    root = cb.load(value)
    array = root.children[0]
    evidence, claims = array.children[0].payload, array.children[1].payload
    claim_map = cb.load(claims)
    pubkey_hash = cb.load(claim_map.children[1].payload)
    at = CASES[tee][4]
    expected = hashlib.sha256(claims).digest() + bytes(32)
    entry = f"[{pubkey_hash.children[0].value}, h'{pubkey_hash.children[1].payload.hex()[:16]}...']"
    slack = len(value) - len(cb.tag(root.value, cb.array(cb.bstr(evidence), cb.bstr(claims))))
    rows += [
        ("tag", f"{root.value} ({value[: root.width + 1].hex()})", "OCBR_TAG_EVIDENCE_* (dice.h, defec92)"),
        ("array", f"{array.value} entries ({value[root.width + 1 : root.width + 2].hex()})", "array(2) (15724cf)"),
        ("[0] evidence", f"bytes({len(evidence)}), the genuine evidence: {evidence == raw}", "evidence_get_raw_as_ref"),
        ("[1] claims buffer", f"bytes({len(claims)}) {claims[:14].hex()}...", "dice_generate_claims_buffer"),
        ("  pubkey-hash", entry, "[1, sha256(i2d_PUBKEY)]"),
        ("  = SHA-256(SPKI)", str(pubkey_hash.children[1].payload == hashlib.sha256(spki).digest()), "gen_pubkey_hash"),
        ("after the item", f"{slack} bytes", "libcbor slack < 0.10"),
        ("REPORT_DATA rule", expected.hex()[:24] + "...", "SHA-256(claims) || 0*32 (generate_certificate.c)"),
        ("REPORT_DATA (genuine)", raw[at : at + 64].hex()[:24] + "...", "the vector's own, not our key's"),
    ]  # fmt: skip
    return rows


@pytest.mark.parametrize("tee", CASES)
def test_certificate_layout_is_rats_tls_s(tee: str) -> None:
    der, raw, s = certificate(tee)
    _, _, kind_name, tag_head, _ = CASES[tee]
    x = x509.load_der_x509_certificate(der)
    assert (x.version, x.serial_number) == (x509.Version.v3, 1)
    assert x.subject == x.issuer
    assert [(a.oid._name, a.value) for a in x.subject] == [
        ("organizationName", "Inclavare Containers"),
        ("commonName", "RATS-TLS"),
    ]  # O before CN, as X509_NAME_add_entry_by_txt is called (OU is NULL and skipped)
    assert x.not_valid_after_utc - x.not_valid_before_utc == timedelta(days=365, hours=1)
    assert [(e.oid.dotted_string, e.critical) for e in x.extensions] == [
        ("2.5.29.19", False), ("2.5.29.14", False), ("2.5.29.35", False), (rp.OID_EVIDENCE, False),
    ]  # fmt: skip
    value = x.extensions.get_extension_for_oid(x509.ObjectIdentifier(rp.OID_EVIDENCE)).value.value
    assert value.startswith(tag_head + b"\x82\x59" + len(raw).to_bytes(2, "big") + raw)
    claims = value[len(tag_head) + 4 + len(raw) :]
    assert claims[:2] == b"\x58\x33"  # bytes(51): no custom claims
    digest = hashlib.sha256(spki_of(KEY)).digest()
    assert claims[2:] == b"\xa1\x6bpubkey-hash\x58\x24\x82\x01\x58\x20" + digest  # nothing after the item
    # a rats-tls reader: right type, and it stops at its REPORT_DATA check (the quote binds the vector's data)
    log: list[str] = []
    assert rp.parse_evidence_buffer(value, log) == (kind_name, raw, claims[2:])
    assert log == []
    assert rp.parse_claims_buffer(claims[2:], spki_of(KEY)) == {}
    with pytest.raises(rp.Refused, match="unmatched hash value in evidence"):
        rp.appraise(der)
    # this project's reader: every check of the genuine evidence passes; only the binding fails
    policy = Policy(accept_tcb_status=frozenset(), allow_debug=True)
    with pytest.raises(VerificationFailed, match=r"does not bind the certificate key \(SHA-256\(claims-buffer\)"):
        verify(der, at=vectors.at(s), collateral=vectors.store(s), policy=policy)


def test_describe_matches_the_layout() -> None:
    rows = {name: value for name, value, _ in describe("sgx")}
    assert rows["tag"] == "60000 (d9ea60)"
    assert rows["array"] == "2 entries (82)"
    assert rows["  = SHA-256(SPKI)"] == "True"
    assert rows["after the item"] == "0 bytes"
    assert {name: value for name, value, _ in describe("sev-snp")}["tag"] == "1733892 (da001a7504)"


if __name__ == "__main__":
    for tee in CASES:
        print(f"\n{tee} ({CASES[tee][0]})")
        for name, value, source in describe(tee):
            print(f"  {name:<24} {value:<62} {source} [{SRC}]")
