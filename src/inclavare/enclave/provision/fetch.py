"""RCAR from the init-runelet: kbs/client.py over the tunnel, with the enclave runtime as attester."""

from __future__ import annotations

from ...attestation.claims import Evidence, EvidenceKind, Tee
from ...errors import EnclaveError, InclavareError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import httpx

    from ...attestation.attesters import Attester
    from ..interface import EnclaveRuntime
    from . import KbsPlan


class RuntimeAttester:
    """A software enclave's own reports (``local_report``) as RCAR evidence."""

    name = "software"
    tee = Tee.SOFTWARE

    def __init__(self, rt: EnclaveRuntime) -> None:
        self.rt = rt

    def collect_evidence(self, report_data: bytes) -> Evidence:
        return Evidence(EvidenceKind.SOFTWARE, self.rt.local_report(b"", report_data))


def attester_of(rt: EnclaveRuntime) -> Attester:
    """Software evidence from the built-in runtimes; for an SGX PAL, its REPORT quoted by
    aesmd (mounted into intelSgx containers, enclave/config.py) — a REPORT alone is local only."""
    if rt.probe()["tee"] == "software":
        return RuntimeAttester(rt)
    from ...attestation.attesters.sgx import SgxAttester

    return SgxAttester(rt)


def fetch(rt: EnclaveRuntime, plan: KbsPlan, transport: httpx.BaseTransport, urls: list[str]) -> dict[str, bytes]:
    """Attest once, fetch every resource of the plan: ``{path: plaintext}``; one line on failure."""
    from ...kbs.client import KbsClient

    try:
        with KbsClient(urls, attester_of(rt), transport=transport, retries=2) as client:
            client.attest()
            return {path: client.get_resource(path) for path in plan.resources}
    except InclavareError as exc:  # KbsClientError, BrokerNotTrusted, a JWE or evidence error
        raise EnclaveError(f"secret provisioning: {exc}") from None
