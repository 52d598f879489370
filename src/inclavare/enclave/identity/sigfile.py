"""The enclave signature file (``<manifest>.sig``): a software SIGSTRUCT, in CBOR.

The file is one CBOR map (RFC 8949)::

    {
      "format":    "inclavare-enclave-signature",
      "version":   1,
      "algorithm": "rsa3072-pkcs1v15-sha256" | "ed25519",
      "signer":    bstr,     DER SubjectPublicKeyInfo of the signing key
      "body":      bstr,     the signed body, itself a CBOR map (below)
      "signature": bstr,
    }

    body = {
      "measurement": bstr(32),   see inclavare.enclave.identity.measure
      "isv_prod_id": uint16,
      "isv_svn":     uint16,
      "debug":       bool,
      "attributes":  {"software": true, "debug": bool},
    }

The signature covers ``TBS = b"inclavare/enclave-signature/v1\\0" || body``
(the prefix keeps a signature over this body from ever being valid for some
other protocol that uses the same key):

* ``ed25519``: PureEdDSA over TBS (RFC 8032 §5.1.6).
* ``rsa3072-pkcs1v15-sha256``: RSASSA-PKCS1-v1_5 with SHA-256 over TBS
  (RFC 8017 §8.2). PKCS#1 v1.5, not PSS, because SGX SIGSTRUCT is PKCS#1
  v1.5/SHA-256 (Intel SDM Vol. 3D §38.13) and the original shim's signing
  server only offers ``/api/v1/signature/pkcs1``; v1.5 signatures are also
  deterministic, so re-signing the same body gives the same file. The key
  must be 3072 bits, as SGX requires; any public exponent is accepted.

The body is kept as bytes, so verification checks exactly what was signed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from .errors import SignatureError
from .identity import EnclaveIdentity, signer_id

FORMAT = "inclavare-enclave-signature"
RSA = "rsa3072-pkcs1v15-sha256"
ED25519 = "ed25519"
TBS_PREFIX = b"inclavare/enclave-signature/v1\0"
_MAX_FILE = 64 << 10


@dataclasses.dataclass(frozen=True)
class SignatureFile:
    algorithm: str
    signer: bytes  # DER SubjectPublicKeyInfo
    body: bytes
    signature: bytes

    def encode(self) -> bytes:
        return cbor2.dumps(
            {
                "format": FORMAT,
                "version": 1,
                "algorithm": self.algorithm,
                "signer": self.signer,
                "body": self.body,
                "signature": self.signature,
            },
            canonical=True,
        )


def encode_body(measurement: bytes, isv_prod_id: int, isv_svn: int, debug: bool) -> bytes:
    body = {
        "measurement": measurement,
        "isv_prod_id": isv_prod_id,
        "isv_svn": isv_svn,
        "debug": debug,
        "attributes": {"software": True, "debug": debug},
    }
    return cbor2.dumps(body, canonical=True)


def decode(raw: bytes, file: str) -> SignatureFile:
    """Parse a signature file; structure only, the signature is not checked yet."""
    if len(raw) > _MAX_FILE:
        raise SignatureError(file, "", "larger than 64 KiB")
    doc = _cbor_map(raw, file, "")
    version = doc.get("version")
    if doc.get("format") != FORMAT or isinstance(version, bool) or version != 1:
        raise SignatureError(file, "format", f"not an {FORMAT} version 1 file")
    algorithm = doc.get("algorithm")
    if algorithm not in (RSA, ED25519):
        raise SignatureError(file, "algorithm", f"must be {RSA!r} or {ED25519!r}")
    return SignatureFile(algorithm, *(_bytes(doc, k, file, "") for k in ("signer", "body", "signature")))


def identity_of(sig: SignatureFile, file: str) -> EnclaveIdentity:
    """The identity stated by a signature file's body (not yet verified)."""
    body = _cbor_map(sig.body, file, "body")
    measurement = _bytes(body, "measurement", file, "body.")
    if len(measurement) != 32:
        raise SignatureError(file, "body.measurement", "must be 32 bytes")
    ints = {}
    for key in ("isv_prod_id", "isv_svn"):
        value = body.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise SignatureError(file, f"body.{key}", "must be an integer 0..65535")
        ints[key] = value
    debug = body.get("debug")
    if not isinstance(debug, bool):
        raise SignatureError(file, "body.debug", "must be true or false")
    if body.get("attributes") != {"software": True, "debug": debug}:
        raise SignatureError(file, "body.attributes", "must be {software: true, debug: <debug>}")
    return EnclaveIdentity(measurement, signer_id(sig.signer), ints["isv_prod_id"], ints["isv_svn"], debug)


def check_signature(sig: SignatureFile, file: str) -> None:
    """Verify ``sig.signature`` over the body with the embedded signer key."""
    key = load_signer_key(sig.algorithm, sig.signer, file)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig.signature, TBS_PREFIX + sig.body)
        else:
            key.verify(sig.signature, TBS_PREFIX + sig.body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureError(file, "signature", "does not verify with the signer key in the file") from None


def load_signer_key(algorithm: str, spki: bytes, file: str) -> ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, TypeError):
        raise SignatureError(file, "signer", "not a DER SubjectPublicKeyInfo") from None
    if algorithm == ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if algorithm == RSA and isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072:
        return key
    raise SignatureError(file, "signer", f"key does not match algorithm {algorithm}")


def _cbor_map(raw: bytes, file: str, field: str) -> dict[Any, Any]:
    try:
        doc = cbor2.loads(raw)
    except Exception:  # cbor2 raises a variety of errors on hostile input; all mean "malformed"
        raise SignatureError(file, field, "malformed CBOR") from None
    if not isinstance(doc, dict):
        raise SignatureError(file, field, "must be a CBOR map")
    return doc


def _bytes(doc: dict[Any, Any], key: str, file: str, prefix: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, bytes):
        raise SignatureError(file, prefix + key, "must be a byte string")
    return value
