"""Appraising an RA-TLS peer: its certificate through :func:`inclavare.attestation.verify`, then policy.

A :class:`VerifyPolicy` is the relying party's side of rats-tls's verifier
plus its verification callback (rats-tls ``api.h``,
``rats_tls_set_verification_callback``: rats-tls itself compares no
MRENCLAVE/MRSIGNER; that policy belongs to the callback).
Here the reference values live in the existing
:class:`~inclavare.attestation.Policy` (allowed ``measurements`` and
``signers``, ``min_svn``, acceptable TCB statuses, ``allow_debug``,
``allow_software``), and an optional ``callback`` sees the verified claims
last and may refuse by raising an AttestationError.

:meth:`VerifyPolicy.verify_certificate` runs, in order:

1. software evidence is refused up front unless the policy allows software
   (as :func:`~inclavare.attestation.verify` does for bare software evidence);
2. endorsements carried in the certificate (2.23.133.5.4.2) join a copy of the
   collateral store for this one verification; they are untrusted input and
   are checked against the pinned roots like any collateral;
3. ``verify()`` at ``clock()``: certificate self-signature and validity, the
   evidence in full, the binding of REPORT_DATA to the certificate key
   (TCG DICE, legacy 1.2.840.113741.1337.x and Gramine's encodings), policy;
4. the key the evidence binds must be this certificate's key;
5. the callback, if any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import verify
from ..claims import EvidenceKind, TcbStatus, VerifiedClaims
from ..collateral import CollateralStore
from ..errors import EvidenceFormatError, PolicyRejected, VerificationFailed
from ..formats import detect
from ..hazmat import ratls, x509lite
from ..policy import Policy
from .endorsements import OID_ENDORSEMENTS, Endorsements, merged


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, eq=False)
class VerifyPolicy:
    """How to appraise a peer: reference values (``policy``), endorsements, clock, callback."""

    policy: Policy = field(default_factory=Policy)
    collateral: CollateralStore = field(default_factory=CollateralStore)
    callback: Callable[[VerifiedClaims], None] | None = None
    use_endorsements: bool = True
    clock: Callable[[], datetime] = utc_now

    @classmethod
    def reference_values(
        cls,
        *,
        measurements: Iterable[bytes] = (),
        signers: Iterable[bytes] = (),
        min_svn: int | None = None,
        accept_tcb_status: Iterable[TcbStatus] = (TcbStatus.UP_TO_DATE,),
        allow_debug: bool = False,
        allow_software: bool = False,
        collateral: CollateralStore | None = None,
        callback: Callable[[VerifiedClaims], None] | None = None,
    ) -> VerifyPolicy:
        """The common case in one call; everything maps onto :class:`~inclavare.attestation.Policy`."""
        policy = Policy(
            accept_tcb_status=frozenset(accept_tcb_status),
            allow_debug=allow_debug,
            allow_software=allow_software,
            measurements=frozenset(measurements),
            signers=frozenset(signers),
            min_svn=min_svn,
            name="ratls reference values",
        )
        return cls(policy, collateral if collateral is not None else CollateralStore(), callback)

    def verify_certificate(self, der: bytes) -> VerifiedClaims:
        """The peer's verified claims, or an AttestationError naming the check that failed."""
        cert = x509lite.load(der)
        evidence = ratls.extract(cert)
        if not self.policy.allow_software and _is_software(evidence.evidence):
            raise PolicyRejected("allow_software", "software evidence is not accepted by this policy")
        store = self.collateral
        if self.use_endorsements:
            raw = [value for oid, _, value in cert.extensions if oid == OID_ENDORSEMENTS]
            if len(raw) > 1:
                raise EvidenceFormatError("ratls certificate: more than one endorsements extension")
            if raw and _kind(evidence.evidence) not in (EvidenceKind.SGX_QUOTE, EvidenceKind.TDX_QUOTE):
                raise EvidenceFormatError("ratls certificate: endorsements accompany SGX/TDX quotes only")
            if raw:
                store = merged(store, Endorsements.decode(raw[0]))
        result = verify(der, at=self.clock(), collateral=store, policy=self.policy)
        if result.kind != EvidenceKind.RATLS_CERTIFICATE or result.bound_key != cert.spki:
            raise VerificationFailed("ratls peer", "the evidence does not bind the key of the TLS certificate")
        if self.callback is not None:
            self.callback(result)
        return result


def peer_custom_claims(der: bytes) -> dict[str, bytes]:
    """The custom claims of a certificate (rats-tls hands them to its verification callback)."""
    return ratls.custom_claims(ratls.extract(x509lite.load(der)))


def _is_software(evidence: bytes) -> bool:
    return _kind(evidence) == EvidenceKind.SOFTWARE


def _kind(evidence: bytes) -> EvidenceKind | None:
    try:
        return detect(evidence)
    except EvidenceFormatError:
        return None  # the verifier names the format problem
