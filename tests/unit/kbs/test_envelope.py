"""Envelope encryption of a resource: AAD binds path and version, re-wrapping, rollback marks."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from inclavare.kbs.atrest import Kek, Keyring, VersionMarks, rewrap, seal, unseal
from inclavare.kbs.errors import StorageUnavailable, StoredDataCorrupt

OLD, NEW = Kek(bytes(range(32))), Kek(bytes(range(32, 64)))
RING = Keyring(OLD)
VALUE = b"db-password: hunter2"


def test_a_round_trip_and_what_the_row_holds():
    sealed = seal(OLD, "default/key/db", 7, VALUE)
    assert unseal(RING, "default/key/db", 7, sealed) == VALUE
    assert sealed.kek_id == OLD.id
    assert (len(sealed.dek), len(sealed.ciphertext)) == (12 + 32 + 16, 12 + len(VALUE) + 16)
    assert VALUE not in sealed.ciphertext
    assert VALUE not in sealed.dek
    again = seal(OLD, "default/key/db", 7, VALUE)
    assert again.dek != sealed.dek
    assert again.ciphertext != sealed.ciphertext


@pytest.mark.parametrize(("path", "version"), [("default/key/other", 7), ("default/key/db", 8), ("default/key/db", 6)])
def test_a_row_moved_to_another_path_or_version_does_not_open(path, version):
    sealed = seal(OLD, "default/key/db", 7, VALUE)
    with pytest.raises(StoredDataCorrupt, match="fails authentication"):
        unseal(RING, path, version, sealed)


def test_swapped_or_altered_parts_do_not_open():
    a, b = seal(OLD, "r/t/a", 1, b"value of a"), seal(OLD, "r/t/b", 2, b"value of b")
    with pytest.raises(StoredDataCorrupt, match="the data key"):
        unseal(RING, "r/t/a", 1, replace(a, dek=b.dek))
    flipped = bytearray(a.ciphertext)
    flipped[20] ^= 1
    with pytest.raises(StoredDataCorrupt, match="the value"):
        unseal(RING, "r/t/a", 1, replace(a, ciphertext=bytes(flipped)))
    # the value encrypted directly under the data key of another row: the AAD still names the other row
    with pytest.raises(StoredDataCorrupt):
        unseal(RING, "r/t/a", 1, replace(a, ciphertext=b.ciphertext))
    # a data key wrapped without the AAD (as a naive implementation would) is refused
    nonce = os.urandom(12)
    naked = nonce + OLD.aead.encrypt(nonce, os.urandom(32), None)
    with pytest.raises(StoredDataCorrupt):
        unseal(RING, "r/t/a", 1, replace(a, dek=naked))
    assert unseal(RING, "r/t/a", 1, a) == b"value of a"


def test_a_kek_this_replica_does_not_hold_is_a_503_not_corruption():
    sealed = seal(NEW, "r/t/a", 1, VALUE)
    with pytest.raises(StorageUnavailable, match=f"wrapped under KEK {NEW.id}, which this replica does not hold"):
        unseal(RING, "r/t/a", 1, sealed)
    relabelled = replace(seal(OLD, "r/t/a", 1, VALUE), kek_id=NEW.id)  # the KEK id is bound too
    with pytest.raises(StoredDataCorrupt):
        unseal(Keyring(NEW, [OLD]), "r/t/a", 1, relabelled)


def test_rewrap_moves_the_data_key_and_leaves_the_ciphertext():
    sealed = seal(OLD, "r/t/a", 3, VALUE)
    moved = rewrap(Keyring(NEW, [OLD]), "r/t/a", 3, sealed, NEW, os.urandom)
    assert (moved.kek_id, moved.ciphertext) == (NEW.id, sealed.ciphertext)
    assert unseal(Keyring(NEW), "r/t/a", 3, moved) == VALUE  # the old KEK is no longer needed
    with pytest.raises(StoredDataCorrupt):
        rewrap(Keyring(NEW, [OLD]), "r/t/b", 3, sealed, NEW, os.urandom)  # re-wrapping checks the binding too


def test_the_data_key_is_really_under_the_kek():
    """Independent check with the primitives: unwrap by hand, decrypt by hand."""
    sealed = seal(OLD, "r/t/a", 1, VALUE)
    aad = b"inclavare-kbs data-key v1" + (5).to_bytes(4, "big") + b"r/t/a" + (1).to_bytes(8, "big")
    aad += (16).to_bytes(4, "big") + OLD.id.encode()
    dek = AESGCM(bytes(range(32))).decrypt(sealed.dek[:12], sealed.dek[12:], aad)
    aad = b"inclavare-kbs resource v1" + (5).to_bytes(4, "big") + b"r/t/a" + (1).to_bytes(8, "big") + bytes(4)
    assert AESGCM(dek).decrypt(sealed.ciphertext[:12], sealed.ciphertext[12:], aad) == VALUE


def test_version_marks_see_rollbacks():
    marks = VersionMarks()
    floor = marks.floor("r/t/a")
    marks.seen("r/t/a", 5, floor)
    marks.seen("r/t/a", 5, marks.floor("r/t/a"))  # the same version again is fine
    with pytest.raises(StoredDataCorrupt, match="version 4 is older than version 5 this replica has seen"):
        marks.seen("r/t/a", 4, marks.floor("r/t/a"))
    marks.seen("r/t/a", 4, floor)  # a read whose floor was taken before a newer write: no false alarm
    marks.deleted("r/t/a", 9)
    with pytest.raises(StoredDataCorrupt):
        marks.seen("r/t/a", 9, marks.floor("r/t/a"))  # the deleted row itself may not come back
    marks.seen("r/t/a", 10, marks.floor("r/t/a"))  # re-created: a newer version
