"""Shared pieces of the RA-TLS tests: a software enclave identity, its host key, loopback servers."""

from __future__ import annotations

import socket
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from inclavare.attestation import CollateralStore, Policy
from inclavare.attestation.attesters import AttesterOptions, SoftwareAttester, create
from inclavare.attestation.ratls import AttestedSocket, RatlsContext, VerifyPolicy, accept
from inclavare.attestation.ratls.certificate import SUBJECT, PrivateKey
from inclavare.enclave.identity import EnclaveIdentity, HostKey

VECTORS = Path(__file__).resolve().parents[3] / "vectors"
IDENTITY = EnclaveIdentity(measurement=b"M" * 32, signer=b"S" * 32, isv_prod_id=1, isv_svn=5, debug=False)
CLIENT_IDENTITY = EnclaveIdentity(measurement=b"C" * 32, signer=b"S" * 32, isv_prod_id=2, isv_svn=1, debug=False)
HOST_KEY = HostKey.from_seed(b"\x11" * 32)


def attester(identity: EnclaveIdentity = IDENTITY) -> SoftwareAttester:
    made = create("software", AttesterOptions(identity=identity, host_key=HOST_KEY))
    assert isinstance(made, SoftwareAttester)
    return made


def trusted_store() -> CollateralStore:
    store = CollateralStore()
    store.add_host_key(HOST_KEY.public_key)
    return store


def software_policy(**policy: object) -> VerifyPolicy:
    return VerifyPolicy(Policy(allow_software=True, **policy), trusted_store())  # type: ignore[arg-type]


def self_signed(key: PrivateKey, extensions: dict[str, bytes], not_before: datetime, not_after: datetime) -> bytes:
    """A self-signed certificate with raw extensions, for shapes :func:`issue` never produces."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(SUBJECT)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for oid, value in extensions.items():
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


class Loopback:
    """A listening socket on 127.0.0.1 whose next connection is handled in a worker thread."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(10)
        self.address: tuple[str, int] = self.listener.getsockname()
        self.pool = ThreadPoolExecutor(max_workers=1)

    def serve(self, context: RatlsContext, echo: bool = True) -> Future[AttestedSocket | None]:
        def run() -> AttestedSocket | None:
            conn = accept(self.listener, context)
            if not echo:
                return conn
            with conn:
                data = conn.recv(1024)
                conn.sendall(b"echo:" + data)
            return conn

        return self.pool.submit(run)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.listener.close()
