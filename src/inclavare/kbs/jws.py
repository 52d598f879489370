"""Compact JWS (RFC 7515) with exactly two algorithms: ES256 (RFC 7518 §3.4) and EdDSA/Ed25519 (RFC 8037).

The broker signs and verifies its own tokens on every attestation and
every bearer request, so this is written directly against ``cryptography``
(a third of a millisecond instead of jwcrypto's 1.5 ms of key re-imports).
The algorithm comes from the *key*, never from the token's header: a header
saying ``none`` or ``HS256`` simply fails to verify. ``kid`` is the key's
RFC 7638 thumbprint.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .jwe import b64url, b64url_decode
from .protocol.canonical import canonical_json, loads

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
VerifyingKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class JwsError(ValueError):
    """Not a compact JWS, or its signature does not verify under the given key."""


class JwsPayloadError(JwsError):
    """The signature verifies, but the payload is not a JSON object."""


def algorithm_of(key: SigningKey | VerifyingKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if key.curve.name != "secp256r1":
        raise ValueError("token keys must be P-256 (ES256) or Ed25519 (EdDSA)")
    return "ES256"


def public_of(key: SigningKey | VerifyingKey) -> VerifyingKey:
    return key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) else key


def key_id(key: SigningKey | VerifyingKey) -> str:
    """RFC 7638 thumbprint: SHA-256 over the canonical JSON of the required public JWK members."""
    raw = public_of(key).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _thumbprint(raw)


@functools.lru_cache(maxsize=64)
def _thumbprint(spki: bytes) -> str:
    key = serialization.load_der_public_key(spki)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        n = key.public_numbers()
        members = {"crv": "P-256", "kty": "EC", "x": b64url(n.x.to_bytes(32)), "y": b64url(n.y.to_bytes(32))}
    return b64url(hashlib.sha256(canonical_json(members)).digest())


def sign(payload: Mapping[str, object], key: SigningKey) -> str:
    header = {"alg": algorithm_of(key), "typ": "JWT", "kid": key_id(key)}
    signing_input = b64url(_json(header)) + "." + b64url(_json(payload))
    data = signing_input.encode("ascii")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(data)
    else:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32) + s.to_bytes(32)  # RFC 7518 §3.4: R || S, not DER
    return signing_input + "." + b64url(signature)


def header_of(token: str) -> dict[str, object]:
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("not a compact JWS")
    try:
        header = loads(b64url_decode(parts[0]))
    except (ValueError, UnicodeDecodeError):
        raise JwsError("malformed JOSE header") from None
    if not isinstance(header, dict):
        raise JwsError("malformed JOSE header")
    return header


def verify(token: str, key: VerifyingKey) -> dict[str, object]:
    """The payload of ``token`` if ``key`` signed it with the key's own algorithm."""
    header = header_of(token)
    if header.get("alg") != algorithm_of(key):
        raise JwsError("algorithm does not match the key")
    head, body, sig = token.split(".")
    try:
        signature = b64url_decode(sig)
        data = (head + "." + body).encode("ascii")
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            if len(signature) != 64:
                raise InvalidSignature
            der = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, UnicodeError):
        raise JwsError("signature does not verify") from None
    try:
        payload = loads(b64url_decode(body))
    except (ValueError, UnicodeError) as exc:
        raise JwsPayloadError(f"payload is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise JwsPayloadError("payload is not a JSON object")
    return payload


def _json(doc: Mapping[str, object]) -> bytes:
    return json.dumps(dict(doc), separators=(",", ":")).encode()
