"""Throw-away certificate authorities for TLS key brokers in tests, the demo and benches.

ca = CertificateAuthority("tenant CA")
cert_pem, key_pem = ca.issue("127.0.0.1")      # a server certificate for an IP or a DNS name
ca.pem                                          # what a client (or a manifest's kbs.cacert) trusts
spki_pin(cert_pem)                              # RFC 7469 pin-sha256 of the certificate's key
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class CertificateAuthority:
    """An EC P-256 root, valid for a day, that issues TLS server certificates."""

    def __init__(self, name: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            _builder(subject, subject, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, host: str) -> tuple[bytes, bytes]:
        """(certificate PEM, private key PEM) for a server at `host` (an IP address or a DNS name)."""
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        cert = (
            _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]), self.cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())  # fmt: skip
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def write_server(self, directory: str, host: str) -> tuple[str, str]:
        """Issue for `host` and write ``tls.crt`` / ``tls.key`` (0600) into `directory`: their paths."""
        cert, key = self.issue(host)
        paths = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
        for path, data, mode in ((paths[0], cert, 0o644), (paths[1], key, 0o600)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
                f.write(data)
        return paths


def spki_pin(cert_pem: bytes) -> str:
    """base64 SHA-256 of the certificate's DER SubjectPublicKeyInfo (RFC 7469 §2.4, ``pin-sha256``)."""
    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
    )  # fmt: skip
