"""Intel DCAP ECDSA quotes: SGX v3, SGX/TDX v4 and v5 (``sgx_quote_3.h``, ``sgx_quote_4.h``, ``sgx_quote_5.h``).

Layout (little-endian; Intel SGX/TDX DCAP Quoting Library API, appendix
"Quote Format")::

    header 48      version u16, att_key_type u16, tee_type u32 (v3: reserved, 0),
                   qe_svn u16, pce_svn u16, qe_vendor_id 16, user_data 20
    [v5 only]      body_type u16 (1 SGX, 2 TD 1.0, 3 TD 1.5), body_size u32
    body           SGX report 384 | TD report 1.0 584 | TD report 1.5 648
    sig_data_len   u32
    sig_data       ECDSA signature r||s 64, attestation key x||y 64, then
                   v3:    QE report 384, QE report signature 64,
                          QE auth data (u16 size + bytes), certification data
                          (u16 type, u32 size, bytes)
                   v4/v5: certification data type 6 (u16 type, u32 size) wrapping
                          QE report 384, QE report signature 64, QE auth data
                          (u16 size + bytes) and an inner certification data
                          (type 5 = PEM PCK chain)

The quote signature covers header + body; for v5 it also covers the 6-byte
body descriptor, i.e. every byte before ``sig_data_len``.

**Trailing bytes.** The quote ends where ``sig_data_len`` says it ends.
Bytes after that end are not covered by any signature. Real quotes arrive
zero-padded (an 8000-byte configfs buffer, Azure's 70 zero bytes), so the
rule is: trailing bytes are accepted only if every one of them is zero, and
they are never part of the returned :class:`Quote` (``Quote.raw`` stops at
the end of the signature data). Any non-zero trailing byte makes the quote
malformed: appended data is how a quote gets smuggled next to something
else, and a relying party that hashes or logs "the quote" must not include
attacker bytes. Intel's QVL ignores trailing data; we are stricter on
purpose. Inside the signature data every length must add up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import EvidenceFormatError
from ._reader import Reader
from .guard import guarded
from .reports import (
    SGX_REPORT_BODY_SIZE,
    TD_REPORT10_SIZE,
    TD_REPORT15_SIZE,
    SgxReportBody,
    TdReportBody,
    parse_sgx_report_body,
    parse_td_report_body,
)

HEADER_SIZE = 48
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
ATT_KEY_ECDSA_P256 = 2
TEE_SGX = 0x00
TEE_TDX = 0x81
CERT_PCK_CHAIN = 5
CERT_QE_REPORT = 6
BODY_SGX, BODY_TD10, BODY_TD15 = 1, 2, 3
MAX_QUOTE_INPUT = 1 << 20  # refuse to look at more than 1 MiB

_BODY_SIZES = {BODY_SGX: SGX_REPORT_BODY_SIZE, BODY_TD10: TD_REPORT10_SIZE, BODY_TD15: TD_REPORT15_SIZE}


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class Quote:
    """A parsed (not verified) DCAP quote."""

    raw: bytes
    header: QuoteHeader
    body_type: int
    body: SgxReportBody | TdReportBody
    signed_data: bytes
    signature: bytes
    attestation_key: bytes
    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    cert_data_type: int
    cert_data: bytes
    trailing: bytes

    @property
    def tee(self) -> str:
        return "tdx" if self.header.tee_type == TEE_TDX else "sgx"


@guarded("quote")
def peek_header(data: bytes) -> QuoteHeader | None:
    """The header if ``data`` starts like an Intel ECDSA quote, else None (for format detection)."""
    if len(data) < HEADER_SIZE:
        return None
    header = _parse_header(Reader(data[:HEADER_SIZE], "quote header"))
    if header.version not in (3, 4, 5) or header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        return None
    return header


@guarded("quote")
def parse_quote(data: bytes, *, allow_trailing_garbage: bool = False) -> Quote:
    """Parse a quote; see the module docstring for the trailing-bytes rule.

    ``allow_trailing_garbage`` is for ``inspect`` only: it keeps non-zero
    trailing bytes in ``Quote.trailing`` instead of refusing the quote.
    """
    if len(data) > MAX_QUOTE_INPUT:
        raise EvidenceFormatError(f"quote: {len(data)} bytes is larger than the 1 MiB limit")
    r = Reader(data, "quote")
    header = _parse_header(r)
    _check_header(header)
    what = f"{'tdx' if header.tee_type == TEE_TDX else 'sgx'} quote v{header.version}"
    r.what = what
    body_type = _body_type(r, header, what)
    body_raw = r.take(_BODY_SIZES[body_type], "report body")
    signed_end = r.pos
    sig_len = r.u32("signature data length")
    sig = Reader(r.take(sig_len, "signature data"), f"{what} signature data")
    end = r.pos
    trailing = r.rest()
    if any(trailing) and not allow_trailing_garbage:
        raise EvidenceFormatError(
            f"{what}: {len(trailing)} bytes after the end of the quote are not all zero (only zero padding is accepted)"
        )
    body: SgxReportBody | TdReportBody = (
        parse_sgx_report_body(body_raw) if body_type == BODY_SGX else parse_td_report_body(body_raw)
    )
    signature, att_key = sig.take(64, "quote signature"), sig.take(64, "attestation key")
    qe = _parse_v3_auth(sig) if header.version == 3 else _parse_v4_auth(sig, what)
    _expect_end(sig)
    return Quote(
        raw=bytes(data[:end]),
        header=header,
        body_type=body_type,
        body=body,
        signed_data=bytes(data[:signed_end]),
        signature=signature,
        attestation_key=att_key,
        qe_report=qe[0],
        qe_report_signature=qe[1],
        qe_auth_data=qe[2],
        cert_data_type=qe[3],
        cert_data=qe[4],
        trailing=trailing,
    )


def _parse_header(r: Reader) -> QuoteHeader:
    return QuoteHeader(
        version=r.u16("version"),
        att_key_type=r.u16("attestation key type"),
        tee_type=r.u32("tee type"),
        qe_svn=r.u16("qe svn"),
        pce_svn=r.u16("pce svn"),
        qe_vendor_id=r.take(16, "qe vendor id"),
        user_data=r.take(20, "user data"),
    )


def _check_header(h: QuoteHeader) -> None:
    if h.version not in (3, 4, 5):
        raise EvidenceFormatError(f"quote: version {h.version} is not supported (3, 4 and 5 are)")
    if h.att_key_type != ATT_KEY_ECDSA_P256:
        raise EvidenceFormatError(
            f"quote: attestation key type {h.att_key_type} is not supported (only 2, ECDSA-256-with-P-256)"
        )
    if h.tee_type not in (TEE_SGX, TEE_TDX) or (h.version == 3 and h.tee_type != TEE_SGX):
        raise EvidenceFormatError(f"quote: tee type {h.tee_type:#x} is not valid for a v{h.version} quote")
    if h.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise EvidenceFormatError(f"quote: QE vendor id {h.qe_vendor_id.hex()} is not Intel's")


def _body_type(r: Reader, h: QuoteHeader, what: str) -> int:
    if h.version < 5:
        return BODY_TD10 if h.tee_type == TEE_TDX else BODY_SGX
    body_type, size = r.u16("body type"), r.u32("body size")
    if body_type not in _BODY_SIZES:
        raise EvidenceFormatError(f"{what}: body type {body_type} is unknown (1 SGX, 2 TD 1.0, 3 TD 1.5)")
    if (body_type == BODY_SGX) != (h.tee_type == TEE_SGX):
        raise EvidenceFormatError(f"{what}: body type {body_type} does not match tee type {h.tee_type:#x}")
    if size != _BODY_SIZES[body_type]:
        raise EvidenceFormatError(f"{what}: body size {size} is wrong for body type {body_type}")
    return body_type


_Auth = tuple[SgxReportBody, bytes, bytes, int, bytes]


def _parse_qe_block(r: Reader) -> tuple[SgxReportBody, bytes, bytes]:
    qe_report = parse_sgx_report_body(r.take(SGX_REPORT_BODY_SIZE, "QE report"), "QE report")
    qe_sig = r.take(64, "QE report signature")
    auth = r.take(r.u16("QE auth data size"), "QE auth data")
    return qe_report, qe_sig, auth


def _parse_cert_data(r: Reader) -> tuple[int, bytes]:
    kind = r.u16("certification data type")
    return kind, r.take(r.u32("certification data size"), "certification data")


def _parse_v3_auth(r: Reader) -> _Auth:
    qe_report, qe_sig, auth = _parse_qe_block(r)
    kind, cert = _parse_cert_data(r)
    return qe_report, qe_sig, auth, kind, cert


def _parse_v4_auth(r: Reader, what: str) -> _Auth:
    outer_kind, outer = _parse_cert_data(r)
    if outer_kind != CERT_QE_REPORT:
        raise EvidenceFormatError(f"{what}: certification data type {outer_kind} where 6 (QE report) is required")
    inner = Reader(outer, f"{what} QE report certification data")
    qe_report, qe_sig, auth = _parse_qe_block(inner)
    kind, cert = _parse_cert_data(inner)
    _expect_end(inner)
    return qe_report, qe_sig, auth, kind, cert


def _expect_end(r: Reader) -> None:
    if r.remaining:
        raise EvidenceFormatError(f"{r.what}: {r.remaining} unexpected bytes after the last field")
