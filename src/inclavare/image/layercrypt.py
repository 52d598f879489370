"""ocicrypt's layer cipher, AES_256_CTR_HMAC_SHA256, and its option documents.

Ref: containers/ocicrypt blockcipher/blockcipher.go and
blockcipher_aes_ctr.go. A layer is encrypted with AES-256 in CTR mode under a
fresh 32-byte key; the initial counter block is a random 16-byte ``nonce``,
incremented as one 128-bit big-endian integer (Go's ``cipher.NewCTR``, and
``cryptography``'s ``modes.CTR``). HMAC-SHA256 keyed with the *same* key is
taken over the *ciphertext* (encrypt-then-MAC) and published in the public
options. Two JSON documents travel with the layer (Go encodes ``[]byte`` as
standard padded base64):

- private options (``PrivateLayerBlockCipherOptions``), the ``optsdata`` a key
  provider wraps: ``{"symkey": b64, "digest": "sha256:<plain layer blob>",
  "cipheroptions": {"nonce": b64}}``;
- public options (``PublicLayerBlockCipherOptions``), base64 in the
  ``org.opencontainers.image.enc.pubopts`` annotation: ``{"cipher":
  "AES_256_CTR_HMAC_SHA256", "hmac": b64, "cipheroptions": {}}``. Early
  ocicrypt put the MAC in ``cipheroptions.hmac``; it is read from there too.

The decryptor refuses to release a verdict before the MAC is checked:
:meth:`LayerDecryptor.verify` raises :class:`DecryptionError` on mismatch.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import DecryptionError, KeyProviderError
from .protocol import json_object

CIPHER = "AES_256_CTR_HMAC_SHA256"
KEY_SIZE = 32
NONCE_SIZE = 16  # aes.BlockSize


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64d(text: object, where: str, field: str) -> bytes:
    """Go's encoding of []byte: standard alphabet, padded."""
    if not isinstance(text, str):
        raise KeyProviderError(where, field, "must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyProviderError(where, field, "is not valid base64") from None


@dataclass(frozen=True)
class PrivateOptions:
    """The secret half: layer key, CTR nonce and the digest of the plain layer blob."""

    symkey: bytes
    nonce: bytes
    digest: str

    def __repr__(self) -> str:  # never print the key
        return f"PrivateOptions(digest={self.digest!r})"

    def to_json(self) -> bytes:
        doc = {"symkey": b64e(self.symkey), "digest": self.digest, "cipheroptions": {"nonce": b64e(self.nonce)}}
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, data: bytes, where: str = "optsdata") -> PrivateOptions:
        doc = json_object(data, where)
        key = b64d(doc.get("symkey"), where, "symkey")
        if len(key) != KEY_SIZE:
            raise KeyProviderError(where, "symkey", f"must be {KEY_SIZE} bytes for {CIPHER}")
        opts = doc.get("cipheroptions")
        opts = {} if opts is None else opts
        if not isinstance(opts, dict):
            raise KeyProviderError(where, "cipheroptions", "must be an object")
        nonce = b64d(opts.get("nonce"), where, "cipheroptions.nonce")
        if len(nonce) != NONCE_SIZE:
            raise KeyProviderError(where, "cipheroptions.nonce", f"must be {NONCE_SIZE} bytes")
        digest = doc.get("digest") or ""
        if not isinstance(digest, str):
            raise KeyProviderError(where, "digest", "must be a string")
        return cls(key, nonce, digest)


@dataclass(frozen=True)
class PublicOptions:
    """The public half: cipher name and the MAC over the ciphertext."""

    cipher: str
    hmac: bytes

    def to_json(self) -> bytes:
        doc = {"cipher": self.cipher, "hmac": b64e(self.hmac), "cipheroptions": {}}
        return json.dumps(doc, separators=(",", ":")).encode()

    def annotation(self) -> str:
        return b64e(self.to_json())

    @classmethod
    def from_annotation(cls, value: str, where: str) -> PublicOptions:
        field = "annotations.org.opencontainers.image.enc.pubopts"
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError(where, field, "is not valid base64") from None
        try:
            doc = json_object(data, where)
            cipher = doc.get("cipher")
            opts = doc.get("cipheroptions") or {}
            raw = doc.get("hmac") or (opts.get("hmac") if isinstance(opts, dict) else None)
            mac = b64d(raw, where, field + ".hmac")
        except KeyProviderError as exc:
            raise DecryptionError(where, exc.field or field, exc.reason) from None
        if cipher != CIPHER:
            raise DecryptionError(where, field + ".cipher", f"unsupported cipher {cipher!r} (only {CIPHER})")
        return cls(cipher, mac)


def new_private_options(plain_digest: str) -> PrivateOptions:
    """A fresh random layer key and nonce (ocicrypt GenerateKey and init)."""
    return PrivateOptions(os.urandom(KEY_SIZE), os.urandom(NONCE_SIZE), plain_digest)


class LayerEncryptor:
    """Streaming AES-256-CTR encryption, MAC over the ciphertext."""

    def __init__(self, opts: PrivateOptions) -> None:
        self._ctr = Cipher(algorithms.AES(opts.symkey), modes.CTR(opts.nonce)).encryptor()
        self._mac = hmac.new(opts.symkey, digestmod=sha256)

    def update(self, data: bytes) -> bytes:
        out = self._ctr.update(data)
        self._mac.update(out)
        return out

    def finalize(self) -> PublicOptions:
        self._ctr.finalize()
        return PublicOptions(CIPHER, self._mac.digest())


class LayerDecryptor:
    """Streaming decryption; :meth:`verify` must pass before the plaintext is trusted."""

    def __init__(self, opts: PrivateOptions, public: PublicOptions, where: str) -> None:
        self._ctr = Cipher(algorithms.AES(opts.symkey), modes.CTR(opts.nonce)).decryptor()
        self._mac = hmac.new(opts.symkey, digestmod=sha256)
        self._expected = public.hmac
        self._where = where

    def update(self, data: bytes) -> bytes:
        self._mac.update(data)
        return self._ctr.update(data)

    def verify(self) -> None:
        if not hmac.compare_digest(self._mac.digest(), self._expected):
            raise DecryptionError(self._where, "hmac", "layer ciphertext does not authenticate under the unwrapped key")


def mac_of(opts: PrivateOptions) -> Any:
    """A fresh HMAC over ciphertext under the layer key, for a verification pre-pass."""
    return hmac.new(opts.symkey, digestmod=sha256)
