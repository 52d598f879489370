"""Attested TLS over Python's :mod:`ssl`: server, client and mutual modes, as rats-tls negotiates them.

rats-tls (``rats_tls_init``/``rats_tls_negotiate``; docs/ratls.md, "Attested
TLS"): the side that proves itself issues its certificate once, at
initialisation (:func:`.certificate.issue`); the client always verifies the
server (``VERIFY_PEER``); the server verifies the client only in mutual mode
(``VERIFY_PEER | FAIL_IF_NO_PEER_CERT``).
The certificates are self-signed, so OpenSSL's chain verification is not
what decides. Here:

* the client uses ``CERT_NONE`` (OpenSSL still receives the server's
  certificate and checks its CertificateVerify signature);
* a mutual server uses ``CERT_REQUIRED`` with chain building deferred
  (:func:`inclavare._sys.sslverify.defer_chain_verification`), so a client
  without a certificate is refused by OpenSSL itself;
* after the handshake and before any application data, the peer's
  certificate (``getpeercert(binary_form=True)``) goes through
  :meth:`.peer.VerifyPolicy.verify_certificate`; on failure the socket is
  closed and :class:`PeerRefused` raised. The peer learns nothing but that
  the connection closed (no oracle, see docs/attestation.md).

Security argument: the TLS handshake proves that the peer holds the private
key of the certificate it sent (CertificateVerify, RFC 8446 section 4.4.3,
or the signed ServerKeyExchange of TLS 1.2, RFC 5246 section 7.4.3); the
verified evidence proves that a TEE with the appraised identity put the
hash of exactly that key in its REPORT_DATA. Together: the TLS peer is code
running in that TEE, provided the key never left it. Session tickets are
off, so every connection is a full handshake with a fresh proof of
possession. The evidence has no freshness of its own (rats-tls has no nonce
either): it proves the key was created in the TEE, not when.

Development without attestation (:mod:`.null`): a
:class:`~.null.NullAttester` side sends a certificate without evidence, a
:class:`~.null.NullVerifier` side accepts any peer; the connection's
``unattested`` is then True and every such step is logged as UNATTESTED.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType

from ..._sys.sslverify import defer_chain_verification
from ..attesters.interface import Attester
from ..claims import VerifiedClaims
from ..errors import AttestationError
from .certificate import PrivateKey, RatlsCertificate, issue
from .endorsements import Endorsements
from .null import NullAttester, NullVerifier
from .peer import VerifyPolicy, peer_custom_claims, utc_now

Appraiser = VerifyPolicy | NullVerifier


class RatlsError(AttestationError):
    """The TLS connection could not be set up (handshake failure, no peer certificate)."""


class PeerRefused(RatlsError):
    """The peer's certificate did not pass appraisal; ``__cause__`` is the failed check."""


class AttestedSocket:
    """A TLS socket whose peer passed appraisal (``peer``), or was not asked to (``None``).

    ``unattested`` is True when either side used the null mode: this side's
    certificate carries no evidence, or the peer was accepted unappraised.
    ``custom_claims`` are the appraised peer's claims (rats-tls ``claim_t``).
    """

    def __init__(
        self,
        tls: ssl.SSLSocket,
        peer: VerifiedClaims | None,
        *,
        unattested: bool = False,
        custom_claims: Mapping[str, bytes] | None = None,
    ) -> None:
        self.tls = tls
        self.peer = peer
        self.unattested = unattested
        self.custom_claims = dict(custom_claims or {})

    def __enter__(self) -> AttestedSocket:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def sendall(self, data: bytes) -> None:
        self.tls.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.tls.recv(size)

    def version(self) -> str | None:
        return self.tls.version()

    def close(self) -> None:
        self.tls.close()


