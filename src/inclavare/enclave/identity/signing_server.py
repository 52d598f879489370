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
client skipped TLS verification. This client does verify TLS for https URLs,
and it trusts nothing the server says: the signature must verify under the
public key fetched first (and, if given, the key must have the expected
MRSIGNER), so a wrong or malicious server can refuse to sign but cannot
make us write a signature file that does not verify.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.error
import urllib.parse
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import sigfile
from .errors import SigningServerError
from .identity import signer_id

TIMEOUT = 10.0  # seconds, as the upstream client
_MAX_RESPONSE = 1 << 20


class SigningServerClient:
    """The four calls of the signing-server API; errors are :class:`SigningServerError`."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SigningServerError(f"signing server {url!r}: must be an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Own opener: proxies come from the environment as of now, not as of
        # whoever first called urllib.request.urlopen in this process.
        self._opener = urllib.request.build_opener()

    def ping(self) -> bool:
        return self._call("GET", "/ping").strip() == b"ping"

    def healthz(self) -> bool:
        return self._call("GET", "/healthz").strip() == b"ok"

    def public_key(self) -> rsa.RSAPublicKey:
        return self._rsa_key(self._call("GET", "/api/v1/signature/public-key"), "/api/v1/signature/public-key")

    def sign_pkcs1(self, data: bytes) -> tuple[bytes, rsa.RSAPublicKey]:
        """RSASSA-PKCS1-v1_5/SHA-256 signature over `data`, and the key the server says it used."""
        path = "/api/v1/signature/pkcs1"
        raw = self._call("POST", path, data)
        try:
            doc = json.loads(raw)
            signature = base64.b64decode(doc["signature"], validate=True)
            pem = doc["publicKey"].encode()
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise self.error(path, 'answer is not {"signature": base64, "publicKey": PEM}') from None
        return signature, self._rsa_key(pem, path)

    def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        headers = {"Content-Type": "text/plain"} if body is not None else {}
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return bytes(response.read(_MAX_RESPONSE))
        except urllib.error.HTTPError as exc:
            raise self.error(path, f"HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise self.error(path, f"cannot connect: {getattr(exc.reason, 'strerror', None) or exc.reason}") from None
        except (OSError, ValueError) as exc:  # timeouts, resets, malformed HTTP
            raise self.error(path, f"request failed: {exc.__class__.__name__}") from None

    def _rsa_key(self, pem: bytes, path: str) -> rsa.RSAPublicKey:
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError):
            raise self.error(path, "answer is not a PEM public key") from None
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 3072:
            raise self.error(path, "the server key is not RSA-3072")
        return key

    def error(self, path: str, reason: str) -> SigningServerError:
        return SigningServerError(f"signing server {self.url}{path}: {reason}")


class ServerSigner:
    """A :class:`~.signing.Signer` whose key lives in a signing server."""

    algorithm = sigfile.RSA

    def __init__(self, url: str, expected_signer: bytes | None = None, timeout: float = TIMEOUT) -> None:
        self.client = SigningServerClient(url, timeout)
        self._key = self.client.public_key()
        self._der = self._key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if expected_signer is not None and signer_id(self._der) != expected_signer:
            raise self.client.error("/api/v1/signature/public-key", "key is not the expected signer")

    def public_key_der(self) -> bytes:
        return self._der

    def sign(self, tbs: bytes) -> bytes:
        signature, key = self.client.sign_pkcs1(tbs)
        if key.public_numbers() != self._key.public_numbers():
            raise self.client.error("/api/v1/signature/pkcs1", "signed with a different key than it published")
        try:
            self._key.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise self.client.error("/api/v1/signature/pkcs1", "returned a signature that does not verify") from None
        return signature
