"""REPORT_DATA: the caller's 64 bytes that every kind of evidence binds.

SGX REPORTDATA (Intel SDM Vol. 3D, 38.15 "REPORT"), TDX REPORTDATA (TDX
module ABI, TDG.MR.REPORT), SEV-SNP REPORT_DATA (AMD SEV-SNP ABI, "ATTESTATION_REPORT
structure") and software evidence's ``report_data`` (:mod:`.software`) are
all 64 bytes. An RA-TLS certificate puts a hash of its key there, a KBS
challenge a hash of its nonce and the TEE key (docs/kbs.md).

The size itself is :data:`inclavare.attestation.REPORT_DATA_SIZE` (in the
package, so that code on rune's paths can use it for free); this module adds
the check every attester makes.
"""

from __future__ import annotations

from . import REPORT_DATA_SIZE
from .errors import AttesterError


def check_report_data(attester: str, report_data: bytes) -> bytes:
    """``report_data`` as bytes, or AttesterError if it is not exactly 64 bytes."""
    if len(report_data) != REPORT_DATA_SIZE:
        raise AttesterError(
            f"{attester} attester: report data must be {REPORT_DATA_SIZE} bytes, not {len(report_data)}"
        )
    return bytes(report_data)
