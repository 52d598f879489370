"""JSON Web Tokens (RFC 7519) signed by the broker: attestation tokens and the JWS plumbing.

The attestation token returned by ``/kbs/v0/attest`` carries EAR claims
(:mod:`.protocol.ear`) and is signed with the KBS token key, ES256 (P-256,
RFC 7518 §3.4) or EdDSA (Ed25519, RFC 8037). Replicas behind one load
balancer must share that key, so any of them can verify a token another
issued. Verification takes the instant as an argument, checks the signature
with the algorithm pinned by the key (never the one the header asks for),
then ``exp`` (required), ``iat`` (not in the future beyond a small skew) and
``iss``. The admin API's tokens (:mod:`.admin`) use the same plumbing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..attestation.hazmat.guard import foreign
from . import jws
from .errors import ConfigError, TokenInvalid
from .jws import SigningKey, VerifyingKey, algorithm_of, key_id

MAX_TOKEN = 64 << 10
CLOCK_SKEW = 60.0


def sign_jwt(claims: Mapping[str, object], key: SigningKey) -> str:
    return jws.sign(claims, key)


def verify_jwt(token: str, keys: Sequence[VerifyingKey], what: str = "token") -> tuple[dict[str, object], VerifyingKey]:
    """The claims of a compact JWS signed by one of ``keys`` (picked by ``kid``), and that key; else TokenInvalid."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 2:
        raise TokenInvalid(f"{what}: not a compact JWT")
    try:
        kid = jws.header_of(token).get("kid")
    except jws.JwsError as exc:
        raise TokenInvalid(f"{what}: {exc}") from None
    for key in keys:
        if isinstance(kid, str) and key_id(key) != kid:
            continue
        try:
            return jws.verify(token, key), key
        except jws.JwsPayloadError as exc:  # signed by this key: no other key will do better
            raise TokenInvalid(f"{what}: {exc}") from None
        except jws.JwsError:
            continue
    raise TokenInvalid(f"{what}: signature does not verify under a trusted key")


def check_times(claims: Mapping[str, object], now: float, what: str = "token") -> None:
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenInvalid(f"{what}: no exp claim")
    if now >= exp:
        raise TokenInvalid(f"{what}: expired")
    if isinstance(iat, int | float) and not isinstance(iat, bool) and iat > now + CLOCK_SKEW:
        raise TokenInvalid(f"{what}: issued in the future")


@dataclass(frozen=True)
class TokenKey:
    """The KBS token signing key."""

    key: SigningKey

    @classmethod
    def load(cls, path: str, location: str = "token.signing_key", file: str = "kbs.toml") -> TokenKey:
        try:
            with open(path, "rb") as f:
                key = serialization.load_pem_private_key(f.read(1 << 16), password=None)
        except OSError as exc:
            raise ConfigError(location, f"{path}: {exc.strerror}", file) from None
        except foreign():  # ValueError, and UnsupportedAlgorithm for a curve OpenSSL lacks (sect163k1)
            raise ConfigError(location, f"{path}: not an unencrypted PEM private key", file) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ConfigError(location, f"{path}: must be a P-256 or Ed25519 key", file)
        try:
            algorithm_of(key)
        except ValueError as exc:
            raise ConfigError(location, f"{path}: {exc}", file) from None
        return cls(key)

    @classmethod
    def generate(cls) -> TokenKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def __repr__(self) -> str:
        return f"TokenKey({algorithm_of(self.key)}, kid={key_id(self.key)})"

    def pem(self) -> bytes:
        fmt = serialization.PrivateFormat.PKCS8
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


class TokenBroker:
    """Issues and verifies the KBS's attestation tokens at injected instants."""

    def __init__(self, key: TokenKey, issuer: str, lifetime: float, rng: Callable[[int], bytes] = os.urandom) -> None:
        self.key = key
        self.issuer = issuer
        self.lifetime = lifetime
        self.rng = rng
        self._public = [key.key.public_key()]

    def new_jti(self) -> str:
        return self.rng(16).hex()

    def issue(self, claims: Mapping[str, object]) -> str:
        return sign_jwt(claims, self.key.key)

    def verify(self, token: str, now: float) -> dict[str, object]:
        claims, _ = verify_jwt(token, self._public, "attestation token")
        check_times(claims, now, "attestation token")
        if claims.get("iss") != self.issuer:
            raise TokenInvalid("attestation token: issued by someone else")
        if not isinstance(claims.get("jti"), str):
            raise TokenInvalid("attestation token: no jti claim")
        return claims
