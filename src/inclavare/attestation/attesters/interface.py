"""The attester interface (RATS role "Attester", RFC 9334 section 3.1), its options and errors.

An attester turns 64 bytes of caller data (REPORT_DATA: for RA-TLS the
hash of the certificate key, docs/ratls.md) into :class:`Evidence`
that a verifier (:func:`inclavare.attestation.verify`) can appraise. It
mirrors rats-tls's attester plugins (``attester_opts_t``:
``collect_evidence(ctx, evidence, algo, hash)``) minus the plugin loader:
:mod:`.` keeps a registry keyed by TEE name.

Its errors (:class:`AttesterError` and subclasses) are drawn with the rest
of the attestation tree in :mod:`inclavare.attestation.errors`.

Nothing here logs: an attester handles no secret but the host key of the
software attester, which never leaves the key object the caller passes in
(:class:`~inclavare.attestation.software.HostSigningKey`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..claims import Evidence, Tee

if TYPE_CHECKING:
    from ..software import HostSigningKey, SoftwareIdentity

DEFAULT_TSM_ROOT = "/sys/kernel/config/tsm/report"  # Linux Documentation/ABI/testing/configfs-tsm
DEFAULT_AESM_SOCKET = "/var/run/aesmd/aesm.socket"  # where linux-sgx's aesmd listens


class LocalReporter(Protocol):
    """What the SGX attester needs from an enclave runtime (``EnclaveRuntime.local_report``)."""

    def local_report(self, target_info: bytes, report_data: bytes) -> bytes: ...


class Attester(Protocol):
    """Produces evidence about the TEE it runs in, binding caller-chosen report data."""

    name: str  # the registry key: "software", "sgx", "tdx", "sev-snp"
    tee: Tee

    def collect_evidence(self, report_data: bytes) -> Evidence:
        """Evidence whose REPORT_DATA is exactly ``report_data`` (64 bytes)."""
        ...


@dataclass(frozen=True)
class AttesterOptions:
    """Everything any registered attester may need; each takes what it uses.

    ``identity``/``host_key``: the software attester (the identity of a signed
    enclave, from :func:`~inclavare.enclave.identity.verify_signature`, and
    the host's software-TEE key, :class:`~inclavare.enclave.identity.HostKey`).
    ``tsm_root``/``privlevel``: the configfs-tsm attesters (TDX, SEV-SNP).
    ``runtime``/``aesm_socket``: the SGX attester.
    """

    identity: SoftwareIdentity | None = None
    host_key: HostSigningKey | None = None
    tsm_root: str = DEFAULT_TSM_ROOT
    privlevel: int | None = None
    runtime: LocalReporter | None = None
    aesm_socket: str = DEFAULT_AESM_SOCKET
