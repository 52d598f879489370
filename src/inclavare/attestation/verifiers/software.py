"""Software evidence from the built-in software enclave runtimes (format: :mod:`..software`).

Checks: the deterministic COSE_Sign1 encoding, and the Ed25519 signature by
a host key that the collateral store lists as trusted. There is no hardware
root of trust, so there is no TCB status; the recipe refuses software
evidence unless the policy sets ``allow_software``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ..claims import EvidenceKind, SoftwareClaims, TcbResult, Tee, VerifiedClaims, jsonable
from ..collateral import CollateralStore
from ..errors import CollateralError
from ..software import SoftwareReport, decode_report, verify_report


class SoftwareEvidenceVerifier:
    kind = EvidenceKind.SOFTWARE

    def inspect(self, data: bytes) -> dict[str, object]:
        out = jsonable(claims_of(decode_report(data)))
        assert isinstance(out, dict)
        return out

    def verify(self, data: bytes, *, at: datetime, collateral: CollateralStore) -> VerifiedClaims:
        if not collateral.host_keys:
            raise CollateralError("software evidence: no trusted software-TEE host keys in the collateral")
        report = verify_report(data, collateral.host_keys)
        return VerifiedClaims(
            kind=self.kind, tee=Tee.SOFTWARE, claims=claims_of(report), tcb=TcbResult(status=None), verified_at=at
        )


def claims_of(report: SoftwareReport) -> SoftwareClaims:
    """The report's claims: every field of SoftwareClaims, which the report has too.

    :mod:`..software` declares its own SoftwareReport rather than extend the
    claims class: software enclaves import it to sign, and the claims module
    costs ~6 ms of dataclass construction they have no use for.
    """
    return SoftwareClaims(**{f.name: getattr(report, f.name) for f in dataclasses.fields(SoftwareClaims)})
