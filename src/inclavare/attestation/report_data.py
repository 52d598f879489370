"""The report-data check every attester makes (docs/attestation.md, "Report data").

The size is :data:`inclavare.attestation.REPORT_DATA_SIZE`, in the package
itself so that code on rune's paths uses it without loading this module.
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
