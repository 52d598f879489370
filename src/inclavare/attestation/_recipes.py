"""The recipes behind :mod:`inclavare.attestation`: :func:`verify` and :func:`inspect`."""

from __future__ import annotations

from datetime import UTC, datetime

from .claims import (
    Evidence,
    EvidenceKind,
    VerifiedClaims,
)
from .collateral import CollateralStore
from .errors import (
    EvidenceFormatError,
    PolicyRejected,
    VerificationFailed,
)
from .formats import detect
from .policy import Policy
from .verifiers import get_verifier


def verify(evidence: bytes | Evidence, *, at: datetime, collateral: CollateralStore, policy: Policy) -> VerifiedClaims:
    """Verify ``evidence`` completely at instant ``at``, then apply ``policy``.

    ``evidence`` is raw bytes, or an :class:`Evidence` whose declared kind
    must match what the bytes are (an attester cannot relabel evidence).
    """
    when = _utc(at)
    data = evidence.data if isinstance(evidence, Evidence) else evidence
    kind = detect(data)
    if isinstance(evidence, Evidence) and evidence.kind != kind:
        raise EvidenceFormatError(f"evidence: declared {evidence.kind.value} but the bytes are a {kind.value}")
    if kind == EvidenceKind.SOFTWARE and not policy.allow_software:
        raise PolicyRejected("allow_software", "software evidence is not accepted by this policy")
    result = get_verifier(kind).verify(data, at=when, collateral=collateral)
    policy.check(result)
    return result


def inspect(evidence: bytes) -> dict[str, object]:
    """Decode evidence without verifying anything (for humans and debugging)."""
    kind = detect(evidence)
    return {"kind": kind.value, "verified": False, **get_verifier(kind).inspect(evidence)}


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise VerificationFailed("verification instant", "must be timezone-aware (UTC), not a naive datetime")
    return at.astimezone(UTC)
