"""Evidence inside RA-TLS certificates, and how it binds the certificate key.

Every form rats-tls has written is read (docs/ratls.md, "Certificate forms";
sources cited by commit of github.com/inclavare-containers/rats-tls):

* **Current TCG DICE form** (rats-tls 15724cf, 2023-01-31, and the tags of
  defec92, 2023-02-24): extension 2.23.133.5.4.9 holds CBOR
  ``tag([h'evidence', h'claims-buffer'])``; REPORT_DATA starts with
  SHA-256(claims-buffer), and the buffer's ``"pubkey-hash"`` is
  ``[hash-alg, hash(SPKI)]`` (hash-alg 1 SHA-256, 7 SHA-384, 8 SHA-512;
  rats-tls ``src/include/rats-tls/hash.h``). Tags (``src/include/internal/dice.h``):
  60000 Intel TEE quote (SGX or TDX, told apart by the quote header),
  0x1A7504 SEV-SNP report. inclavare's software evidence uses the private tag
  0x1A75F0 (:data:`SOFTWARE_TAG`), outside rats-tls's accepted range
  60000..0x1A7506, so a rats-tls peer refuses it instead of falling back to
  its nullverifier.
* **First TCG DICE form** (rats-tls 7a32b54, 2022-12-29, until 15724cf):
  tag 0x1A7501 for Intel quotes; ``tag([h'evidence'])`` with REPORT_DATA =
  the 36-byte CBOR ``[1, SHA-256(SPKI)]`` zero-padded, or the two-element
  form above when the certificate had custom claims.
* **Legacy OIDs** (rats-tls before 7a32b54, enclave-tls): 1.2.840.113741.1337.6
  (SGX quote), .1337.8 (TDX quote), .1337.20 (SNP report), raw bytes as
  extnValue; REPORT_DATA = SHA-256(DER SubjectPublicKeyInfo) || 32 zero bytes.
* **Gramine's mis-encoded OID**: old Gramine wrote the *whole DER TLV* of
  1.2.840.113741.1337.6 as the OID's content, which parses as
  0.6.9.42.840.113741.1337.6; current Gramine still accepts it.

The CBOR buffers may end in libcbor's allocation slack (:mod:`.libcbor`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cbor2

from ..errors import EvidenceFormatError
from . import der
from .guard import guarded
from .libcbor import decode_item
from .x509lite import LiteCertificate

DICE_TAGGED_EVIDENCE = "2.23.133.5.4.9"
LEGACY_OIDS = {
    "1.2.840.113741.1337.6": "sgx",
    "1.2.840.113741.1337.8": "tdx",
    "1.2.840.113741.1337.20": "sev-snp",
    "0.6.9.42.840.113741.1337.6": "sgx",  # Gramine's mis-encoded legacy OID
}
TAG_INTEL_QUOTE = 60000  # IANA-registered; rats-tls since defec92
TAG_INTEL_QUOTE_2022 = 0x1A7501  # rats-tls 7a32b54 .. defec92
TAG_SEV_SNP = 0x1A7504
SOFTWARE_TAG = 0x1A75F0  # inclavare software evidence (private; see docs/ratls.md)
CBOR_TAGS = {TAG_INTEL_QUOTE: "intel", TAG_INTEL_QUOTE_2022: "intel", TAG_SEV_SNP: "sev-snp", SOFTWARE_TAG: "software"}
# rats-tls tags for evidence this project has no verifier for: refused by name, not as "unknown".
UNSUPPORTED_TAGS = {
    60001: "Intel TEE report",
    60002: "SGX legacy report (sgx_la)",
    0x1A7502: "Intel TEE report",
    0x1A7503: "SGX legacy report (sgx_la)",
    0x1A7505: "SEV/SEV-ES evidence",
    0x1A7506: "Hygon CSV report",
}
HASH_ALGS = {1: "sha256", 7: "sha384", 8: "sha512"}
PUBKEY_HASH = "pubkey-hash"
WHAT = "ratls certificate"


@dataclass(frozen=True)
class RatlsEvidence:
    encoding: str  # "tcg-dice" or "legacy"
    oid: str
    tee_hint: str  # "intel", "sgx", "tdx", "sev-snp" or "software"
    evidence: bytes
    claims_buffer: bytes | None
    tag: int | None = None
    slack: int = 0  # libcbor allocation slack after the tagged evidence

    @property
    def form(self) -> str:
        """Which rats-tls generation wrote this (docs/ratls.md, "Certificate forms")."""
        if self.encoding == "legacy":
            return "legacy-oid"
        return "dice" if self.claims_buffer is not None else "dice-2022"


@guarded(WHAT)
def extract(cert: LiteCertificate) -> RatlsEvidence:
    found = [(oid, raw) for oid, _, raw in cert.extensions if oid == DICE_TAGGED_EVIDENCE or oid in LEGACY_OIDS]
    if len(found) != 1:
        unattested = ": the peer is unattested (rats-tls's nullattester sends no evidence)" if not found else ""
        raise EvidenceFormatError(
            f"{WHAT}: needs exactly one evidence extension (2.23.133.5.4.9 or a legacy RA-TLS OID), "
            f"found {len(found)}{unattested}"
        )
    oid, raw = found[0]
    if oid in LEGACY_OIDS:
        return RatlsEvidence("legacy", oid, LEGACY_OIDS[oid], raw, None)
    return _dice(oid, raw)


@guarded(f"{WHAT}: tagged evidence")
def _dice(oid: str, raw: bytes) -> RatlsEvidence:
    if raw[:1] == b"\x04":  # tolerate an extra DER OCTET STRING around the CBOR
        raw = der.parse_single(raw, der.DerError(WHAT), der.TAG_OCTET_STRING).value
    item, slack = decode_item(raw, f"{WHAT}: tagged evidence")
    if not isinstance(item, cbor2.CBORTag):
        raise EvidenceFormatError(f"{WHAT}: tagged evidence is not a CBOR tag")
    if item.tag in UNSUPPORTED_TAGS:
        raise EvidenceFormatError(
            f"{WHAT}: CBOR tag {item.tag:#x} ({UNSUPPORTED_TAGS[item.tag]}, rats-tls) is not supported"
        )
    if item.tag not in CBOR_TAGS:
        raise EvidenceFormatError(
            f"{WHAT}: tagged evidence has no supported CBOR tag ({item.tag:#x}; known: 60000, 0x1A7501, "
            "0x1A7504, 0x1A75F0)"
        )
    value = item.value
    if not isinstance(value, Sequence) or not 1 <= len(value) <= 2 or not all(isinstance(v, bytes) for v in value):
        raise EvidenceFormatError(f"{WHAT}: tagged evidence must be [evidence, claims-buffer] (or [evidence])")
    claims = value[1] if len(value) == 2 else None
    return RatlsEvidence("tcg-dice", oid, CBOR_TAGS[item.tag], value[0], claims, item.tag, slack)


@guarded(f"{WHAT}: binding")
def expected_binding(ev: RatlsEvidence, spki: bytes) -> tuple[bytes, str]:
    """The REPORT_DATA prefix this evidence must carry for key ``spki``, and a description of the rule."""
    if ev.encoding == "legacy":
        return hashlib.sha256(spki).digest(), "SHA-256(SPKI)"
    if ev.claims_buffer is None:
        return cbor2.dumps([1, hashlib.sha256(spki).digest()]), "CBOR [1, SHA-256(SPKI)]"
    alg, digest = _pubkey_hash(_claims_map(ev.claims_buffer)[PUBKEY_HASH])
    if hashlib.new(HASH_ALGS[alg], spki).digest() != digest:
        raise EvidenceFormatError(f"{WHAT}: claims buffer pubkey-hash is not the hash of the certificate key")
    # The hash covers the whole buffer, libcbor's slack included (rats-tls rtls_core_generate_certificate.c).
    return hashlib.sha256(ev.claims_buffer).digest(), "SHA-256(claims-buffer)"


@guarded(f"{WHAT}: claims buffer")
def custom_claims(ev: RatlsEvidence) -> dict[str, bytes]:
    """The peer's custom claims (rats-tls ``claim_t``), without the internal ``pubkey-hash``."""
    if ev.claims_buffer is None:
        return {}
    return {k: v for k, v in _claims_map(ev.claims_buffer).items() if k != PUBKEY_HASH and isinstance(v, bytes)}


