"""Everything the enclave side of provisioning runs, once, before pivot_root.

After pivot_root the host's Python is out of reach: an import, a codec
lookup (ssl encodes the server name with the ``idna`` codec; canonical JSON
sorts keys through UTF-16), an OpenSSL configuration or provider load would
fail there. So init runs the whole path here against throw-away keys: a TLS
handshake with a key pin over a socketpair to a server thread, an HTTP
exchange with a cookie through the same httpx transport, the RCAR binding
and a JWE round trip (docs/architecture.md, "Start-up").
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import socket
import ssl
import threading

import httpcore
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ...kbs import client, jwe
from ...kbs.protocol.handshake import ClientHandshake
from . import fetch  # noqa: F401 - loaded for receive
from .pin import BrokerTrust, client_context
from .tunnel import Tunnel, TunnelStream, TunnelTransport

_ANSWER = b'{"nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "extra-params": {}}'


def dry_run(tee: str) -> None:
    if tee != "software":
        from ...attestation.attesters import sgx  # noqa: F401 - an SGX PAL's attester (fetch.attester_of)
    key = jwe.TeeKey.generate()
    hs = ClientHandshake("software", key.public_jwk())
    hs.challenge({"nonce": base64.b64encode(bytes(32)).decode(), "extra-params": {}})
    key.decrypt(jwe.encrypt(key.public_jwk(), b"dry run"))
    cert, server_context = _throwaway_server()
    der = cert.public_bytes(serialization.Encoding.DER)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    trust = BrokerTrust(["https://localhost:443"], client_context(pem), (hashlib.sha256(spki).digest(),), True)
    trust.check_peer(der, "dry run")
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server = threading.Thread(target=_serve_once, args=(server_context, theirs), daemon=True)
    server.start()
    try:
        with httpx.Client(transport=TunnelTransport(_Given(mine, trust)), timeout=5.0) as http:
            response = http.post("https://localhost/kbs/v0/auth", json={"version": "0.4.0"})
            client.document(response)
            assert response.cookies.get("kbs-session-id") == "dry"
    finally:
        server.join(5.0)
        mine.close()
    a, b = socket.socketpair()
    with a, b:
        socket.send_fds(a, [b"c"], [b.fileno()])
        for fd in socket.recv_fds(b, 16, 1)[1]:
            socket.close(fd)


class _Given(Tunnel):
    """A tunnel whose one connection is already there (no rune to ask)."""

    def __init__(self, sock: socket.socket, trust: BrokerTrust) -> None:
        self.sock, self.trust = sock, trust

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: object = None) -> httpcore.NetworkStream:  # fmt: skip
        return TunnelStream(self.sock, self.trust, "https://localhost:443")


def _throwaway_server() -> tuple[x509.Certificate, ssl.SSLContext]:
    import os

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(minutes=5))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain reads files only: an anonymous one (memfd_create(2)), never on a disk.
    fd = os.memfd_create("dry-run-key", os.MFD_CLOEXEC)
    try:
        os.write(fd, cert.public_bytes(serialization.Encoding.PEM))
        os.write(fd, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return cert, context


def _serve_once(context: ssl.SSLContext, sock: socket.socket) -> None:
    try:
        with context.wrap_socket(sock, server_side=True) as tls:
            tls.settimeout(5.0)
            request = b""
            while b"\r\n\r\n" not in request:
                request += tls.recv(4096) or b"\r\n\r\n"
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(_ANSWER)}\r\n"
            tls.sendall(head.encode() + b"Set-Cookie: kbs-session-id=dry; Secure; HttpOnly\r\n\r\n" + _ANSWER)
    except OSError:
        pass  # the client side reports what went wrong
