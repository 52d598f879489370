"""``inclavare signing-server``: the original shim's signing server, with what it lacked.

It keeps a tenant's enclave signing key off the nodes: a node's carrier
sends the bytes to sign (docs/enclave-identity.md, "Signing") and gets the
signature back. The original (``shim/cmd/signature-server``) served plain
HTTP on :9080 to anyone; this one speaks the same API (:mod:`.service`) and
by default requires TLS and an authenticated caller — a bearer token, a
client certificate, or both (:mod:`.auth`) — signs with RSA-3072 (PKCS#1
v1.5, SHA-256, as SGX SIGSTRUCT) or Ed25519, and writes an audit line per
signature and per refusal (:mod:`.audit`). ``--insecure-http`` and
``--no-auth`` restore the original's behaviour, loudly.

    service.py   the API as a function of a request (no sockets)
    auth.py      bearer tokens (a file of SHA-256 digests) and client certificates
    audit.py     the JSON-lines audit log
    http.py      the threading HTTP server, TLS and mTLS, around the service
"""

from __future__ import annotations

import logging
import os
import ssl
import stat

from ..errors import SigningServiceError
from .audit import AuditLog
from .auth import Authenticator, load_tokens
from .http import SigningHTTPServer, serve, tls_context
from .service import Request, Response, SigningService

__all__ = ["Request", "Response", "SigningHTTPServer", "SigningService", "make_server", "serve"]

log = logging.getLogger("inclavare.signing_server")


def make_server(*, key: str, listen: tuple[str, int], tls_cert: str | None = None, tls_key: str | None = None,
                client_ca: str | None = None, tokens: str | None = None, audit_log: str | None = None,
                insecure_http: bool = False, no_auth: bool = False) -> SigningHTTPServer:  # fmt: skip
    """A bound server; refuses configurations that would sign for anyone or in the clear, unless told to."""
    from ...enclave.identity.errors import SignatureError
    from ...enclave.identity.signing import KeySigner

    if (tls_cert is None) != (tls_key is None):
        raise SigningServiceError("--tls-cert/--tls-key", "give both or neither")
    if tls_cert is None and not insecure_http:
        raise SigningServiceError("--tls-cert", "required (or --insecure-http: tokens and signatures in the clear)")
    if client_ca and tls_cert is None:
        raise SigningServiceError("--client-ca", "client certificates need TLS (--tls-cert, --tls-key)")
    if tokens is None and not client_ca and not no_auth:
        raise SigningServiceError("--tokens", "required, or --client-ca (or --no-auth: anyone may sign)")
    _check_private(key)
    try:
        signer = KeySigner.from_pem_file(key)
    except SignatureError as exc:
        raise SigningServiceError("--key", str(exc)) from None
    auth = Authenticator(load_tokens(tokens) if tokens else None, mtls=bool(client_ca))
    context = None
    if tls_cert is not None and tls_key is not None:
        try:
            context = tls_context(tls_cert, tls_key, client_ca)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise SigningServiceError(f"{tls_cert} / {tls_key} / {client_ca or '-'}", str(reason)) from None
    try:
        audit = AuditLog(audit_log)
    except OSError as exc:
        raise SigningServiceError(audit_log or "--audit-log", exc.strerror or "cannot open") from None
    if auth.anonymous:
        log.warning("--no-auth: anyone who can reach this server can have anything signed with its key")
    if context is None:
        log.warning("--insecure-http: requests, tokens and signatures travel in the clear")
    try:
        return SigningHTTPServer(listen, SigningService(signer, auth, audit), context)
    except OSError as exc:
        audit.close()
        raise SigningServiceError(f"listen {listen[0]}:{listen[1]}", exc.strerror or str(exc)) from None


def _check_private(path: str) -> None:
    """Like ssh with private keys: a signing key others can read is everybody's."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SigningServiceError(path, exc.strerror or "cannot read") from None
    if st.st_mode & 0o077:
        raise SigningServiceError(path, f"mode {stat.S_IMODE(st.st_mode):04o}: a private key must be 0600 or 0400")
