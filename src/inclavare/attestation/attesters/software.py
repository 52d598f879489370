"""The software attester: reports of the built-in (native, wasm) enclave runtimes.

There is no hardware here. The host's Ed25519 software-TEE key
(:class:`~inclavare.enclave.identity.HostKey`) signs a report about a signed
enclave's identity (:func:`~inclavare.enclave.identity.report.local_report`;
format in :mod:`inclavare.attestation.software`). A verifier accepts the
result only if it trusts that host key *and* its policy sets
``allow_software``. Ed25519 signatures are deterministic (RFC 8032
section 5.1.6), so with a seeded key the evidence is byte-for-byte
reproducible.
"""

from __future__ import annotations

from ...enclave.identity import EnclaveIdentity, HostKey
from ...enclave.identity.report import local_report
from ..claims import Evidence, EvidenceKind, Tee
from .interface import AttesterError, AttesterOptions, check_report_data


class SoftwareAttester:
    """Software evidence for one enclave identity, signed with one host key."""

    name = "software"
    tee = Tee.SOFTWARE

    def __init__(self, identity: EnclaveIdentity, host_key: HostKey) -> None:
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
        key = options.host_key if options.host_key is not None else HostKey.load_or_create()
        return cls(options.identity, key)

    def collect_evidence(self, report_data: bytes) -> Evidence:
        data = local_report(self.identity, check_report_data(self.name, report_data), self.host_key)
        return Evidence(EvidenceKind.SOFTWARE, data)
