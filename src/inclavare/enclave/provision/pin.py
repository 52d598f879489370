"""Which broker the enclave side will talk to, and how it recognises it.

Decided inside the container, after the enclave runtime verified its
manifest and before anything is sent:

* the manifest pins brokers (``[kbs]``, enclave/identity/broker.py): every
  URL the host names (``enclave.kbs.url``) must be one of them — the host
  chooses among the replicas, never beyond them — and TLS trusts only the
  pinned CA (``kbs.cacert``, a measured trusted file) and/or key
  (``kbs.pin_sha256``); the host's ``enclave.kbs.cacert`` plays no part;
* the manifest pins nothing (or the runtime has no manifest, a PAL): refused,
  unless the host opted out with ``enclave.kbs.insecure_unpinned=true``
  (rune logs it) — then the host's URLs and CA bundle (or the system's)
  decide, as they would for any HTTPS client on that host. For development.
"""

from __future__ import annotations

import hashlib
import ssl

from ...errors import EnclaveError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..identity.broker import BrokerPin


class BrokerNotTrusted(EnclaveError):
    """The peer is not the pinned broker, or the TLS session was tampered with: final, never retried."""


class BrokerTrust:
    """The URLs to try, in the host's order, and what their TLS peer must show."""

    __slots__ = ("context", "pinned", "pins", "urls")

    def __init__(self, urls: list[str], context: ssl.SSLContext, pins: tuple[bytes, ...], pinned: bool) -> None:
        self.urls = urls
        self.context = context
        self.pins = pins  # SHA-256 of the SubjectPublicKeyInfo (RFC 7469 pin-sha256); () for none
        self.pinned = pinned  # False: the host's choice (the development opt-out)

    def check_peer(self, der: bytes | None, origin: str) -> None:
        """The key pin, on the certificate the handshake just accepted (before any byte of HTTP)."""
        if not self.pins:
            return
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        spki = b""
        if der:
            spki = (
                x509.load_der_x509_certificate(der)
                .public_key()
                .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            )
        if hashlib.sha256(spki).digest() not in self.pins:
            raise BrokerNotTrusted(f"{origin}: not the pinned broker: its key is not in kbs.pin_sha256")


def pinned(host_urls: list[str], url_source: str, pin: BrokerPin, ca_pem: bytes | None) -> BrokerTrust:
    """The trust of an enclave whose manifest pins `pin` (its CA's bytes already read and checked)."""
    for url in host_urls:
        if url not in pin.urls:
            raise EnclaveError(f"secret provisioning: {url_source}: {url} is not a broker the enclave's manifest "
                               f"pins (kbs.urls: {', '.join(pin.urls)}); refused before attesting")  # fmt: skip
    if ca_pem is not None:
        context = client_context(ca_pem)
    else:  # the key pin alone identifies the broker, whoever signed its certificate
        context = client_context(None)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return BrokerTrust(host_urls, context, pin.pin_sha256, True)


def client_context(ca_pem: bytes | None) -> ssl.SSLContext:
    """TLS 1.2 or later, certificates checked against `ca_pem` (None: no CA, for a key pin)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # CPython sets OP_IGNORE_UNEXPECTED_EOF with OpenSSL 3: a connection the host cuts without
    # close_notify (RFC 8446 §6.1) would read as a clean end. Here it is an error (tunnel.py).
    context.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    if ca_pem is not None:
        try:
            context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise EnclaveError(f"secret provisioning: the broker's CA bundle is unusable: {exc}") from None
    return context
