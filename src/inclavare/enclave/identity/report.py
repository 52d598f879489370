"""Local reports: software evidence about an enclave, signed by the host's software-TEE key.

The software analogue of EREPORT (Intel SDM Vol. 3D §38.15): the report
carries the enclave's identity (measurement, signer, product id, SVN,
attributes ``{debug, software: true}``) plus 64 bytes of caller data
(REPORTDATA — typically a hash of a TLS key or a verifier nonce). SGX MACs
a REPORT with a CPU key only the target enclave can derive; here the host's
Ed25519 key signs it, so any verifier that trusts the host key can check it,
and the report doubles as a quote. The byte format is owned by
:mod:`inclavare.attestation.software` (a COSE_Sign1), whose
``encode_report`` this module calls; this module decides *what* goes in.
Only call it with an identity from :func:`~.signing.verify_signature`: the
report asserts whatever identity it is given.
"""

from __future__ import annotations

from ...attestation.software import encode_report
from .errors import IdentityError
from .hostkey import HostKey
from .identity import EnclaveIdentity

REPORT_DATA_SIZE = 64  # SGX REPORTDATA is 64 bytes


def local_report(identity: EnclaveIdentity, report_data: bytes, host_key: HostKey | None = None) -> bytes:
    """Software evidence for `identity` binding `report_data` (exactly 64 bytes)."""
    if len(report_data) != REPORT_DATA_SIZE:
        raise IdentityError(f"report_data: must be exactly {REPORT_DATA_SIZE} bytes, not {len(report_data)}")
    key = HostKey.load_or_create() if host_key is None else host_key
    return encode_report(
        measurement=identity.measurement,
        signer=identity.signer,
        product_id=identity.isv_prod_id,
        svn=identity.isv_svn,
        debug=identity.debug,
        report_data=bytes(report_data),
        host_key=key.private_key(),
    )
