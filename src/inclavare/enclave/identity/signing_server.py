"""Client of the original shim's signing server, and a :class:`Signer` on top of it.

The signing server (``shim/cmd/signature-server`` in Inclavare Containers)
keeps the tenant's RSA key off the node. Its HTTP API, which this client
speaks unchanged:

    GET  /ping                          -> "ping"
    GET  /healthz                       -> "ok"
    GET  /api/v1/signature/public-key   -> PEM (PKIX) public key
    POST /api/v1/signature/pkcs1        raw bytes, Content-Type: text/plain
                                        -> {"signature": base64(RSASSA-PKCS1-v1_5(SHA-256(body))),
                                            "publicKey": PEM}

The upstream server has no authentication and no TLS, and the upstream
client skipped TLS verification. This client verifies TLS for https URLs
(against ``cafile`` if given, else the system's CAs), can authenticate with a
bearer token and/or a client certificate (what ``inclavare signing-server``
asks for, src/inclavare/carrier/signing_server), and trusts nothing the
server says: the signature must verify under the public key fetched first
(and, if given, the key must have the expected MRSIGNER), so a wrong or
malicious server can refuse to sign but cannot make us write a signature
file that does not verify. Besides the upstream RSA-3072 endpoint it speaks
``POST /api/v1/signature/ed25519`` (same request and answer) for a server
whose key is Ed25519; which one is used follows from the published key.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from ...errors import one_line
from . import sigfile
from .errors import SigningServerError
from .identity import signer_id

TIMEOUT = 10.0  # seconds, as the upstream client
_MAX_RESPONSE = 1 << 20
PUBLIC_KEY = "/api/v1/signature/public-key"
PKCS1 = "/api/v1/signature/pkcs1"
ED25519 = "/api/v1/signature/ed25519"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class SigningServerClient:
    """The calls of the signing-server API; errors are :class:`SigningServerError`.

    `cafile` verifies an https server (default: the system's CAs); `token` is
    sent as ``Authorization: Bearer``; `client_cert`/`client_key` (PEM files)
    authenticate this client in the TLS handshake (mTLS).
    """

    def __init__(self, url: str, timeout: float = TIMEOUT, *, cafile: str | None = None, token: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None) -> None:  # fmt: skip
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SigningServerError(f"signing server {url!r}: must be an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        handlers: list[urllib.request.BaseHandler] = []
        if parts.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=self._tls(cafile, client_cert, client_key)))
        elif cafile or client_cert:
            raise SigningServerError(f"signing server {self.url}: a CA or client certificate needs an https:// URL")
        elif token and parts.hostname not in _LOOPBACK:
            raise SigningServerError(f"signing server {self.url}: refusing to send a bearer token without TLS")
        # Own opener: proxies come from the environment as of now, not as of
        # whoever first called urllib.request.urlopen in this process.
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:  # never show the token
        return f"SigningServerClient({self.url!r})"

    def _tls(self, cafile: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=cafile)
            if cert:
                context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise SigningServerError(f"signing server {self.url}: TLS setup: {one_line(str(reason))}") from None
        return context

    def ping(self) -> bool:
        return self._call("GET", "/ping").strip() == b"ping"

    def healthz(self) -> bool:
        return self._call("GET", "/healthz").strip() == b"ok"

    def public_key(self) -> PublicKey:
        return self._key(self._call("GET", PUBLIC_KEY), PUBLIC_KEY)

    def sign_pkcs1(self, data: bytes) -> tuple[bytes, PublicKey]:
        """RSASSA-PKCS1-v1_5/SHA-256 signature over `data`, and the key the server says it used."""
        return self._sign(PKCS1, data)

    def sign_ed25519(self, data: bytes) -> tuple[bytes, PublicKey]:
        """Ed25519 signature over `data` (RFC 8032, PureEdDSA), and the key the server says it used."""
        return self._sign(ED25519, data)

    def _sign(self, path: str, data: bytes) -> tuple[bytes, PublicKey]:
        raw = self._call("POST", path, data)
        try:
            doc = json.loads(raw)
            signature = base64.b64decode(doc["signature"], validate=True)
            pem = doc["publicKey"].encode()
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise self.error(path, 'answer is not {"signature": base64, "publicKey": PEM}') from None
        return signature, self._key(pem, path)

    def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        headers = {**self._headers, **({"Content-Type": "text/plain"} if body is not None else {})}
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return bytes(response.read(_MAX_RESPONSE))
        except urllib.error.HTTPError as exc:
            raise self.error(path, f"HTTP {exc.code}{_refusal(exc)}") from None
        except urllib.error.URLError as exc:
            reason = getattr(exc.reason, "strerror", None) or getattr(exc.reason, "reason", None) or exc.reason
            raise self.error(path, f"cannot connect: {reason}") from None
        except (OSError, ValueError) as exc:  # timeouts, resets, malformed HTTP
            raise self.error(path, f"request failed: {exc.__class__.__name__}") from None

    def _key(self, pem: bytes, path: str) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError):
            raise self.error(path, "answer is not a PEM public key") from None
        if isinstance(key, ed25519.Ed25519PublicKey) or (isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072):
            return key
        raise self.error(path, "the server key is neither RSA-3072 nor Ed25519")

    def error(self, path: str, reason: str) -> SigningServerError:
        return SigningServerError(one_line(f"signing server {self.url}{path}: {reason}"))


def _refusal(exc: urllib.error.HTTPError) -> str:
    """A refusal's reason (4xx: the server's first line, at most 200 characters), for the operator."""
    if not 400 <= exc.code < 500:
        return ""
    try:
        text = exc.read(200).decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return f": {one_line(text[0])}" if text else ""


class ServerSigner:
    """A :class:`~.signing.Signer` whose key lives in a signing server (RSA-3072 or Ed25519).

    Keyword arguments are :class:`SigningServerClient`'s (TLS CA, token, client certificate).
    """

    def __init__(self, url: str, expected_signer: bytes | None = None, timeout: float = TIMEOUT,
                 **client: str | None) -> None:  # fmt: skip
        self.client = SigningServerClient(url, timeout, **client)
        self._key = self.client.public_key()
        self._der = self._key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if expected_signer is not None and signer_id(self._der) != expected_signer:
            raise self.client.error(PUBLIC_KEY, "key is not the expected signer")
        self.algorithm = sigfile.ED25519 if isinstance(self._key, ed25519.Ed25519PublicKey) else sigfile.RSA

    def public_key_der(self) -> bytes:
        return self._der

    def sign(self, tbs: bytes) -> bytes:
        ed = isinstance(self._key, ed25519.Ed25519PublicKey)
        path = ED25519 if ed else PKCS1
        signature, key = self.client.sign_ed25519(tbs) if ed else self.client.sign_pkcs1(tbs)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_bytes(serialization.Encoding.DER, spki) != self._der:
            raise self.client.error(path, "signed with a different key than it published")
        try:
            if isinstance(self._key, ed25519.Ed25519PublicKey):
                self._key.verify(signature, tbs)
            else:
                self._key.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise self.client.error(path, "returned a signature that does not verify") from None
        return signature
