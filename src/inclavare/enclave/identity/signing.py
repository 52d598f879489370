"""Signing and verifying enclaves: the ``gramine-sgx-sign`` of the built-in runtimes.

``sign_manifest`` measures an expanded manifest against its rootfs and signs
the measurement with product id, SVN, debug flag and attributes (the fields
of an SGX SIGSTRUCT that matter here; format in :mod:`.sigfile`). The key is
a PEM file (RSA-3072 or Ed25519) or, so that the tenant's key can stay off
the node, the original shim's signing server (:mod:`.signing_server`).

``verify_signature`` is what a runtime runs before it starts an enclave: it
checks the signature, re-measures the manifest and every trusted file and
module in the rootfs, and only then returns the :class:`EnclaveIdentity`.
``sign_parsed`` and ``verify_parsed`` do the same for a manifest and a
signature already in memory: the carrier (src/inclavare/carrier) reads them
from a container's rootfs itself, never through a host path into it.
Any mismatch is one line naming what differs: a trusted file or module
(``trusted_files[2].sha256: mismatch for /bin/app``), the manifest, or the
signature.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from . import sigfile
from ._files import load_or_create_secret, write_atomic
from .errors import SignatureError
from .expand import require_pinned
from .identity import EnclaveIdentity
from .manifest import Manifest, load_manifest
from .measure import measure

_MAX_KEY_FILE = 64 << 10


class Signer(Protocol):
    """Something that signs to-be-signed bytes with one fixed key."""

    @property
    def algorithm(self) -> str: ...

    def public_key_der(self) -> bytes: ...

    def sign(self, tbs: bytes) -> bytes: ...


class KeySigner:
    """Signs with a private key held in this process (loaded from a PEM file)."""

    def __init__(self, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> None:
        self._key = key

    def __repr__(self) -> str:  # never show key material
        return f"KeySigner({self.algorithm})"

    @classmethod
    def from_pem_file(cls, path: str) -> KeySigner:
        try:
            with open(path, "rb") as f:
                pem = f.read(_MAX_KEY_FILE)
        except OSError as exc:
            raise SignatureError(path, "", exc.strerror or "cannot read") from None
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except TypeError:
            raise SignatureError(path, "", "encrypted private keys are not supported") from None
        except (ValueError, UnsupportedAlgorithm):
            raise SignatureError(path, "", "not a PEM private key") from None
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls(key)
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072:
            return cls(key)
        raise SignatureError(path, "", "must be an RSA-3072 or Ed25519 private key")

    @classmethod
    def load_or_create(cls, path: str) -> KeySigner:
        """The Ed25519 key in the 0600 file at `path`, created on first use (a node's own signing key)."""

        def make() -> bytes:
            key = ed25519.Ed25519PrivateKey.generate()
            pkcs8 = serialization.PrivateFormat.PKCS8
            return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())

        load_or_create_secret(path, make, "signing key")
        return cls.from_pem_file(path)

    @property
    def algorithm(self) -> str:
        return sigfile.ED25519 if isinstance(self._key, ed25519.Ed25519PrivateKey) else sigfile.RSA

    def public_key_der(self) -> bytes:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return self._key.public_key().public_bytes(serialization.Encoding.DER, spki)

    def public_key_pem(self) -> bytes:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return self._key.public_key().public_bytes(serialization.Encoding.PEM, spki)

    def sign(self, tbs: bytes) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(tbs)
        return self._key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())


def sign_manifest(manifest_path: str, rootfs: str, signer: Signer) -> sigfile.SignatureFile:
    """Measure the manifest at `manifest_path` against `rootfs` and sign it."""
    return sign_parsed(load_manifest(manifest_path), rootfs, signer)


def sign_parsed(manifest: Manifest, rootfs: str, signer: Signer) -> sigfile.SignatureFile:
    """Measure `manifest` against `rootfs` and sign it."""
    require_pinned(manifest)
    body = sigfile.encode_body(measure(manifest, rootfs), manifest.isv_prod_id, manifest.isv_svn, manifest.debug)
    sig = sigfile.SignatureFile(signer.algorithm, signer.public_key_der(), body, signer.sign(sigfile.TBS_PREFIX + body))
    sigfile.check_signature(sig, "signer")  # a wrong key or a broken signer must not produce a file
    return sig


def write_signature(sig: sigfile.SignatureFile, path: str) -> None:
    write_atomic(path, sig.encode(), 0o644)


def read_signature(path: str) -> sigfile.SignatureFile:
    try:
        with open(path, "rb") as f:
            raw = f.read((64 << 10) + 1)
    except OSError as exc:
        raise SignatureError(path, "", exc.strerror or "cannot read") from None
    return sigfile.decode(raw, path)


def inspect_signature(path: str) -> tuple[EnclaveIdentity, str]:
    """The identity and algorithm in a signature file whose signature verifies."""
    sig = read_signature(path)
    sigfile.check_signature(sig, path)
    return sigfile.identity_of(sig, path), sig.algorithm


def verify_signature(
    manifest_path: str, sig_path: str, rootfs: str, *, expected_signer: bytes | None = None
) -> EnclaveIdentity:
    """Check everything and return the enclave's identity, or raise one located error."""
    sig = read_signature(sig_path)
    sigfile.check_signature(sig, sig_path)  # before the manifest is read, as errors have always been ordered
    return verify_parsed(load_manifest(manifest_path), sig, rootfs, sig_path, expected_signer=expected_signer)


def verify_parsed(
    manifest: Manifest,
    sig: sigfile.SignatureFile,
    rootfs: str,
    sig_path: str,
    *,
    expected_signer: bytes | None = None,
) -> EnclaveIdentity:
    """:func:`verify_signature` of a parsed manifest and signature file (`sig_path` names it in errors)."""
    sigfile.check_signature(sig, sig_path)
    claimed = sigfile.identity_of(sig, sig_path)
    if expected_signer is not None and claimed.signer != expected_signer:
        raise SignatureError(sig_path, "signer", f"{claimed.signer.hex()} is not the expected {expected_signer.hex()}")
    manifest_path = manifest.file
    require_pinned(manifest)
    measurement = measure(manifest, rootfs)  # names a trusted file or the module that differs
    if measurement != claimed.measurement:
        # Every file matches its pinned hash, so the manifest itself changed.
        raise SignatureError(
            manifest_path,
            "manifest",
            f"measurement {measurement.hex()} differs from the signed {claimed.measurement.hex()}",
        )
    for field in ("isv_prod_id", "isv_svn", "debug"):
        mine, signed = getattr(manifest, field), getattr(claimed, field)
        if mine != signed:
            raise SignatureError(manifest_path, field, f"{mine} differs from the signed {signed}".lower())
    return claimed
