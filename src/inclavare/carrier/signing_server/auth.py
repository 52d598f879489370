"""Who is asking for a signature: bearer tokens and client certificates.

The original signing server signed anything for anyone who could reach
port 9080. Here a caller is authenticated by

* a **bearer token** (RFC 6750 §2.1, ``Authorization: Bearer <token>``),
  checked against a tokens file that holds only SHA-256 digests, one
  ``NAME sha256:<hex>`` per line (``inclavare signing-server token NAME``
  makes a token and its line), so the file is not itself a secret; and/or
* a **client certificate** (mTLS): the TLS layer demands one and verifies
  it against the configured CA before any request is read
  (:mod:`.http`); the caller is then named by the certificate's subject
  common name and the first 16 hex digits of its SHA-256 fingerprint.

With both configured, both are required. Tokens are compared as digests
with :func:`hmac.compare_digest` against every entry, so the time taken does
not depend on which entry (if any) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from ..errors import SigningServiceError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}")
_MAX_FILE = 1 << 20


class Refused(Exception):
    """The caller is not authenticated; ``str()`` is the reason a caller may see."""


class Authenticator:
    """Decides who a request comes from, or refuses it."""

    def __init__(self, tokens: dict[str, bytes] | None = None, mtls: bool = False) -> None:
        self.tokens = tokens  # name -> SHA-256 of the token; None: tokens are not used
        self.mtls = mtls

    @property
    def anonymous(self) -> bool:
        return self.tokens is None and not self.mtls

    def identify(self, authorization: str | None, client_cert: bytes | None) -> str:
        """``token:NAME``, ``cert:CN/FINGERPRINT``, both, or ``anonymous``; raises :class:`Refused`."""
        who = []
        if self.tokens is not None:
            who.append(f"token:{self._token(authorization)}")
        if self.mtls:
            if client_cert is None:  # the handshake requires one; a request without it is a bug upstream
                raise Refused("client certificate required")
            who.append(f"cert:{certificate_name(client_cert)}")
        return " ".join(who) or "anonymous"

    def _token(self, authorization: str | None) -> str:
        assert self.tokens is not None
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused("bearer token required")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = ""
        for name, known in self.tokens.items():
            if hmac.compare_digest(digest, known):
                found = name
        if not found:
            raise Refused("bearer token refused")
        return found


def certificate_name(der: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    fingerprint = hashlib.sha256(der).hexdigest()[:16]
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        names = []
    cn = str(names[0].value) if names else "-"
    return f"{cn}/{fingerprint}"


def load_tokens(path: str) -> dict[str, bytes]:
    """The tokens file: ``NAME sha256:<64 hex>`` per line, ``#`` comments; errors name the line."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError as exc:
        raise SigningServiceError(path, exc.strerror or "cannot read") from None
    if len(data) > _MAX_FILE:
        raise SigningServiceError(path, "larger than 1 MiB")
    tokens: dict[str, bytes] = {}
    for lineno, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].startswith("sha256:"):
            raise SigningServiceError(f"{path}: line {lineno}", "expected NAME sha256:<64 hex digits>")
        name, digest = fields[0], _digest(fields[1].removeprefix("sha256:"))
        if not _NAME.fullmatch(name) or digest is None:
            raise SigningServiceError(f"{path}: line {lineno}", "expected NAME sha256:<64 hex digits>")
        if name in tokens:
            raise SigningServiceError(f"{path}: line {lineno}", f"{name} is listed twice")
        tokens[name] = digest
    if not tokens:
        raise SigningServiceError(path, "no tokens: nobody could sign")
    return tokens


def token_line(name: str, token: str) -> str:
    """The tokens-file line for `token` (the file never holds the token itself)."""
    if not _NAME.fullmatch(name):
        raise SigningServiceError("token", f"{name!r}: a name is letters, digits and ._@:- (at most 64)")
    return f"{name} sha256:{hashlib.sha256(token.encode()).hexdigest()}"


def _digest(text: str) -> bytes | None:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        return None
    return value if len(value) == 32 else None
