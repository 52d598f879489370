"""AMD VCEK/VLEK certificate extensions and the ARK -> ASK/ASVK -> VCEK/VLEK chain.

AMD "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface
Specification" (pub. 57230) and the VLEK addendum. Extensions
(1.3.6.1.4.1.3704.1.x): .1 structVersion INTEGER, .2 productName IA5String,
.3.1 blSPL, .3.2 teeSPL, .3.3 snpSPL, .3.4-.3.7 spl_4..spl_7, .3.8 ucodeSPL,
.3.9 fmcSPL (Turin) — all INTEGER; .4 hwID (VCEK only, the 64-byte chip id,
8 bytes on Turin; the extnValue holds the raw bytes), .5 cspID (VLEK only).
Certificates are signed with RSASSA-PSS/SHA-384 by the ASK (VCEK) or ASVK
(VLEK), which the ARK signs; the ARK is pinned (:mod:`.roots`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from ..errors import EvidenceFormatError
from . import der
from .guard import contained

_BASE = "1.3.6.1.4.1.3704.1"
_SPL = {1: "bootloader", 2: "tee", 3: "snp", 4: "spl_4", 5: "spl_5", 6: "spl_6", 7: "spl_7", 8: "microcode", 9: "fmc"}


@dataclass(frozen=True)
class AmdCertInfo:
    product_name: str | None
    spl: dict[str, int]
    hwid: bytes | None
    csp_id: str | None


def cert_info(cert: x509.Certificate, what: str) -> AmdCertInfo:
    with contained(f"{what}: AMD extensions"):
        return _cert_info(cert, what)


def _cert_info(cert: x509.Certificate, what: str) -> AmdCertInfo:
    err = der.DerError(f"{what}: AMD extensions", EvidenceFormatError)
    spl: dict[str, int] = {}
    product = hwid = csp = None
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        raw = getattr(ext.value, "value", None)
        if not oid.startswith(_BASE + ".") or not isinstance(raw, bytes):
            continue
        sub = oid[len(_BASE) + 1 :]
        if sub.startswith("3.") and sub[2:].isdigit() and int(sub[2:]) in _SPL:
            spl[_SPL[int(sub[2:])]] = der.decode_uint(der.parse_single(raw, err), err, f"SPL {sub}")
        elif sub == "2":
            product = _string(raw, err, "productName")
        elif sub == "4":
            hwid = _hwid(raw, err)
        elif sub == "5":
            csp = _string(raw, err, "cspID")
    return AmdCertInfo(product, spl, hwid, csp)


def _string(raw: bytes, err: der.DerError, field: str) -> str:
    tlv = der.parse_single(raw, err)
    if tlv.tag not in (der.TAG_IA5STRING, der.TAG_UTF8STRING):
        raise err(f"{field}: not a string")
    try:
        return tlv.value.decode("ascii")
    except UnicodeDecodeError:
        raise err(f"{field}: not ASCII") from None


def _hwid(raw: bytes, err: der.DerError) -> bytes:
    if len(raw) in (8, 64):
        return raw
    tlv = der.parse_single(raw, err, der.TAG_OCTET_STRING)
    if len(tlv.value) not in (8, 64):
        raise err(f"hwID: {len(tlv.value)} bytes (8 or 64 expected)")
    return tlv.value


def product_of(intermediate_cn: str) -> tuple[str, str] | None:
    """``SEV-Milan`` -> (Milan, VCEK); ``SEV-VLEK-Genoa`` -> (Genoa, VLEK); None otherwise."""
    for product in ("Milan", "Genoa", "Turin"):
        if intermediate_cn == f"SEV-{product}":
            return product, "VCEK"
        if intermediate_cn == f"SEV-VLEK-{product}":
            return product, "VLEK"
    return None


def tcb_fields(product: str) -> tuple[str, ...]:
    """TCB_VERSION byte order per product (SEV-SNP ABI spec "TCB_VERSION")."""
    if product == "Turin":
        return ("fmc", "bootloader", "tee", "snp", "spl_5", "spl_6", "spl_7", "microcode")
    return ("bootloader", "tee", "spl_4", "spl_5", "spl_6", "spl_7", "snp", "microcode")
