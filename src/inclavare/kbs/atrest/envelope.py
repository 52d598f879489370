"""Envelope encryption of one stored resource: a fresh data key per version, wrapped under a KEK.

Per write of a resource::

    data key  = 32 random bytes (fresh for every version of every resource)
    ciphertext = nonce || AES-256-GCM(data key, value,    AAD = "resource v1", path, version)
    wrapped    = nonce || AES-256-GCM(KEK,      data key, AAD = "data-key v1", path, version, KEK id)

and the row stores ``(path, version, KEK id, wrapped, ciphertext)``. The
AADs bind the row to its path and version: a row copied to another path,
or given another version number, does not decrypt, and neither does a data
key moved to another row. A rotation re-wraps the 60-byte data keys and
leaves the ciphertexts alone (the values were never under the KEK). Nonces
are random (96 bits); each data key encrypts one value, and a KEK wraps one
data key per resource write, far below the 2^32 random-nonce limit of
SP 800-38D §8.3.

What AEAD cannot see is a *rollback*: an older row of the same path,
restored whole, decrypts. :class:`VersionMarks` remembers, per path, the
newest version this process has written, served or deleted and refuses an
older one; a database restored whole behind a broker's back after a
restart is not detected (docs/kbs.md, "Encryption at rest").
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import StorageUnavailable, StoredDataCorrupt
from .kek import KEY_BYTES, Kek, Keyring

NONCE_BYTES = 12
_RESOURCE = b"inclavare-kbs resource v1"
_DATA_KEY = b"inclavare-kbs data-key v1"


@dataclass(frozen=True)
class Sealed:
    """A resource as the database holds it (no secret in any field)."""

    kek_id: str
    dek: bytes  # nonce || AES-256-GCM(KEK, data key)
    ciphertext: bytes  # nonce || AES-256-GCM(data key, value)


def _aad(label: bytes, path: str, version: int, kid: str = "") -> bytes:
    """Length-prefixed, so no two (path, version, id) triples encode alike."""
    p, k = path.encode("utf-8"), kid.encode("ascii")
    return label + struct.pack(">I", len(p)) + p + struct.pack(">QI", version, len(k)) + k


def seal(kek: Kek, path: str, version: int, value: bytes, rng: Callable[[int], bytes] = os.urandom) -> Sealed:
    dek = rng(KEY_BYTES)
    n1, n2 = rng(NONCE_BYTES), rng(NONCE_BYTES)
    ciphertext = n1 + AESGCM(dek).encrypt(n1, value, _aad(_RESOURCE, path, version))
    return Sealed(kek.id, n2 + kek.aead.encrypt(n2, dek, _aad(_DATA_KEY, path, version, kek.id)), ciphertext)


def unseal(keyring: Keyring, path: str, version: int, sealed: Sealed) -> bytes:
    """The value; StoredDataCorrupt if the row was moved or altered, StorageUnavailable if its KEK is not held."""
    dek = _data_key(keyring, path, version, sealed)
    return _open(AESGCM(dek), sealed.ciphertext, _aad(_RESOURCE, path, version), path, version, "value")


def rewrap(keyring: Keyring, path: str, version: int, sealed: Sealed, to: Kek, rng: Callable[[int], bytes]) -> Sealed:
    """The same row with its data key wrapped under ``to`` (the ciphertext is untouched)."""
    dek = _data_key(keyring, path, version, sealed)
    nonce = rng(NONCE_BYTES)
    return Sealed(to.id, nonce + to.aead.encrypt(nonce, dek, _aad(_DATA_KEY, path, version, to.id)), sealed.ciphertext)


def _data_key(keyring: Keyring, path: str, version: int, sealed: Sealed) -> bytes:
    kek = keyring.get(sealed.kek_id)
    if kek is None:  # a rotation this replica has not been told about: another replica may serve (503)
        raise StorageUnavailable(
            f"resource {path}: its data key is wrapped under KEK {sealed.kek_id}, which this replica does not hold "
            "(add it to storage.kek and reload: SIGHUP)"
        )
    aad = _aad(_DATA_KEY, path, version, sealed.kek_id)
    dek = _open(kek.aead, sealed.dek, aad, path, version, f"data key (KEK {kek.id})")
    if len(dek) != KEY_BYTES:
        raise StoredDataCorrupt(f"resource {path} (version {version}): the data key is not 32 bytes")
    return dek


def _open(aead: AESGCM, blob: bytes, aad: bytes, path: str, version: int, what: str) -> bytes:
    try:
        return aead.decrypt(bytes(blob[:NONCE_BYTES]), bytes(blob[NONCE_BYTES:]), aad)
    except (InvalidTag, ValueError):
        raise StoredDataCorrupt(
            f"resource {path} (version {version}): the {what} fails authentication "
            "(the row was moved to another path, altered or given another version)"
        ) from None


class VersionMarks:
    """Per path, the oldest version this process will still accept: a row older than that was rolled back.

    Versions come from one counter in the database (a deleted and re-created
    resource gets a higher one), so every legitimate change only moves a
    path's mark forward. A reader takes :meth:`floor` *before* its SELECT and
    a writer moves the mark only *after* its commit, so a read racing a
    write never mistakes the version it read for a rollback.
    """

    def __init__(self) -> None:
        self._min: dict[str, int] = {}
        self._lock = threading.Lock()

    def floor(self, path: str) -> int:
        with self._lock:
            return self._min.get(path, 0)

    def seen(self, path: str, version: int, floor: int = 0) -> None:
        """``version`` of ``path`` was read or written; StoredDataCorrupt if it is below ``floor``."""
        if version < floor:
            raise StoredDataCorrupt(
                f"resource {path}: version {version} is older than version {floor} this replica has seen "
                "(the row was rolled back)"
            )
        with self._lock:
            self._min[path] = max(self._min.get(path, 0), version)

    def deleted(self, path: str, version: int) -> None:
        """``version`` of ``path`` was deleted: it, or anything older, may not come back."""
        with self._lock:
            self._min[path] = max(self._min.get(path, 0), version + 1)
