"""The recipes behind :mod:`inclavare.attestation`: :func:`verify` and :func:`inspect`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from .claims import (
    Evidence,
    EvidenceKind,
    VerifiedClaims,
)
from .collateral import CollateralStore
from .errors import AttestationError, EvidenceFormatError, PolicyRejected, VerificationFailed, VerifierFault
from .formats import detect
from .hazmat.guard import describe, is_panic
from .policy import Policy
from .verifiers import get_verifier

_T = TypeVar("_T")


def verify(evidence: bytes | Evidence, *, at: datetime, collateral: CollateralStore, policy: Policy) -> VerifiedClaims:
    """Verify ``evidence`` completely at instant ``at``, then apply ``policy``.

    ``evidence`` is raw bytes, or an :class:`Evidence` whose declared kind
    must match what the bytes are (an attester cannot relabel evidence).
    """
    when = _utc(at)
    data = evidence.data if isinstance(evidence, Evidence) else evidence
    kind = _fenced("evidence", lambda: detect(data))
    if isinstance(evidence, Evidence) and evidence.kind != kind:
        raise EvidenceFormatError(f"evidence: declared {evidence.kind.value} but the bytes are a {kind.value}")
    if kind == EvidenceKind.SOFTWARE and not policy.allow_software:
        raise PolicyRejected("allow_software", "software evidence is not accepted by this policy")
    result = _fenced(kind.value, lambda: get_verifier(kind).verify(data, at=when, collateral=collateral))
    _fenced(kind.value, lambda: policy.check(result))
    return result


def inspect(evidence: bytes) -> dict[str, object]:
    """Decode evidence without verifying anything (for humans and debugging)."""
    kind = _fenced("evidence", lambda: detect(evidence))
    return {"kind": kind.value, "verified": False, **_fenced(kind.value, lambda: get_verifier(kind).inspect(evidence))}


def _fenced(kind: str, step: Callable[[], _T]) -> _T:
    """The last line of defence: whatever a verifier raises, the caller gets an AttestationError.

    Parsers map library exceptions themselves, with the field that failed
    (:mod:`.hazmat.guard`); this only catches what they missed, so that a
    relying party fails closed on evidence no parser anticipated.
    """
    try:
        return step()
    except AttestationError:
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise  # KeyboardInterrupt, SystemExit...
        raise VerifierFault(kind, describe(exc)) from exc


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise VerificationFailed("verification instant", "must be timezone-aware (UTC), not a naive datetime")
    return at.astimezone(UTC)
