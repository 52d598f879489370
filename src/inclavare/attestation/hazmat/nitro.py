"""AWS Nitro Enclaves attestation documents (aws-nitro-enclaves-nsm-api, "Attestation document specification").

The document is an (untagged) COSE_Sign1 with protected header ``{1: -35}``
(ES384) whose payload is a CBOR map::

    module_id: text (non-empty)      digest: "SHA384"
    timestamp: uint (ms since epoch) pcrs: {0..31 => bstr 32/48/64}
    certificate: bstr (DER leaf)     cabundle: [+ bstr] (root first, leaf's issuer last)
    public_key: bstr / nil           user_data: bstr / nil     nonce: bstr / nil

Syntactic checks follow AWS's "3.2 Syntactical validation" (sizes: 1..32
PCRs, cabundle entries 1..1024 bytes, public_key 1..1024, user_data and
nonce 0..512).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import EvidenceFormatError
from .cose import ALG_ES384, CoseSign1, decode_exact, parse_cose_sign1
from .guard import guarded

WHAT = "nitro document"
_KEYS = {"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"}


@dataclass(frozen=True)
class NitroDocument:
    cose: CoseSign1
    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: dict[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None


@guarded(WHAT)
def parse_document(data: bytes) -> NitroDocument:
    cose = parse_cose_sign1(data, WHAT)
    if cose.protected != {1: ALG_ES384}:
        raise EvidenceFormatError(f"{WHAT}: protected header must be {{1: -35}} (ES384), not {cose.protected!r:.60}")
    if len(cose.signature) != 96:
        raise EvidenceFormatError(f"{WHAT}: ES384 signature must be 96 bytes, not {len(cose.signature)}")
    doc = decode_exact(cose.payload, f"{WHAT} payload")
    if not isinstance(doc, dict) or not all(isinstance(k, str) for k in doc):
        raise EvidenceFormatError(f"{WHAT}: payload must be a map with text keys")
    unknown = set(doc) - _KEYS
    if unknown:
        raise EvidenceFormatError(f"{WHAT}: unknown payload keys {sorted(unknown)}")
    return NitroDocument(
        cose=cose,
        module_id=_text(doc, "module_id"),
        digest=_digest(doc),
        timestamp_ms=_timestamp(doc),
        pcrs=_pcrs(doc),
        certificate=_bstr(doc, "certificate", 1, 4096),
        cabundle=_cabundle(doc),
        public_key=_optional(doc, "public_key", 1, 1024),
        user_data=_optional(doc, "user_data", 0, 512),
        nonce=_optional(doc, "nonce", 0, 512),
    )


def _text(doc: dict[str, object], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise EvidenceFormatError(f"{WHAT}: {key} must be a non-empty text string")
    return value


def _digest(doc: dict[str, object]) -> str:
    if doc.get("digest") != "SHA384":
        raise EvidenceFormatError(f"{WHAT}: digest must be 'SHA384'")
    return "SHA384"


def _timestamp(doc: dict[str, object]) -> int:
    value = doc.get("timestamp")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 1 << 63:
        raise EvidenceFormatError(f"{WHAT}: timestamp must be a positive integer (ms since the epoch)")
    return value


def _pcrs(doc: dict[str, object]) -> dict[int, bytes]:
    pcrs = doc.get("pcrs")
    if not isinstance(pcrs, dict) or not 1 <= len(pcrs) <= 32:
        raise EvidenceFormatError(f"{WHAT}: pcrs must be a map of 1 to 32 entries")
    out: dict[int, bytes] = {}
    for index, value in pcrs.items():
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 32:
            raise EvidenceFormatError(f"{WHAT}: PCR index {index!r:.20} is not 0..31")
        if not isinstance(value, bytes) or len(value) not in (32, 48, 64):
            raise EvidenceFormatError(f"{WHAT}: PCR{index} must be 32, 48 or 64 bytes")
        out[index] = value
    return out


def _bstr(doc: dict[str, object], key: str, low: int, high: int) -> bytes:
    value = doc.get(key)
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        raise EvidenceFormatError(f"{WHAT}: {key} must be a byte string of {low}..{high} bytes")
    return value


def _optional(doc: dict[str, object], key: str, low: int, high: int) -> bytes | None:
    return None if doc.get(key) is None else _bstr(doc, key, low, high)


def _cabundle(doc: dict[str, object]) -> tuple[bytes, ...]:
    bundle = doc.get("cabundle")
    if not isinstance(bundle, list) or not 1 <= len(bundle) <= 8:
        raise EvidenceFormatError(f"{WHAT}: cabundle must be an array of 1 to 8 certificates")
    if not all(isinstance(c, bytes) and 1 <= len(c) <= 1024 for c in bundle):
        raise EvidenceFormatError(f"{WHAT}: cabundle entries must be byte strings of 1..1024 bytes")
    return tuple(bundle)
