"""Evidence format detection: bytes -> :class:`~inclavare.attestation.claims.EvidenceKind`.

Detection only looks at unambiguous markers (the HCLA magic, a parseable
X.509 certificate, the Intel quote header with Intel's QE vendor id, the SNP
version + signature-algorithm words, the COSE_Sign1 algorithm); the verifier
that is picked then parses strictly. :func:`unwrap_text` undoes hex
(bare or ``0x``-prefixed, see :mod:`.hazmat.hextext`) or base64 text
encodings of binary evidence (PEM is left alone).
"""

from __future__ import annotations

import base64
import binascii
import re

from .claims import EvidenceKind
from .errors import EvidenceFormatError
from .hazmat import cose, hcl, snp, x509lite
from .hazmat.guard import guarded
from .hazmat.quote import TEE_TDX, peek_header

_HEX = re.compile(rb"(0[xX])?[0-9a-fA-F\s]+")
_B64 = re.compile(rb"[A-Za-z0-9+/=_\-\s]+")


@guarded("evidence")
def detect(data: bytes) -> EvidenceKind:
    if data[:4] == hcl.MAGIC:
        return EvidenceKind.AZURE_HCL_REPORT
    if _is_certificate(data):
        return EvidenceKind.RATLS_CERTIFICATE
    header = peek_header(data)
    if header is not None:
        return EvidenceKind.TDX_QUOTE if header.tee_type == TEE_TDX else EvidenceKind.SGX_QUOTE
    if snp.looks_like_report(data):
        return EvidenceKind.SNP_REPORT
    alg = cose.peek_alg(data) if data[:1] in (b"\x84", b"\xd2") else None
    if alg == cose.ALG_ES384:
        return EvidenceKind.NITRO_DOCUMENT
    if alg == cose.ALG_EDDSA:
        return EvidenceKind.SOFTWARE
    raise EvidenceFormatError(
        "evidence: unrecognised format (not an SGX/TDX quote, SNP or Azure HCL report, "
        "Nitro document, software evidence or RA-TLS certificate)"
    )


def _is_certificate(data: bytes) -> bool:
    if b"-----BEGIN CERTIFICATE-----" in data[:64]:
        return True
    if data[:1] != b"\x30":
        return False
    try:
        x509lite.parse(data)
    except EvidenceFormatError:
        return False
    return True


def unwrap_text(data: bytes) -> bytes:
    """Hex (optionally ``0x``-prefixed) or base64 text -> bytes; anything else (binary, PEM) is returned unchanged."""
    text = data.strip()
    if not text or b"-----BEGIN" in text[:64] or not text.isascii():
        return data
    if _HEX.fullmatch(text):
        digits = re.sub(rb"\s", b"", text.removeprefix(b"0x").removeprefix(b"0X"))
        if len(digits) % 2 == 0:
            return binascii.unhexlify(digits)
    if _B64.fullmatch(text):
        compact = re.sub(rb"\s", b"", text)
        try:
            return base64.b64decode(
                compact.replace(b"-", b"+").replace(b"_", b"/") + b"=" * (-len(compact) % 4), validate=True
            )
        except binascii.Error:
            return data
    return data
