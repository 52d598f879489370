"""The host's software-TEE key: the Ed25519 key that signs software reports.

In SGX the CPU signs (MACs) REPORTs and the quoting enclave signs quotes
with a key certified by Intel. A software enclave has no such root, so the
host itself holds an Ed25519 key (RFC 8032) and signs reports with it; a
verifier must be told this key's public half out of band (``inclavare
enclave host-key`` prints it). The key is created on first use at a
configurable path (default ``/var/lib/inclavare/software-tee-key.pem``,
PKCS#8 PEM, mode 0600, parent 0700) and can be derived from a 32-byte seed
so that tests are deterministic. Whoever can read the file can forge
reports for this host: see docs/enclave-identity.md.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ._files import load_or_create_secret
from .errors import HostKeyError

DEFAULT_HOST_KEY = "/var/lib/inclavare/software-tee-key.pem"


class HostKey:
    """An Ed25519 signing key; the private half never leaves this object."""

    __slots__ = ("_key", "path")

    def __init__(self, key: ed25519.Ed25519PrivateKey, path: str = "<memory>") -> None:
        self._key = key
        self.path = path

    def __repr__(self) -> str:
        return f"HostKey({self.path!r}, key_id={self.key_id.hex()[:16]}...)"

    @classmethod
    def from_seed(cls, seed: bytes) -> HostKey:
        """A key derived from a 32-byte seed (RFC 8032 §5.1.5): for tests and fixtures."""
        if len(seed) != 32:
            raise HostKeyError("<seed>", "", "an Ed25519 seed is 32 bytes")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed), "<seed>")

    @classmethod
    def load_or_create(cls, path: str = DEFAULT_HOST_KEY) -> HostKey:
        """Read the key at `path`, creating a fresh one (0600) on first use."""
        pem = load_or_create_secret(path, _new_pem, "software-TEE key")
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise HostKeyError(path, "", "not an unencrypted PEM private key") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise HostKeyError(path, "", "the software-TEE key must be Ed25519")
        return cls(key, path)

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._key.public_key()

    @property
    def public_raw(self) -> bytes:
        """The 32-byte Ed25519 public key (RFC 8032 §5.1.5 encoding)."""
        return self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_pem(self) -> bytes:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return self.public_key.public_bytes(serialization.Encoding.PEM, spki)

    @property
    def key_id(self) -> bytes:
        """SHA-256 of the raw 32-byte public key: the ``host_key_id`` of software evidence
        (:mod:`inclavare.attestation.software`), by which verifiers pick the trusted key."""
        return hashlib.sha256(self.public_raw).digest()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def private_key(self) -> ed25519.Ed25519PrivateKey:
        """The key object, for an evidence encoder that signs itself; never log or serialise it."""
        return self._key


def _new_pem() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
