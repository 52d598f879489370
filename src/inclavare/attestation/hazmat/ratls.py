"""Evidence inside RA-TLS certificates, and how it binds the certificate key.

Three encodings are recognised (docs/ratls.md, "RA-TLS certificates"; rats-tls and Gramine RA-TLS):

* **TCG DICE tagged evidence**, extension 2.23.133.5.4.9 (rats-tls since
  2022-12, "Interoperable RA-TLS"): a CBOR tag wrapping ``[evidence]`` or
  ``[evidence, claims-buffer]``. Tags 60000 and 0x1A7501 = Intel TEE quote
  (SGX or TDX), 0x1A7504 = SEV-SNP report. Binding without a claims buffer:
  REPORT_DATA = CBOR ``[hash-alg, hash(SPKI)]`` zero-padded; with one:
  REPORT_DATA starts with SHA-256(claims-buffer) and the buffer's
  ``"pubkey-hash"`` is ``[hash-alg, hash(SPKI)]`` (hash-alg 1 SHA-256,
  7 SHA-384, 8 SHA-512). inclavare's own software evidence uses the private
  tag 0x1A75F0 (:data:`SOFTWARE_TAG`; no other RA-TLS stack knows it, and
  none should accept evidence without hardware protection).
* **Legacy rats-tls / enclave-tls OIDs**: 1.2.840.113741.1337.6 (SGX quote),
  .1337.8 (TDX quote), .1337.20 (SNP report), raw bytes as extnValue.
* **Gramine's legacy mis-encoded OID**: old Gramine wrote the *whole DER TLV*
  of 1.2.840.113741.1337.6 as the OID's content, which parses as
  0.6.9.42.840.113741.1337.6; current Gramine still accepts it.

Legacy binding: REPORT_DATA = SHA-256(DER SubjectPublicKeyInfo) || 32 zero bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cbor2

from ..errors import EvidenceFormatError
from . import der
from .cose import decode_exact
from .guard import guarded
from .x509lite import LiteCertificate

DICE_TAGGED_EVIDENCE = "2.23.133.5.4.9"
LEGACY_OIDS = {
    "1.2.840.113741.1337.6": "sgx",
    "1.2.840.113741.1337.8": "tdx",
    "1.2.840.113741.1337.20": "sev-snp",
    "0.6.9.42.840.113741.1337.6": "sgx",  # Gramine's mis-encoded legacy OID
}
SOFTWARE_TAG = 0x1A75F0  # inclavare software evidence (private; see docs/ratls.md)
CBOR_TAGS = {60000: "intel", 0x1A7501: "intel", 0x1A7504: "sev-snp", SOFTWARE_TAG: "software"}
HASH_ALGS = {1: "sha256", 7: "sha384", 8: "sha512"}
WHAT = "ratls certificate"


@dataclass(frozen=True)
class RatlsEvidence:
    encoding: str  # "tcg-dice" or "legacy"
    oid: str
    tee_hint: str  # "intel", "sgx", "tdx" or "sev-snp"
    evidence: bytes
    claims_buffer: bytes | None


@guarded(WHAT)
def extract(cert: LiteCertificate) -> RatlsEvidence:
    found = [(oid, raw) for oid, _, raw in cert.extensions if oid == DICE_TAGGED_EVIDENCE or oid in LEGACY_OIDS]
    if len(found) != 1:
        raise EvidenceFormatError(
            f"{WHAT}: needs exactly one evidence extension (2.23.133.5.4.9 or a legacy RA-TLS OID), found {len(found)}"
        )
    oid, raw = found[0]
    if oid in LEGACY_OIDS:
        return RatlsEvidence("legacy", oid, LEGACY_OIDS[oid], raw, None)
    return _dice(oid, raw)


@guarded(f"{WHAT}: tagged evidence")
def _dice(oid: str, raw: bytes) -> RatlsEvidence:
    if raw[:1] == b"\x04":  # tolerate an extra DER OCTET STRING around the CBOR
        raw = der.parse_single(raw, der.DerError(WHAT), der.TAG_OCTET_STRING).value
    item = decode_exact(raw, f"{WHAT}: tagged evidence")
    if not isinstance(item, cbor2.CBORTag) or item.tag not in CBOR_TAGS:
        raise EvidenceFormatError(
            f"{WHAT}: tagged evidence has no supported CBOR tag (60000, 0x1A7501, 0x1A7504, 0x1A75F0)"
        )
    value = item.value
    if not isinstance(value, Sequence) or not 1 <= len(value) <= 2 or not all(isinstance(v, bytes) for v in value):
        raise EvidenceFormatError(f"{WHAT}: tagged evidence must be [evidence] or [evidence, claims-buffer]")
    return RatlsEvidence("tcg-dice", oid, CBOR_TAGS[item.tag], value[0], value[1] if len(value) == 2 else None)


@guarded(f"{WHAT}: binding")
def expected_binding(ev: RatlsEvidence, spki: bytes) -> tuple[bytes, str]:
    """The REPORT_DATA prefix this evidence must carry for key ``spki``, and a description of the rule."""
    if ev.encoding == "legacy":
        return hashlib.sha256(spki).digest(), "SHA-256(SPKI)"
    if ev.claims_buffer is None:
        return cbor2.dumps([1, hashlib.sha256(spki).digest()]), "CBOR [1, SHA-256(SPKI)]"
    claims = decode_exact(ev.claims_buffer, f"{WHAT}: claims buffer")
    if not isinstance(claims, Mapping) or "pubkey-hash" not in claims:
        raise EvidenceFormatError(f"{WHAT}: claims buffer must be a map with a 'pubkey-hash' claim")
    alg, digest = _pubkey_hash(claims["pubkey-hash"])
    if hashlib.new(HASH_ALGS[alg], spki).digest() != digest:
        raise EvidenceFormatError(f"{WHAT}: claims buffer pubkey-hash is not the hash of the certificate key")
    return hashlib.sha256(ev.claims_buffer).digest(), "SHA-256(claims-buffer)"


def _pubkey_hash(value: object) -> tuple[int, bytes]:
    if isinstance(value, bytes):
        value = decode_exact(value, f"{WHAT}: pubkey-hash")
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not isinstance(value[0], int)
        or value[0] not in HASH_ALGS
        or not isinstance(value[1], bytes)
    ):
        raise EvidenceFormatError(f"{WHAT}: pubkey-hash must be [hash-alg 1|7|8, hash]")
    return value[0], value[1]


def binds(report_data: bytes, prefix: bytes) -> bool:
    """REPORT_DATA = prefix || zeros."""
    return report_data[: len(prefix)] == prefix and not any(report_data[len(prefix) :])
