"""The genuine Gramine RA-TLS vector set (tests/vectors/README.md, ``sgx-gramine-ratls``)."""

from __future__ import annotations

from datetime import UTC, datetime

from inclavare.attestation import CollateralStore
from inclavare.attestation.ratls import Endorsements

from .world import VECTORS

AT = datetime(2025, 9, 1, tzinfo=UTC)  # the set's verify_at
DIR = VECTORS / "sgx/gramine-ratls"
CERT = (DIR / "tlscert.der").read_bytes()
QUOTE = (DIR / "ratls_quote.bin").read_bytes()
COLLATERAL = VECTORS / "sgx/collateral-00606A000000-2025-08"
FILES = {
    "tcb_info": COLLATERAL / "sgx_tcbinfov3_00606a000000.json",
    "tcb_issuer_chain": VECTORS / "roots/intel_tcb_signing_chain_2025.pem",
    "crl_pck_cert": COLLATERAL / "platform_crl.der",
    "crl_pck_proc_ca": VECTORS / "roots/intel_sgx_root_ca_crl_2025-03-20.der",
    "crl_issuer_chain_pck_cert": VECTORS / "roots/intel_pck_platform_ca_chain.pem",
    "qe_id_info": COLLATERAL / "sgx_qeidentity_v4.json",
    "qe_id_issuer_chain": VECTORS / "roots/intel_tcb_signing_chain_2025.pem",
}


def store() -> CollateralStore:
    return CollateralStore.from_files(str(p) for p in dict.fromkeys(FILES.values()))


def endorsements() -> Endorsements:
    """The set's collateral the way DCAP hands it over: C strings, the PCK CRL as hex DER."""
    raw = {name: path.read_bytes() for name, path in FILES.items()}
    raw["tcb_info"] += b"\0"
    raw["qe_id_info"] += b"\0"
    raw["crl_pck_cert"] = raw["crl_pck_cert"].hex().encode() + b"\0"
    return Endorsements(version=3, **raw)
