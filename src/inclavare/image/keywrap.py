"""Wrapping layer keys: inclavare's key packet (A256GCM under a KBS key) and JWE recipients.

The key packet is what the ``org.opencontainers.image.enc.keys.provider.inclavare``
annotation holds (base64 of this JSON). It is CoCo's ``AnnotationPacket``
(guest-components, attestation-agent issue #113), so CoCo's key providers and
ours can read each other's images::

    {"kid": "kbs:///<repository>/<type>/<tag>",   # the KBS resource holding the KEK
     "wrapped_data": "<b64 AES-256-GCM ciphertext||tag of the private options>",
     "iv": "<b64 12-byte GCM nonce>",
     "wrap_type": "A256GCM"}

The KEK is 32 raw bytes; GCM is used without associated data, as CoCo does.
CoCo's newer ``AnnotationPacketV2`` (``version``, ``provider: "kbs"``) is read too.

JWE recipients (``org.opencontainers.image.enc.keys.jwe``) are ocicrypt's
built-in scheme (keywrap/jwe): RFC 7516 JSON serialization, ``enc`` A256GCM,
``alg`` RSA-OAEP for RSA keys and ECDH-ES+A256KW for EC keys. Inclavare keeps
the recipient's *private* key in the KBS, so unwrapping still needs attestation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionError, KeyProviderError
from .keystore import ResourcePath
from .layercrypt import b64d, b64e

WRAP_TYPE = "A256GCM"
KEK_SIZE = 32
IV_SIZE = 12
_JWE_ALGS = ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES+A256KW", "ECDH-ES+A192KW", "ECDH-ES+A128KW", "A256GCM"]


@dataclass(frozen=True)
class KeyPacket:
    """The annotation packet: which KBS key wrapped the options, and the wrapped bytes."""

    kid: ResourcePath
    wrapped: bytes
    iv: bytes
    wrap_type: str = WRAP_TYPE

    def to_json(self) -> bytes:
        doc = {
            "kid": str(self.kid),
            "wrapped_data": b64e(self.wrapped),
            "iv": b64e(self.iv),
            "wrap_type": self.wrap_type,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, doc: dict[str, object], where: str = "annotation") -> KeyPacket:
        if doc.get("provider", "kbs") != "kbs":
            raise KeyProviderError(where, "provider", f"KEK provider {doc.get('provider')!r} is not a KBS")
        kid = doc.get("kid")
        if not isinstance(kid, str):
            raise KeyProviderError(where, "kid", "must be a kbs:// resource URI")
        wrap_type = doc.get("wrap_type", WRAP_TYPE)
        if wrap_type != WRAP_TYPE:
            raise KeyProviderError(where, "wrap_type", f"unsupported wrap type {wrap_type!r} (only {WRAP_TYPE})")
        iv = b64d(doc.get("iv"), where, "iv")
        if len(iv) != IV_SIZE:
            raise KeyProviderError(where, "iv", f"must be {IV_SIZE} bytes")
        wrapped = b64d(doc.get("wrapped_data"), where, "wrapped_data")
        return cls(ResourcePath.parse(kid, where + ": kid"), wrapped, iv, wrap_type)


def check_kek(kek: bytes, kid: ResourcePath) -> bytes:
    if len(kek) != KEK_SIZE:
        raise KeyProviderError(
            str(kid), "", f"a key-encryption key must be {KEK_SIZE} raw bytes, this one is {len(kek)}"
        )
    return kek


def wrap(optsdata: bytes, kid: ResourcePath, kek: bytes) -> KeyPacket:
    """Seal the private layer options under the KEK named `kid`."""
    iv = os.urandom(IV_SIZE)
    return KeyPacket(kid, AESGCM(check_kek(kek, kid)).encrypt(iv, optsdata, None), iv)


def unwrap(packet: KeyPacket, kek: bytes) -> bytes:
    """Open a packet; a wrong KEK or a modified packet is a :class:`DecryptionError`."""
    try:
        return AESGCM(check_kek(kek, packet.kid)).decrypt(packet.iv, packet.wrapped, None)
    except InvalidTag:
        raise DecryptionError(str(packet.kid), "wrapped_data", "does not authenticate under this key") from None


def is_jwe(doc: dict[str, object]) -> bool:
    """RFC 7516 §7.2: a JSON-serialized JWE has ``ciphertext`` and ``protected`` or ``recipients``."""
    return "ciphertext" in doc and ("protected" in doc or "recipients" in doc)


def jwe_wrap(optsdata: bytes, public_pem: bytes, where: str = "jwe recipient") -> bytes:
    """Encrypt the private options to a recipient's public key, as ocicrypt's jwe keywrap does."""
    from jwcrypto import jwe, jwk

    try:
        key = jwk.JWK.from_pem(public_pem)
    except (ValueError, TypeError):
        raise KeyProviderError(where, "", "not a PEM public key") from None
    if key.has_private:
        raise KeyProviderError(where, "", "is a private key; encrypt to the public half")
    alg = "RSA-OAEP" if key.get("kty") == "RSA" else "ECDH-ES+A256KW"
    token = jwe.JWE(optsdata, protected=json.dumps({"alg": alg, "enc": "A256GCM"}))
    token.add_recipient(key)
    return token.serialize(compact=False).encode()


def jwe_unwrap(annotation: bytes, private_key: bytes, where: str = "jwe") -> bytes:
    """Decrypt a JWE annotation with a private key (PEM or JWK JSON) fetched from the key store."""
    from jwcrypto import jwe, jwk
    from jwcrypto.common import JWException

    try:
        key = jwk.JWK.from_json(private_key) if private_key.lstrip().startswith(b"{") else jwk.JWK.from_pem(private_key)
    except (ValueError, TypeError, JWException):
        raise KeyProviderError(where, "", "the key store's JWE key is not a PEM or JWK private key") from None
    token = jwe.JWE(algs=[*_JWE_ALGS, "A128GCM", "A192GCM"])
    try:
        token.deserialize(annotation.decode(), key=key)
    except (JWException, ValueError, UnicodeDecodeError) as exc:
        raise DecryptionError(where, "", f"cannot decrypt the JWE recipient ({exc.__class__.__name__})") from None
    return bytes(token.payload)
