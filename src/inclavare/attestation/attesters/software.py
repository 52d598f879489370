"""The software attester: reports of the built-in (native, wasm) enclave runtimes.

There is no hardware here. The host's Ed25519 software-TEE key signs a
report about a signed enclave's identity (:func:`..software.sign_report`,
which also documents the format). The caller supplies both: the identity a
verified signature proves and the key, e.g.
:func:`inclavare.enclave.identity.verify_signature` and
:class:`inclavare.enclave.identity.HostKey`. A verifier accepts the result
only if it trusts that host key *and* its policy sets ``allow_software``.
Ed25519 signatures are deterministic (RFC 8032 section 5.1.6), so with a
seeded key the evidence is byte-for-byte reproducible.
"""

from __future__ import annotations

from ..claims import Evidence, EvidenceKind, Tee
from ..errors import AttesterError
from ..software import HostSigningKey, SoftwareIdentity, sign_report
from .interface import AttesterOptions


class SoftwareAttester:
    """Software evidence for one enclave identity, signed with one host key."""

    name = "software"
    tee = Tee.SOFTWARE

    def __init__(self, identity: SoftwareIdentity, host_key: HostSigningKey) -> None:
        self.identity = identity
        self.host_key = host_key

    def __repr__(self) -> str:
        return f"SoftwareAttester(measurement={self.identity.measurement.hex()[:16]}..., {self.host_key!r})"

    @classmethod
    def from_options(cls, options: AttesterOptions) -> SoftwareAttester:
        if options.identity is None:
            raise AttesterError(
                "software attester: needs the identity of a signed enclave (manifest, signature and rootfs)"
            )
        if options.host_key is None:
            raise AttesterError("software attester: needs the host's software-TEE key")
        return cls(options.identity, options.host_key)

    def collect_evidence(self, report_data: bytes) -> Evidence:
        return Evidence(EvidenceKind.SOFTWARE, sign_report(self.identity, report_data, self.host_key))
