"""What evidence *claims*, read without verifying it: for attesters checking their own output.

An attester checks that the evidence it got back from the kernel or the
quoting service really carries the REPORT_DATA it asked for (a concurrent
writer on a shared configfs-tsm entry, or a PAL that ignores report data,
would otherwise go unnoticed until a verifier refuses the binding), and the
RA-TLS sample server echoes its own measurement and signer. Nothing here is
a verification: :func:`inclavare.attestation.verify` is.

Field sources: SGX quote body MRENCLAVE/MRSIGNER/REPORTDATA and TDX MRTD/
REPORTDATA (Intel ``sgx_quote_3.h``, ``sgx_quote_4.h``; :mod:`..hazmat.reports`);
SNP MEASUREMENT, ID_KEY_DIGEST, REPORT_DATA (AMD SEV-SNP ABI specification,
"ATTESTATION_REPORT Structure"; :mod:`..hazmat.snp`); software evidence
(:mod:`..software`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..claims import Evidence, EvidenceKind
from ..errors import EvidenceFormatError
from ..hazmat.quote import parse_quote
from ..hazmat.reports import SgxReportBody
from ..hazmat.snp import parse_report
from ..software import decode_report


@dataclass(frozen=True)
class Claimed:
    """Unverified identity fields: ``signer`` is empty where the TEE has none (TDX)."""

    measurement: bytes
    signer: bytes
    report_data: bytes


def _quote(data: bytes) -> Claimed:
    body = parse_quote(data, allow_trailing_garbage=True).body
    if isinstance(body, SgxReportBody):
        return Claimed(body.mr_enclave, body.mr_signer, body.report_data)
    return Claimed(body.mr_td, b"", body.report_data)


def _snp(data: bytes) -> Claimed:
    report = parse_report(data, allow_trailing_garbage=True)
    return Claimed(report.measurement, report.id_key_digest, report.report_data)


def _software(data: bytes) -> Claimed:
    report = decode_report(data)
    return Claimed(report.measurement, report.signer, report.report_data)


_PEEK: dict[EvidenceKind, Callable[[bytes], Claimed]] = {
    EvidenceKind.SGX_QUOTE: _quote,
    EvidenceKind.TDX_QUOTE: _quote,
    EvidenceKind.SNP_REPORT: _snp,
    EvidenceKind.SOFTWARE: _software,
}


def claimed(evidence: Evidence) -> Claimed:
    """The identity fields ``evidence`` claims; EvidenceFormatError if it does not parse."""
    peek = _PEEK.get(evidence.kind)
    if peek is None:
        raise EvidenceFormatError(f"evidence: an attester never produces {evidence.kind.value}")
    return peek(evidence.data)