def _claims_map(buffer: bytes) -> Mapping[str, object]:
    """rats-tls ``dice_parse_claims_buffer``: a map of text names to byte strings, with ``pubkey-hash``."""
    claims, _ = decode_item(buffer, f"{WHAT}: claims buffer")
    if not isinstance(claims, Mapping) or PUBKEY_HASH not in claims:
        raise EvidenceFormatError(f"{WHAT}: claims buffer must be a map with a 'pubkey-hash' claim")
    for name, value in claims.items():
        if not isinstance(name, str) or (name != PUBKEY_HASH and not isinstance(value, bytes)):
            raise EvidenceFormatError(f"{WHAT}: claims buffer maps text names to byte strings")
    return claims


def _pubkey_hash(value: object) -> tuple[int, bytes]:
    if isinstance(value, bytes):  # rats-tls: a byte string holding the CBOR array (libcbor slack allowed)
        value, _ = decode_item(value, f"{WHAT}: pubkey-hash")
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or type(value[0]) is not int
        or value[0] not in HASH_ALGS
        or not isinstance(value[1], bytes)
    ):
        raise EvidenceFormatError(f"{WHAT}: pubkey-hash must be [hash-alg 1|7|8, hash]")
    return value[0], value[1]


def binds(report_data: bytes, prefix: bytes) -> bool:
    """REPORT_DATA = prefix || zeros."""
    return report_data[: len(prefix)] == prefix and not any(report_data[len(prefix) :])
