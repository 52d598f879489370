"""A small, lenient X.509 reader for self-signed RA-TLS certificates (RFC 5280 section 4.1).

RA-TLS certificates get their trust from the evidence inside, not from a
PKI, and they come from many TLS stacks. Some encodings are not strict DER
that `cryptography` accepts: Gramine's mbedTLS writes ``NULL`` parameters in
the ECDSA AlgorithmIdentifier (RFC 5758 3.2 says they MUST be absent), and
cryptography >= 45 refuses to load such certificates. So this module walks
the structure itself: it needs only the TBS bytes, the signature algorithm
and value, names, validity, the SubjectPublicKeyInfo and the extensions. The
signature is verified over the TBS bytes exactly as received.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ..errors import EvidenceFormatError
from . import der
from .guard import guarded, succeeds

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")
_HASHES = {
    "1.2.840.10045.4.3.2": ("ecdsa", hashes.SHA256),
    "1.2.840.10045.4.3.3": ("ecdsa", hashes.SHA384),
    "1.2.840.10045.4.3.4": ("ecdsa", hashes.SHA512),
    "1.2.840.113549.1.1.11": ("rsa", hashes.SHA256),
    "1.2.840.113549.1.1.12": ("rsa", hashes.SHA384),
    "1.2.840.113549.1.1.13": ("rsa", hashes.SHA512),
    "1.3.101.112": ("ed25519", None),
}
_NAMES = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST"}
WHAT = "ratls certificate"


@dataclass(frozen=True)
class LiteCertificate:
    der: bytes
    tbs: bytes
    signature_algorithm: str
    signature: bytes
    issuer: bytes
    subject: bytes
    not_before: datetime
    not_after: datetime
    spki: bytes
    extensions: tuple[tuple[str, bool, bytes], ...]

    @property
    def subject_text(self) -> str:
        return name_text(self.subject)


@guarded(WHAT)
def load(data: bytes) -> LiteCertificate:
    """One certificate, PEM or DER."""
    blocks = _PEM.findall(data) if data.lstrip().startswith(b"-----BEGIN") else []
    if blocks:
        if len(blocks) != 1:
            raise EvidenceFormatError(f"{WHAT}: expected one PEM certificate, found {len(blocks)}")
        try:
            data = base64.b64decode(re.sub(rb"\s", b"", blocks[0]), validate=True)
        except binascii.Error:
            raise EvidenceFormatError(f"{WHAT}: PEM body is not base64") from None
    return parse(bytes(data))


@guarded(WHAT)
@lru_cache(maxsize=256)
def parse(data: bytes) -> LiteCertificate:
    """Parse one DER certificate (memoised: a pure function of the bytes; errors are not cached)."""
    return _parse(data)


def _parse(data: bytes) -> LiteCertificate:
    err = der.DerError(WHAT)
    cert = der.parse_single(data, err, der.TAG_SEQUENCE)
    parts = list(der.children(cert.value, err))
    if len(parts) != 3 or parts[0].tag != der.TAG_SEQUENCE or parts[2].tag != 0x03:
        raise err("not a Certificate SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }")
    tbs_der, _ = _raw_first(cert.value, err)
    sig_alg = _algorithm(parts[1], err)
    if not parts[2].value or parts[2].value[0] != 0:
        raise err("signatureValue BIT STRING has unused bits")
    fields = list(der.children(parts[0].value, err))
    if fields and fields[0].tag == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    if len(fields) < 6:
        raise err("TBSCertificate is too short")
    _serial, inner_alg, issuer, validity, subject, spki = fields[:6]
    if _algorithm(inner_alg, err) != sig_alg:
        raise err("TBS signature algorithm differs from the outer one")
    not_before, not_after = _validity(validity, err)
    return LiteCertificate(
        der=data,
        tbs=tbs_der,
        signature_algorithm=sig_alg,
        signature=parts[2].value[1:],
        issuer=_encode(issuer),
        subject=_encode(subject),
        not_before=not_before,
        not_after=not_after,
        spki=_encode(spki),
        extensions=_extensions(fields[6:], err),
    )


def _raw_first(value: bytes, err: der.DerError) -> tuple[bytes, int]:
    _, end = der.read_tlv(value, 0, err)
    return value[:end], end


def _encode(tlv: der.Tlv) -> bytes:
    n = len(tlv.value)
    length = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tlv.tag]) + length + tlv.value


def _algorithm(tlv: der.Tlv, err: der.DerError) -> str:
    items = list(der.children(tlv.value, err)) if tlv.tag == der.TAG_SEQUENCE else []
    if not items or items[0].tag != der.TAG_OID:
        raise err("malformed AlgorithmIdentifier")
    return der.decode_oid(items[0].value, err)


def _time(tlv: der.Tlv, err: der.DerError) -> datetime:
    try:
        text = tlv.value.decode("ascii")
        if tlv.tag == 0x17 and len(text) == 13 and text.endswith("Z"):  # UTCTime YYMMDDHHMMSSZ (RFC 5280 4.1.2.5.1)
            year = int(text[:2])
            text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
        elif not (tlv.tag == 0x18 and len(text) == 15 and text.endswith("Z")):
            raise ValueError(text)
        return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    except (UnicodeDecodeError, ValueError):
        raise err("validity time is not UTCTime/GeneralizedTime in Zulu form") from None


def _validity(tlv: der.Tlv, err: der.DerError) -> tuple[datetime, datetime]:
    times = list(der.children(tlv.value, err)) if tlv.tag == der.TAG_SEQUENCE else []
    if len(times) != 2:
        raise err("malformed Validity")
    return _time(times[0], err), _time(times[1], err)


def _extensions(rest: list[der.Tlv], err: der.DerError) -> tuple[tuple[str, bool, bytes], ...]:
    explicit = [t for t in rest if t.tag == 0xA3]
    if not explicit:
        return ()
    seq = der.parse_single(explicit[0].value, err, der.TAG_SEQUENCE)
    out = []
    for ext in der.children(seq.value, err):
        items = list(der.children(ext.value, err)) if ext.tag == der.TAG_SEQUENCE else []
        if len(items) not in (2, 3) or items[0].tag != der.TAG_OID or items[-1].tag != der.TAG_OCTET_STRING:
            raise err("malformed Extension")
        critical = len(items) == 3 and items[1].value not in (b"", b"\x00")
        out.append((der.decode_oid(items[0].value, err), critical, items[-1].value))
    return tuple(out)


@guarded(WHAT)
def name_text(name: bytes) -> str:
    """An RDN sequence as ``CN=..,O=..`` (RFC 4514 order is reversed; this keeps DER order)."""
    err = der.DerError(WHAT)
    parts = []
    for rdn in der.children(der.parse_single(name, err).value, err):
        for atv in der.children(rdn.value, err):
            items = list(der.children(atv.value, err))
            if len(items) == 2 and items[0].tag == der.TAG_OID:
                key = der.decode_oid(items[0].value, err)
                parts.append(f"{_NAMES.get(key, key)}={items[1].value.decode('utf-8', 'replace')}")
    return ",".join(parts)


@lru_cache(maxsize=256)
def self_signed(cert: LiteCertificate) -> bool:
    """Issuer equals subject and the certificate's own key verifies its signature."""
    kind, hash_cls = _HASHES.get(cert.signature_algorithm, (None, None))
    if kind is None or cert.issuer != cert.subject:
        return False
    return succeeds(lambda: _verify_self(cert, kind, hash_cls))


def _verify_self(cert: LiteCertificate, kind: str, hash_cls: type[hashes.HashAlgorithm] | None) -> None:
    """Raises unless the certificate's own key verifies its signature with the algorithm it names."""
    key = load_der_public_key(cert.spki)
    if kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey) and hash_cls:
        key.verify(cert.signature, cert.tbs, ec.ECDSA(hash_cls()))
    elif kind == "rsa" and isinstance(key, rsa.RSAPublicKey) and hash_cls:
        key.verify(cert.signature, cert.tbs, padding.PKCS1v15(), hash_cls())
    elif kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(cert.signature, cert.tbs)
    else:
        raise ValueError(f"{kind} signature with a {type(key).__name__}")
