"""Errors of :mod:`inclavare.attestation`, all subclasses of :class:`~inclavare.errors.AttestationError`.

    AttestationError
    ├── EvidenceFormatError   the evidence bytes are malformed (truncated, bad length, unknown format)
    ├── CollateralError       collateral is missing or malformed (TCB info, QE identity, CRL, VCEK...)
    ├── VerificationFailed    a check failed; ``.check`` names it (``"sgx quote signature"``)
    │   ├── OutsideValidity   a certificate or collateral is not valid at the verification instant
    │   │   └── CollateralExpired  collateral is past its nextUpdate at the verification instant
    │   ├── UntrustedKey      signed by a key the verifier does not trust (a software-TEE host key)
    │   └── VerifierFault     a verifier met an exception no parser mapped: refused (fail closed)
    ├── PolicyRejected        genuine evidence that the appraisal policy does not accept
    ├── PolicyFileError       a policy file is unreadable or invalid (names file and key)
    └── AttesterError         evidence could not be produced (names attester and step; :mod:`.attesters`)
        ├── NotSupportedOnPlatform   this host lacks the TEE or its service
        └── TsmRace                  configfs-tsm generation changed under us every time

Every message is one line that starts with the check that failed, e.g.
``sgx quote: QE report signature does not verify under the PCK certificate``.
Those details are for logs and operators. A relying party that answers remote
peers must not pass them on: at most a coarse category chosen by the class
(the key broker: ``attestation failed: no trusted host key``, kbs/errors.py),
so that a peer learns nothing about which check tripped (no oracle; see
docs/attestation.md).
"""

from __future__ import annotations

from ..errors import AttestationError

__all__ = [
    "AttestationError",
    "AttesterError",
    "CollateralError",
    "CollateralExpired",
    "EvidenceFormatError",
    "NotSupportedOnPlatform",
    "OutsideValidity",
    "PolicyFileError",
    "PolicyRejected",
    "TsmRace",
    "UntrustedKey",
    "VerificationFailed",
    "VerifierFault",
]


class EvidenceFormatError(AttestationError):
    """The evidence cannot be parsed: wrong magic, truncated, inconsistent lengths."""


class CollateralError(AttestationError):
    """Collateral needed for verification is missing from the store or malformed."""


class VerificationFailed(AttestationError):
    """A verification check failed; :attr:`check` names it for logs and tests."""

    def __init__(self, check: str, reason: str) -> None:
        self.check = check
        self.reason = reason
        super().__init__(f"{check}: {reason}")


class OutsideValidity(VerificationFailed):
    """A certificate (RFC 5280 4.1.2.5) or collateral is not valid at the verification instant."""


class UntrustedKey(VerificationFailed):
    """The evidence is signed by a key the verifier was not told to trust (a software-TEE host key)."""


class CollateralExpired(OutsideValidity):
    """TCB info, QE identity or a CRL was past its nextUpdate at the verification instant."""


class VerifierFault(VerificationFailed):
    """A verifier raised something that is not an AttestationError (a bug, or a library failing
    in a new way on hostile input). The evidence is refused all the same; ``__cause__`` keeps
    the original exception for ``--debug`` and server logs."""

    def __init__(self, kind: str, cause: str) -> None:
        super().__init__(f"{kind} verifier", f"unexpected {cause}; the evidence is refused")


class PolicyRejected(AttestationError):
    """The evidence verified, but the appraisal policy does not accept its claims."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"policy: {field}: {reason}")


class PolicyFileError(AttestationError):
    """A policy file or policy value is invalid; the message names the file and key."""


class AttesterError(AttestationError):
    """Evidence could not be produced; the message names the attester and the failed step."""


class NotSupportedOnPlatform(AttesterError):
    """The TEE (or the host service it needs) is not present on this machine."""

    def __init__(self, attester: str, reason: str) -> None:
        self.attester = attester
        self.reason = reason
        super().__init__(f"{attester} attester: not supported on this platform: {reason}")


class TsmRace(AttesterError):
    """Another writer kept changing a configfs-tsm report entry while we read it."""
