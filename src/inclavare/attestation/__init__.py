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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._recipes import inspect, verify
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
    from .errors import (
        AttestationError,
        CollateralError,
        CollateralExpired,
        EvidenceFormatError,
        PolicyFileError,
        PolicyRejected,
        VerificationFailed,
        VerifierFault,
    )
    from .formats import detect
    from .policy import Policy

__all__ = [
    "REPORT_DATA_SIZE",
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
    "VerifierFault",
    "detect",
    "inspect",
    "verify",
]

# The caller data every kind of evidence binds (docs/attestation.md, "Report data"):
# SGX and TDX REPORTDATA, SEV-SNP REPORT_DATA, software evidence's report_data.
# Here, in the package itself, so that the enclave agent on `rune exec`'s path
# loads nothing more to check a size against it.
REPORT_DATA_SIZE = 64

# Names are imported on first use (PEP 562): `inclavare.attestation.software`,
# which every software enclave loads to sign its reports, must not pull in
# the X.509, collateral and verifier machinery (~60 ms) it never uses.
_WHERE = {
    **dict.fromkeys(("Evidence", "EvidenceKind", "NitroClaims", "Role", "SgxClaims", "SnpClaims", "SoftwareClaims",
                     "TcbResult", "TcbStatus", "TdxClaims", "Tee", "VerifiedClaims"), ".claims"),
    **dict.fromkeys(("AttestationError", "CollateralError", "CollateralExpired", "EvidenceFormatError",
                     "PolicyFileError", "PolicyRejected", "VerificationFailed", "VerifierFault"), ".errors"),
    "CollateralStore": ".collateral",
    "Policy": ".policy",
    "detect": ".formats",
    "inspect": "._recipes",
    "verify": "._recipes",
}  # fmt: skip


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # here, not above: the enclave agent (`rune exec`) imports this package for one constant

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
