"""The verifier registry: evidence kind -> verifier (one module per TEE, no if-chain).

Add a TEE by writing a module with a class that satisfies
:class:`~.interface.Verifier` and registering an instance in ``REGISTRY``.
"""

from __future__ import annotations

from ..claims import EvidenceKind
from ..errors import EvidenceFormatError
from .azure_hcl import AzureHclVerifier
from .interface import Verifier
from .nitro import NitroDocumentVerifier
from .ratls import RatlsCertificateVerifier
from .sgx import SgxQuoteVerifier
from .snp import SnpReportVerifier
from .software import SoftwareEvidenceVerifier
from .tdx import TdxQuoteVerifier

# Evidence that stands alone; an RA-TLS certificate carries one of these.
_PLAIN: dict[EvidenceKind, Verifier] = {
    v.kind: v
    for v in (
        SgxQuoteVerifier(),
        TdxQuoteVerifier(),
        SnpReportVerifier(),
        AzureHclVerifier(),
        NitroDocumentVerifier(),
        SoftwareEvidenceVerifier(),
    )
}
REGISTRY: dict[EvidenceKind, Verifier] = {**_PLAIN, EvidenceKind.RATLS_CERTIFICATE: RatlsCertificateVerifier(_PLAIN)}


def get_verifier(kind: EvidenceKind) -> Verifier:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise EvidenceFormatError(f"evidence: no verifier for {kind.value}") from None


__all__ = ["REGISTRY", "Verifier", "get_verifier"]
