"""COSE_Sign1 (RFC 9052 section 4.2) over CBOR (RFC 8949), for Nitro documents and software evidence.

``COSE_Sign1 = [protected: bstr .cbor header_map, unprotected: header_map,
payload: bstr, signature: bstr]``, optionally wrapped in CBOR tag 18. The
signature is over ``Sig_structure = ["Signature1", protected, external_aad,
payload]`` (RFC 9052 section 4.4) with an empty external_aad. ES384 (alg
-35, RFC 9053 section 2.1) signatures are raw ``r || s``, 48 bytes each;
EdDSA (alg -8, RFC 9053 section 2.2) signatures are 64 bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import cbor2

from ..errors import EvidenceFormatError
from .guard import contained

ALG_ES384 = -35
ALG_EDDSA = -8
COSE_SIGN1_TAG = 18
MAX_CBOR = 1 << 20


@dataclass(frozen=True)
class CoseSign1:
    protected_raw: bytes
    protected: dict[object, object]
    unprotected: dict[object, object]
    payload: bytes
    signature: bytes
    tagged: bool

    @property
    def alg(self) -> object:
        return self.protected.get(1)

    def to_be_signed(self) -> bytes:
        return sig_structure(self.protected_raw, self.payload)


def sig_structure(protected_raw: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", protected_raw, b"", payload])


def decode_exact(data: bytes, what: str) -> object:
    """Decode exactly one CBOR item filling ``data``; every decoder failure becomes EvidenceFormatError."""
    if len(data) > MAX_CBOR:
        raise EvidenceFormatError(f"{what}: larger than the 1 MiB limit")
    stream = io.BytesIO(bytes(data))
    try:
        with contained(what, EvidenceFormatError, "malformed CBOR"):
            value = cbor2.CBORDecoder(stream).decode()
    except MemoryError:  # a length field promising more than there is memory for
        raise EvidenceFormatError(f"{what}: malformed CBOR (a length beyond the input)") from None
    if stream.tell() != len(data):
        raise EvidenceFormatError(f"{what}: {len(data) - stream.tell()} bytes after the CBOR item")
    return value


def parse_cose_sign1(data: bytes, what: str) -> CoseSign1:
    with contained(what):
        return _parse_cose_sign1(data, what)


def _parse_cose_sign1(data: bytes, what: str) -> CoseSign1:
    item = decode_exact(data, what)
    tagged = isinstance(item, cbor2.CBORTag)
    if isinstance(item, cbor2.CBORTag):
        if item.tag != COSE_SIGN1_TAG:
            raise EvidenceFormatError(f"{what}: CBOR tag {item.tag} is not COSE_Sign1 (18)")
        item = item.value
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise EvidenceFormatError(f"{what}: not a COSE_Sign1 array of four items")
    protected_raw, unprotected, payload, signature = item  # cbor2 decodes tagged arrays as tuples
    if not isinstance(protected_raw, bytes) or not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise EvidenceFormatError(f"{what}: COSE_Sign1 protected header, payload and signature must be byte strings")
    if not isinstance(unprotected, Mapping):
        raise EvidenceFormatError(f"{what}: COSE_Sign1 unprotected header must be a map")
    protected = decode_exact(protected_raw, f"{what} protected header") if protected_raw else {}
    if not isinstance(protected, Mapping):
        raise EvidenceFormatError(f"{what}: COSE_Sign1 protected header must be a map")
    return CoseSign1(protected_raw, dict(protected), dict(unprotected), payload, signature, tagged)


def peek_alg(data: bytes) -> object | None:
    """The ``alg`` of a COSE_Sign1, or None if ``data`` is not one (for format detection)."""
    try:
        return parse_cose_sign1(data, "cose").alg
    except EvidenceFormatError:
        return None
