"""A minimal, strict DER reader (ITU-T X.690) for certificate extension values.

`cryptography` hands us vendor extensions (Intel PCK SGX extensions, AMD VCEK
TCB extensions, RA-TLS evidence) as raw ``extnValue`` bytes. This module
walks them: single-byte and multi-byte tags, definite lengths only (DER
forbids indefinite ones), every length checked against the buffer. Errors
are raised as the caller's error class, so the same code serves evidence
(:class:`EvidenceFormatError`) and collateral (:class:`CollateralError`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import AttestationError, EvidenceFormatError

TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30
TAG_IA5STRING = 0x16
TAG_UTF8STRING = 0x0C


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes


class DerError:
    """Builds errors of one class with one prefix (``"pck certificate: sgx extensions"``)."""

    def __init__(self, what: str, cls: type[AttestationError] = EvidenceFormatError) -> None:
        self.what = what
        self.cls = cls

    def __call__(self, reason: str) -> AttestationError:
        return self.cls(f"{self.what}: {reason}")


def read_tlv(data: bytes, pos: int, err: DerError) -> tuple[Tlv, int]:
    """The TLV at ``pos`` and the position just after it."""
    if pos + 2 > len(data):
        raise err(f"truncated DER at offset {pos}")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise err(f"multi-byte DER tag at offset {pos} is not supported")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise err(f"bad DER length at offset {pos - 1}")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or (count > 1 and data[pos] == 0):
            raise err(f"non-minimal DER length at offset {pos - 1}")
        pos += count
    if pos + length > len(data):
        raise err(f"DER value at offset {pos} runs past the end ({length} bytes, {len(data) - pos} left)")
    return Tlv(tag, data[pos : pos + length]), pos + length


def parse_single(data: bytes, err: DerError, tag: int | None = None) -> Tlv:
    """Exactly one TLV filling ``data`` (optionally of the given tag)."""
    tlv, end = read_tlv(data, 0, err)
    if end != len(data):
        raise err(f"{len(data) - end} bytes after the DER value")
    if tag is not None and tlv.tag != tag:
        raise err(f"DER tag {tlv.tag:#04x} where {tag:#04x} is required")
    return tlv


def children(value: bytes, err: DerError) -> Iterator[Tlv]:
    """The TLVs inside a constructed value, in order."""
    pos = 0
    while pos < len(value):
        tlv, pos = read_tlv(value, pos, err)
        yield tlv


def decode_oid(value: bytes, err: DerError) -> str:
    if not value or value[-1] & 0x80:
        raise err("malformed OBJECT IDENTIFIER")
    arcs: list[int] = []
    n = 0
    for i, byte in enumerate(value):
        if n == 0 and byte == 0x80 and (i == 0 or not value[i - 1] & 0x80):
            raise err("non-minimal OBJECT IDENTIFIER arc")
        n = (n << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(n)
            n = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def decode_uint(tlv: Tlv, err: DerError, field: str) -> int:
    """A non-negative INTEGER or ENUMERATED."""
    if tlv.tag not in (TAG_INTEGER, TAG_ENUMERATED) or not tlv.value:
        raise err(f"{field}: not an INTEGER")
    if tlv.value[0] & 0x80:
        raise err(f"{field}: negative INTEGER")
    if len(tlv.value) > 1 and tlv.value[0] == 0 and not tlv.value[1] & 0x80:
        raise err(f"{field}: non-minimal INTEGER")
    return int.from_bytes(tlv.value, "big")


def decode_octets(tlv: Tlv, err: DerError, field: str, size: int | None = None) -> bytes:
    if tlv.tag != TAG_OCTET_STRING:
        raise err(f"{field}: not an OCTET STRING")
    if size is not None and len(tlv.value) != size:
        raise err(f"{field}: {len(tlv.value)} bytes where {size} are required")
    return tlv.value


def oid_value_pairs(seq_value: bytes, err: DerError) -> Iterator[tuple[str, Tlv]]:
    """``SEQUENCE OF SEQUENCE { OID, value }`` as (dotted OID, value TLV) pairs."""
    for item in children(seq_value, err):
        if item.tag != TAG_SEQUENCE:
            raise err("entry is not a SEQUENCE")
        parts = list(children(item.value, err))
        if len(parts) != 2 or parts[0].tag != TAG_OID:
            raise err("entry is not SEQUENCE { OID, value }")
        yield decode_oid(parts[0].value, err), parts[1]