class RatlsContext:
    """One side's TLS configuration: its own RA-TLS certificate (if any) and how it appraises the peer."""

    def __init__(
        self, *, server_side: bool, certificate: RatlsCertificate | None, verify_policy: Appraiser | None
    ) -> None:
        if server_side and certificate is None:
            raise RatlsError("ratls: a server needs an attester (its certificate carries the evidence)")
        if not server_side and verify_policy is None:
            raise RatlsError("ratls: a client always verifies the server; it needs a verify policy")
        self.server_side = server_side
        self.certificate = certificate
        self.verify_policy = verify_policy
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if server_side:
            ctx.num_tickets = 0  # no resumption: a full handshake, a fresh proof of possession, every time
            ctx.options |= ssl.OP_NO_TICKET
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if certificate is not None:
            _load_certificate(ctx, certificate)
        if server_side and verify_policy is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            defer_chain_verification(ctx)
        self.ssl_context = ctx

    @property
    def mutual(self) -> bool:
        return self.certificate is not None and self.verify_policy is not None

    @property
    def attests(self) -> bool:
        """Whether this side's certificate carries evidence (False for the null attester)."""
        return self.certificate is not None and self.certificate.evidence is not None

    def wrap(self, sock: socket.socket) -> AttestedSocket:
        """Handshake on a connected socket and appraise the peer; the socket is closed on failure."""
        try:
            tls = self.ssl_context.wrap_socket(sock, server_side=self.server_side, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise RatlsError(f"ratls handshake: cannot start TLS: {_reason(exc)}") from None
        return self.handshake(tls)

    def handshake(self, tls: ssl.SSLSocket) -> AttestedSocket:
        """Complete the handshake of a socket wrapped by ``ssl_context``, then appraise the peer."""
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            tls.close()
            raise RatlsError(f"ratls handshake failed: {_reason(exc)}") from None
        own_null = self.certificate is not None and self.certificate.evidence is None
        if self.verify_policy is None:
            return AttestedSocket(tls, None, unattested=own_null)
        der = tls.getpeercert(binary_form=True)
        if not der:
            tls.close()
            raise RatlsError("ratls handshake: the peer sent no certificate")
        if isinstance(self.verify_policy, NullVerifier):
            self.verify_policy.verify_certificate(der)
            return AttestedSocket(tls, None, unattested=True)
        try:
            peer = self.verify_policy.verify_certificate(der)
            claims = peer_custom_claims(der)
        except BaseException as exc:
            tls.close()
            if isinstance(exc, AttestationError):
                raise PeerRefused(f"ratls peer refused: {exc}") from exc
            raise
        return AttestedSocket(tls, peer, unattested=own_null, custom_claims=claims)


def server_context(
    attester: Attester | NullAttester,
    key: PrivateKey | None = None,
    *,
    verify_policy: Appraiser | None = None,
    key_algorithm: str = "ec-p256",
    custom_claims: Mapping[str, bytes] | None = None,
    endorsements: Endorsements | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> RatlsContext:
    """A server proving itself with ``attester``; with ``verify_policy`` also verifying clients (mutual)."""
    cert = issue(
        attester, key, now=clock(), key_algorithm=key_algorithm, custom_claims=custom_claims, endorsements=endorsements
    )
    return RatlsContext(server_side=True, certificate=cert, verify_policy=verify_policy)


def client_context(
    verify_policy: Appraiser,
    attester: Attester | NullAttester | None = None,
    key: PrivateKey | None = None,
    *,
    key_algorithm: str = "ec-p256",
    custom_claims: Mapping[str, bytes] | None = None,
    endorsements: Endorsements | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> RatlsContext:
    """A client verifying the server with ``verify_policy``; with ``attester`` also proving itself (mutual)."""
    cert = None
    if attester is not None:
        cert = issue(
            attester,
            key,
            now=clock(),
            key_algorithm=key_algorithm,
            custom_claims=custom_claims,
            endorsements=endorsements,
        )
    return RatlsContext(server_side=False, certificate=cert, verify_policy=verify_policy)


def connect(address: tuple[str, int], context: RatlsContext, *, timeout: float | None = None) -> AttestedSocket:
    """Open a TCP connection to ``address`` and run the attested handshake over it."""
    try:
        sock = socket.create_connection(address, timeout=timeout)
    except OSError as exc:
        raise RatlsError(f"ratls connect to {address[0]}:{address[1]}: {_reason(exc)}") from None
    return context.wrap(sock)


def accept(listener: socket.socket, context: RatlsContext) -> AttestedSocket:
    """Accept one TCP connection from ``listener`` and run the attested handshake over it."""
    sock, _ = listener.accept()
    sock.settimeout(listener.gettimeout())
    return context.wrap(sock)


def _load_certificate(ctx: ssl.SSLContext, certificate: RatlsCertificate) -> None:
    # ssl only loads keys from paths; an anonymous memory file keeps the private key off any disk.
    fd = os.memfd_create("ratls-key", os.MFD_CLOEXEC)
    try:
        data = memoryview(certificate.pem_bundle())
        while data:
            data = data[os.write(fd, data) :]
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        raise RatlsError("ratls: not supported on this platform: loading the key needs /proc/self/fd") from None
    except ssl.SSLError as exc:
        raise RatlsError(f"ratls: cannot load the certificate and key: {_reason(exc)}") from None
    finally:
        os.close(fd)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
