"""Evidence providers: what produces evidence over the report data a KBS challenge asks for.

An :class:`EvidenceProvider` names its ``tee`` (the kbs-types name the KBC
declares in its Request) and turns 64 bytes of report data into evidence.
:class:`SoftwareEvidenceProvider` is the built-in one for the software
enclave runtimes: the enclave's identity comes from a verified signature
(:func:`inclavare.enclave.identity.verify_signature`) and the host's
software-TEE key signs the report (:func:`inclavare.enclave.identity.report.local_report`).
Hardware TEEs plug in their own provider (e.g. an SGX quote via the PAL's
``pal_get_local_report`` + a quoting enclave, or TDX through configfs-tsm).
"""

from __future__ import annotations

from typing import Protocol

from ..enclave.identity import EnclaveIdentity, HostKey, verify_signature
from ..enclave.identity.report import local_report


class EvidenceProvider(Protocol):
    @property
    def tee(self) -> str: ...

    def evidence(self, report_data: bytes) -> bytes:
        """Evidence whose report data is exactly ``report_data`` (64 bytes)."""
        ...


class SoftwareEvidenceProvider:
    """Software evidence for one enclave identity, signed by this host's software-TEE key."""

    tee = "software"

    def __init__(self, identity: EnclaveIdentity, host_key: HostKey | None = None) -> None:
        self.identity = identity
        self.host_key = host_key if host_key is not None else HostKey.load_or_create()

    @classmethod
    def from_signed_enclave(
        cls, manifest: str, sig: str, rootfs: str, host_key: HostKey | None = None
    ) -> SoftwareEvidenceProvider:
        """The identity a verified signature proves (never one taken from flags)."""
        return cls(verify_signature(manifest, sig, rootfs), host_key)

    def evidence(self, report_data: bytes) -> bytes:
        return local_report(self.identity, report_data, self.host_key)
