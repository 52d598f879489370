"""`rune attest`: attestation evidence from a running enclave container.

Asks the container's init-runelet, over its agent socket, for a local
report of the enclave instance (``pal_get_local_report`` for v3 PALs, the
Python runtime's own for built-in ones; docs/pal-abi.md, "Calls", and
docs/ratls.md, "SGX: PAL local report and aesmd"). With ``is_ra``,
remote-attestation evidence where the platform has it, and "not supported on
this platform: ..." where it has not.
"""

from __future__ import annotations

from ..errors import ContainerError
from . import enclave_setup
from . import state as st
from .context import RuntimeContext


def attest(ctx: RuntimeContext, container_id: str, report_data: bytes = b"", target_info: bytes = b"",
           is_ra: bool = False, quote_type: str = "") -> bytes:  # fmt: skip
    state = st.load(ctx.root, container_id)
    if "enclave" not in state.extra:
        raise ContainerError(f"container {container_id} is not an enclave container")
    state.require("attest")
    if len(report_data) > 64:
        raise ContainerError("--report-data: at most 64 bytes")
    from .agent_client import attest as request

    sock = enclave_setup.connect(state)
    try:
        return request(sock, report_data, target_info, is_ra, quote_type)
    finally:
        sock.close()
