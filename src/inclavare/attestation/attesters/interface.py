"""The attester interface (RATS role "Attester", RFC 9334 section 3.1), its options and errors.

An attester turns 64 bytes of caller data (REPORT_DATA: for RA-TLS the
hash of the certificate key, inventory section 6.3) into :class:`Evidence`
that a verifier (:func:`inclavare.attestation.verify`) can appraise. It
mirrors rats-tls's attester plugins (inventory section 6.1:
``collect_evidence(ctx, evidence, algo, hash)``) minus the plugin loader:
:mod:`.` keeps a registry keyed by TEE name.

Errors::

    AttestationError (inclavare.errors)
    └── AttesterError             evidence could not be produced (names attester and step)
        ├── NotSupportedOnPlatform   this host lacks the TEE or its service
        └── TsmRace                  configfs-tsm generation changed under us every time

Nothing here logs: an attester handles no secret but the host key of the
software attester, which never leaves :class:`~inclavare.enclave.identity.HostKey`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..claims import Evidence, Tee
from ..errors import AttestationError

if TYPE_CHECKING:
    from ...enclave.identity import EnclaveIdentity, HostKey

REPORT_DATA_SIZE = 64  # SGX REPORTDATA, TDX REPORTDATA, SNP REPORT_DATA, software report_data
DEFAULT_TSM_ROOT = "/sys/kernel/config/tsm/report"  # Linux Documentation/ABI/testing/configfs-tsm
DEFAULT_AESM_SOCKET = "/var/run/aesmd/aesm.socket"  # inventory section 1.8


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
    enclave, from :func:`~inclavare.enclave.identity.verify_signature`).
    ``tsm_root``/``privlevel``: the configfs-tsm attesters (TDX, SEV-SNP).
    ``runtime``/``aesm_socket``: the SGX attester.
    """

    identity: EnclaveIdentity | None = None
    host_key: HostKey | None = None
    tsm_root: str = DEFAULT_TSM_ROOT
    privlevel: int | None = None
    runtime: LocalReporter | None = None
    aesm_socket: str = DEFAULT_AESM_SOCKET


def check_report_data(attester: str, report_data: bytes) -> bytes:
    """``report_data`` as bytes, or AttesterError if it is not exactly 64 bytes."""
    if len(report_data) != REPORT_DATA_SIZE:
        raise AttesterError(
            f"{attester} attester: report data must be {REPORT_DATA_SIZE} bytes, not {len(report_data)}"
        )
    return bytes(report_data)
