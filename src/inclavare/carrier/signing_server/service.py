"""The signing server's API as a function of a request: no sockets (docs/principles.md §5).

The original shim's ``signature-server`` API, unchanged for its client::

    HEAD /                              -> 200
    GET  /ping                          -> "ping"
    GET  /healthz                       -> "ok"
    GET  /api/v1/signature/public-key   -> PEM (PKIX) public key
    POST /api/v1/signature/pkcs1        raw bytes -> {"signature": base64, "publicKey": PEM}
                                        RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2)

plus ``POST /api/v1/signature/ed25519`` (same request and answer; RFC 8032
PureEdDSA) for a server whose key is Ed25519. A server has one key; the
endpoint of the other algorithm answers 409 naming the right one. Health and
the public key are open to anyone (they are public); the signature endpoints
need an authenticated caller (:mod:`.auth`) and write an audit line
(:mod:`.audit`) before answering. Statuses: 400 empty body, 401 not
authenticated (with ``WWW-Authenticate: Bearer``, RFC 6750 §3), 404, 405
(with ``Allow``), 409 wrong algorithm, 411/413 length missing or over
:data:`MAX_BODY`, 503 audit log unwritable. Every error body is one line.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable

from ...enclave.identity import sigfile
from ...enclave.identity.signing import KeySigner
from .audit import AuditLog
from .auth import Authenticator, Refused

log = logging.getLogger("inclavare.signing_server")

MAX_BODY = 64 << 10  # an enclave's to-be-signed bytes are ~150 bytes; sgx_sign gendata material is under 1 KiB
PUBLIC_KEY = "/api/v1/signature/public-key"
ENDPOINTS = {"/api/v1/signature/pkcs1": sigfile.RSA, "/api/v1/signature/ed25519": sigfile.ED25519}
_OPEN = {"/ping": b"ping", "/healthz": b"ok"}
_TEXT = "text/plain; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    authorization: str | None = None
    peer: str = ""  # "address:port", for the audit line
    client_cert: bytes | None = None  # DER of the verified client certificate (mTLS)


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = _TEXT
    headers: tuple[tuple[str, str], ...] = ()


class SigningService:
    """Answers :class:`Request` s with one key, one authenticator and one audit log."""

    def __init__(self, signer: KeySigner, auth: Authenticator, audit: AuditLog,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.signer = signer
        self.auth = auth
        self.audit = audit
        self.clock = clock
        self.public_pem = signer.public_key_pem()

    def handle(self, request: Request) -> Response:
        path = request.path.partition("?")[0]
        allowed = "POST" if path in ENDPOINTS else "GET, HEAD" if path in _OPEN or path == PUBLIC_KEY else ""
        if path == "/" and request.method == "HEAD":
            return Response(200)
        if not allowed:
            return Response(404, b"404 page not found\n")
        if request.method not in allowed.split(", "):
            return Response(405, b"method not allowed\n", headers=(("Allow", allowed),))
        if path in ENDPOINTS:
            return self._sign(request, ENDPOINTS[path])
        return Response(200, self.public_pem if path == PUBLIC_KEY else _OPEN[path])

    def _sign(self, request: Request, algorithm: str) -> Response:
        try:
            who = self.auth.identify(request.authorization, request.client_cert)
        except Refused as exc:
            return self._refuse(request, 401, str(exc), headers=(("WWW-Authenticate", 'Bearer realm="signing"'),))
        if algorithm != self.signer.algorithm:
            right = next(p for p, a in ENDPOINTS.items() if a == self.signer.algorithm)
            return self._refuse(request, 409, f"this server's key is {self.signer.algorithm}: POST {right}", who)
        if not request.body:
            return self._refuse(request, 400, "empty body: nothing to sign", who)
        signature = self.signer.sign(request.body)
        digest = hashlib.sha256(request.body).hexdigest()
        record: dict[str, object] = {"who": who, "peer": request.peer, "algorithm": algorithm, "sha256": digest,
                                     "size": len(request.body)}  # fmt: skip
        enclave = _enclave_of(request.body, self.signer.public_key_der())
        if enclave:
            record["enclave"] = enclave
        try:
            self.audit.write(self.clock(), "signature", **record)
        except OSError as exc:
            log.error("audit log %s: %s: refusing to sign", self.audit.path, exc.strerror or exc)
            return Response(503, b"audit log unavailable: not signing\n")
        log.info("signed %d bytes (sha256 %s) for %s at %s", len(request.body), record["sha256"], who, request.peer)
        answer = {"signature": base64.b64encode(signature).decode(), "publicKey": self.public_pem.decode()}
        return Response(200, json.dumps(answer).encode(), "application/json")

    def _refuse(self, request: Request, status: int, reason: str, who: str = "",
                headers: tuple[tuple[str, str], ...] = ()) -> Response:  # fmt: skip
        try:
            self.audit.write(self.clock(), "refused", who=who or "unauthenticated", peer=request.peer,
                             path=request.path, status=status, reason=reason)  # fmt: skip
        except OSError as exc:
            log.error("audit log %s: %s", self.audit.path, exc.strerror or exc)
        return Response(status, reason.encode() + b"\n", headers=headers)


def _enclave_of(body: bytes, spki: bytes) -> dict[str, object] | None:
    """The enclave identity in an inclavare signature body (docs/enclave-identity.md), for the audit line."""
    if not body.startswith(sigfile.TBS_PREFIX):
        return None
    from ...enclave.identity.errors import SignatureError

    try:
        sig = sigfile.SignatureFile(sigfile.ED25519, spki, body[len(sigfile.TBS_PREFIX) :], b"")
        identity = sigfile.identity_of(sig, "request")
    except SignatureError:
        return None
    return {"measurement": identity.measurement.hex(), "isv_prod_id": identity.isv_prod_id,
            "isv_svn": identity.isv_svn, "debug": identity.debug}  # fmt: skip
