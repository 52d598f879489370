"""The null attester and null verifier: an explicit, loudly unattested development mode.

rats-tls has both (github.com/inclavare-containers/rats-tls 6675532):
``nullattester`` collects no evidence, so ``rtls_core_generate_certificate``
writes no 2.23.133.5.4.9 extension (src/core/rtls_core_generate_certificate.c);
a verifier that finds none switches to ``nullverifier``, whose
``verify_evidence`` accepts anything (src/tls_wrappers/api/
tls_wrapper_verify_certificate_extension.c, src/verifiers/nullverifier/).
rats-tls also picks them on its own, at priority 0, when no other
instance initialises.

Here they exist only when named: :class:`NullAttester` and
:class:`NullVerifier` are constructed by the caller (``--attester null``,
``--verifier null``); a :class:`~.peer.VerifyPolicy` refuses a certificate
without evidence and nothing falls back to null. Every certificate issued
and every peer accepted this way is logged as a warning that starts with
``UNATTESTED``, and the connection says so (``AttestedSocket.unattested``).
"""

from __future__ import annotations

import logging

from ..errors import AttestationError
from ..hazmat import ratls, x509lite
from ..hazmat.guard import contained

log = logging.getLogger("inclavare.ratls")
UNATTESTED = "UNATTESTED"


def warn_unattested(what: str) -> None:
    log.warning("%s: %s", UNATTESTED, what)


class NullAttester:
    """Proves nothing: the certificate carries no evidence (rats-tls ``nullattester``)."""

    name = "null"

    def __repr__(self) -> str:
        return "NullAttester()"


class NullVerifier:
    """Accepts any peer certificate without appraising it (rats-tls ``nullverifier``)."""

    name = "null"

    def __repr__(self) -> str:
        return "NullVerifier()"

    def verify_certificate(self, der: bytes) -> None:
        """Log the acceptance; the certificate's evidence, if any, is not looked at beyond its presence."""
        warn_unattested(f"accepted a peer without appraisal (--verifier null); {self.describe(der)}")

    @staticmethod
    def describe(der: bytes) -> str:
        try:
            with contained("ratls certificate"):
                names = {oid for oid, _, _ in x509lite.load(der).extensions}
        except AttestationError:  # not even a certificate we can read; accepted all the same
            return "its certificate could not be read"
        if names & {ratls.DICE_TAGGED_EVIDENCE, *ratls.LEGACY_OIDS}:
            return "its certificate carries evidence that was NOT verified"
        return "its certificate carries no evidence"
