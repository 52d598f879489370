"""EnclaveIdentity: what a verified signature says an enclave is (MRENCLAVE, MRSIGNER, ...).

The software counterpart of the identity fields of an SGX REPORT body
(Intel SDM Vol. 3D §38.15 "REPORT"): MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN
and ATTRIBUTES. Here ``signer`` (MRSIGNER) is SHA-256 of the signer's public
key as DER SubjectPublicKeyInfo — not SGX's SHA-256 of the little-endian RSA
modulus, because Ed25519 signers have no modulus; one rule covers both key
types. The attributes always say ``software: True``: no hardware protects
this enclave (see docs/enclave-identity.md).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib


class Policy(enum.Enum):
    """Which identity a sealing key is bound to (SGX KEYREQUEST.KEYPOLICY)."""

    MRENCLAVE = "mrenclave"  # this exact enclave only
    MRSIGNER = "mrsigner"  # any enclave of this signer and product id with SVN >= the sealer's


@dataclasses.dataclass(frozen=True)
class EnclaveIdentity:
    measurement: bytes  # 32 bytes, see inclavare.enclave.identity.measure
    signer: bytes  # 32 bytes, SHA-256(DER SubjectPublicKeyInfo of the signing key)
    isv_prod_id: int  # uint16
    isv_svn: int  # uint16
    debug: bool

    def __post_init__(self) -> None:
        if len(self.measurement) != 32 or len(self.signer) != 32:
            raise ValueError("measurement and signer must be 32 bytes")
        if not (0 <= self.isv_prod_id <= 0xFFFF and 0 <= self.isv_svn <= 0xFFFF):
            raise ValueError("isv_prod_id and isv_svn must be uint16")

    @property
    def attributes(self) -> dict[str, bool]:
        """Attributes as reports carry them; ``software`` is always True."""
        return {"software": True, "debug": self.debug}

    def to_json(self) -> dict[str, object]:
        return {
            "measurement": self.measurement.hex(),
            "signer": self.signer.hex(),
            "isv_prod_id": self.isv_prod_id,
            "isv_svn": self.isv_svn,
            "debug": self.debug,
            "software": True,
        }


def signer_id(spki_der: bytes) -> bytes:
    """MRSIGNER analogue: SHA-256 over the DER SubjectPublicKeyInfo of the signing key."""
    return hashlib.sha256(spki_der).digest()
