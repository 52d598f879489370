"""Admin API authentication and authorization: Ed25519-signed JWTs and path scopes.

As in trustee (kbs/src/admin, "simple"/bearer-JWT mode), an administrator
proves itself with a JWT in ``Authorization: Bearer``, signed (EdDSA,
RFC 8037) by a private key whose public half is in the broker's config. The
token must carry ``iat`` and ``exp`` and live no longer than
``admin.max_token_lifetime``.

Each configured admin key has *scopes*, so different admins own different
subtrees of the resource namespace (trustee#1112): ``"*"`` is a global
admin (attestation policy, reference values, audit log, any resource),
``"tenant-a/*"`` owns ``tenant-a/<type>/<tag>`` resources and resource
policies scoped inside ``tenant-a/``, ``"tenant-a/keys/k1"`` owns one
resource. A valid token outside its scopes gets 403, no valid token 401.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..attestation.hazmat.guard import foreign
from .errors import AdminAuthFailed, AdminForbidden, ConfigError, TokenInvalid
from .token import check_times, sign_jwt, verify_jwt

GLOBAL = "*"
_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_SCOPE = re.compile(rf"^(\*|{_NAME}/\*|{_NAME}/{_NAME}/\*|{_NAME}/{_NAME}/{_NAME})$")


def valid_scope(scope: str) -> bool:
    """``*``, ``repo/*``, ``repo/type/*``, or an exact ``repo/type/tag``."""
    return bool(_SCOPE.fullmatch(scope))


def covers(scope: str, target: str) -> bool:
    """Does ``scope`` include ``target`` (a resource path or another scope)?"""
    if scope == GLOBAL:
        return True
    if scope.endswith("/*"):
        return target.startswith(scope[:-1]) and target != scope[:-1]
    return scope == target


@dataclass(frozen=True)
class AdminKey:
    name: str
    public_key: ed25519.Ed25519PublicKey
    scopes: tuple[str, ...]

    @classmethod
    def load(cls, name: str, path: str, scopes: Sequence[str], location: str) -> AdminKey:
        try:
            with open(path, "rb") as f:
                key = serialization.load_pem_public_key(f.read(1 << 16))
        except OSError as exc:
            raise ConfigError(f"{location}.public_key", f"{path}: {exc.strerror}") from None
        except foreign():  # ValueError, and UnsupportedAlgorithm for a curve OpenSSL lacks
            raise ConfigError(f"{location}.public_key", f"{path}: not a PEM public key") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ConfigError(f"{location}.public_key", f"{path}: admin keys are Ed25519 (EdDSA JWTs)")
        for i, scope in enumerate(scopes):
            if not valid_scope(scope):
                raise ConfigError(f"{location}.scopes[{i}]", f"{scope!r} is not '*', 'repo/*' or a resource path")
        return cls(name, key, tuple(scopes))


@dataclass(frozen=True)
class Admin:
    """Who made an admin call: the key's name and scopes."""

    name: str
    scopes: tuple[str, ...]

    def require(self, target: str) -> None:
        """Allow an operation on ``target`` (a resource path, a scope, or ``*`` for global ones)."""
        if not any(covers(scope, target) for scope in self.scopes):
            raise AdminForbidden(f"admin {self.name!r} may not change {target!r}")


class AdminAuthenticator:
    def __init__(self, keys: Sequence[AdminKey], max_lifetime: float) -> None:
        self.keys = list(keys)
        self.max_lifetime = max_lifetime

    def authenticate(self, authorization: str | None, now: float) -> Admin:
        """The admin behind an ``Authorization: Bearer <JWT>`` header, or AdminAuthFailed."""
        if not self.keys:
            raise AdminAuthFailed("the admin API is disabled (no admin keys configured)")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AdminAuthFailed("admin API: missing Authorization: Bearer token")
        try:
            claims, public = verify_jwt(token.strip(), [k.public_key for k in self.keys], "admin token")
            check_times(claims, now, "admin token")
        except TokenInvalid as exc:
            raise AdminAuthFailed(str(exc)) from None
        self._check_lifetime(claims)
        key = next(k for k in self.keys if k.public_key is public)
        return Admin(key.name, key.scopes)

    def _check_lifetime(self, claims: Mapping[str, object]) -> None:
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise AdminAuthFailed("admin token: no iat claim")
        if not isinstance(exp, int | float) or isinstance(exp, bool):  # check_times required it already
            raise AdminAuthFailed("admin token: no exp claim")
        if float(exp) - float(iat) > self.max_lifetime:
            raise AdminAuthFailed(f"admin token: lives longer than {self.max_lifetime:.0f} s")


def admin_token(key: ed25519.Ed25519PrivateKey, now: float, lifetime: float = 300.0) -> str:
    """A fresh admin JWT for ``Authorization: Bearer`` (what kbs-client sends)."""
    return sign_jwt({"iat": int(now), "exp": int(now + lifetime)}, key)
