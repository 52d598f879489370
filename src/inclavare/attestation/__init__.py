"""Remote attestation: verify SGX, TDX, SEV-SNP, AWS Nitro and software evidence, offline.

The recipe is one call::

    from datetime import datetime, timezone
    from inclavare.attestation import CollateralStore, Policy, verify

    store = CollateralStore.open("/var/cache/inclavare/collateral")
    claims = verify(evidence, at=datetime.now(timezone.utc), collateral=store, policy=Policy())
    claims.tcb.status, claims.claims.measurement, claims.claims.report_data

:func:`verify` detects the format, runs every check of the matching verifier
(:mod:`.verifiers`) at the instant ``at`` — an input, the library never reads
the clock — and then applies the policy. It returns
:class:`~.claims.VerifiedClaims` or raises a subclass of
:class:`~inclavare.errors.AttestationError` whose one-line message names
the failed check (see :mod:`.errors`; a relying party that answers remote
peers should not forward that message). Parsers, chains and collateral
formats live in :mod:`.hazmat`. Collateral is fetched, if at all, by
:mod:`.fetch`, never during verification. Software evidence has its own
small module, :mod:`.software`. Design notes: docs/attestation.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .claims import (
    Evidence,
    EvidenceKind,
    NitroClaims,
    Role,
    SgxClaims,
    SnpClaims,
    SoftwareClaims,
    TcbResult,
    TcbStatus,
    TdxClaims,
    Tee,
    VerifiedClaims,
)
from .collateral import CollateralStore
from .detect import detect
from .errors import (
    AttestationError,
    CollateralError,
    CollateralExpired,
    EvidenceFormatError,
    PolicyFileError,
    PolicyRejected,
    VerificationFailed,
)
from .policy import Policy
from .verifiers import get_verifier

__all__ = [
    "AttestationError",
    "CollateralError",
    "CollateralExpired",
    "CollateralStore",
    "Evidence",
    "EvidenceFormatError",
    "EvidenceKind",
    "NitroClaims",
    "Policy",
    "PolicyFileError",
    "PolicyRejected",
    "Role",
    "SgxClaims",
    "SnpClaims",
    "SoftwareClaims",
    "TcbResult",
    "TcbStatus",
    "TdxClaims",
    "Tee",
    "VerificationFailed",
    "VerifiedClaims",
    "detect",
    "inspect",
    "verify",
]


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
