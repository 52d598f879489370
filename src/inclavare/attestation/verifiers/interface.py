"""The verifier interface every TEE module implements.

A verifier handles one :class:`~inclavare.attestation.claims.EvidenceKind`.
``verify`` runs *every* check of its evidence against the collateral at the
given instant and returns :class:`~inclavare.attestation.claims.VerifiedClaims`
only when all of them pass; it never applies the appraisal policy (the recipe
does) and never reads the clock. ``inspect`` decodes without verifying, for
humans (``inclavare evidence inspect``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ..claims import EvidenceKind, VerifiedClaims
from ..collateral import CollateralStore


class Verifier(Protocol):
    kind: EvidenceKind

    def inspect(self, data: bytes) -> dict[str, object]:
        """Decoded fields as a JSON-ready dict; raises EvidenceFormatError on malformed input."""
        ...

    def verify(self, data: bytes, *, at: datetime, collateral: CollateralStore) -> VerifiedClaims:
        """All checks; raises an AttestationError subclass naming the failed check."""
        ...
