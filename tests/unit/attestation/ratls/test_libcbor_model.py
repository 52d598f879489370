"""The test peer's CBOR against the real libcbor 0.8 (Debian 12's libcbor0.8), where it is installed.

The same calls rats-tls's src/core/dice.c makes, through ctypes; the bytes up
to the item's end must equal the model's, and the reported size must be the
model's allocation (the slack's content is uninitialised heap, not compared).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib

import pytest

from inclavare.attestation.hazmat.libcbor import allocation_for, decode_item

from . import libcbor_model as cb
from .gramine import QUOTE


def _libcbor() -> ctypes.CDLL:
    for name in ("libcbor.so.0.8", ctypes.util.find_library("cbor") or ""):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    pytest.skip("libcbor 0.8 is not installed (Debian: libcbor0.8)")


class Pair(ctypes.Structure):
    _fields_ = [("key", ctypes.c_void_p), ("value", ctypes.c_void_p)]


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    lib = _libcbor()
    p, size = ctypes.c_void_p, ctypes.c_size_t
    signatures = {
        "cbor_new_definite_array": (p, [size]),
        "cbor_new_definite_map": (p, [size]),
        "cbor_new_tag": (p, [ctypes.c_uint64]),
        "cbor_build_uint8": (p, [ctypes.c_uint8]),
        "cbor_build_uint32": (p, [ctypes.c_uint32]),
        "cbor_build_bytestring": (p, [ctypes.c_char_p, size]),
        "cbor_build_string": (p, [ctypes.c_char_p]),
        "cbor_move": (p, [p]),
        "cbor_array_push": (ctypes.c_bool, [p, p]),
        "cbor_map_add": (ctypes.c_bool, [p, Pair]),
        "cbor_tag_set_item": (None, [p, p]),
        "cbor_serialize_alloc": (size, [p, ctypes.POINTER(p), ctypes.POINTER(size)]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def serialize(lib: ctypes.CDLL, item: int) -> tuple[bytes, int]:
    """(the buffer of the reported size, the bytes written), as rats-tls receives them."""
    buf, size = ctypes.c_void_p(), ctypes.c_size_t()
    written = lib.cbor_serialize_alloc(item, ctypes.byref(buf), ctypes.byref(size))
    return ctypes.string_at(buf, size.value), written


def test_claims_and_evidence_buffers_match_libcbor(lib) -> None:
    digest = hashlib.sha256(b"spki").digest()
    root = lib.cbor_new_definite_array(2)  # dice_generate_pubkey_hash_value_buffer
    lib.cbor_array_push(root, lib.cbor_move(lib.cbor_build_uint8(1)))
    lib.cbor_array_push(root, lib.cbor_move(lib.cbor_build_bytestring(digest, 32)))
    value, written = serialize(lib, root)
    model = cb.serialize_alloc(cb.array(cb.uint8(1), cb.bstr(digest)), old_libcbor=True)
    assert (value[:written], len(value), written) == (model[:36], len(model), 36)
    claims_map = lib.cbor_new_definite_map(2)  # dice_generate_claims_buffer, one custom claim
    for name, data in ((b"pubkey-hash", value), (b"key_0", b"value_0\0")):
        pair = Pair(
            lib.cbor_move(lib.cbor_build_string(name)), lib.cbor_move(lib.cbor_build_bytestring(data, len(data)))
        )
        lib.cbor_map_add(claims_map, pair)
    claims, claims_written = serialize(lib, claims_map)
    # libcbor's slack is whatever the heap held (seen: pieces of ld.so.cache), so the real buffer is embedded
    pairs = ((cb.tstr("pubkey-hash"), cb.bstr(value)), (cb.tstr("key_0"), cb.bstr(b"value_0\0")))
    expected = cb.cmap(*pairs)
    assert (claims[:claims_written], len(claims)) == (expected, allocation_for(len(expected)))
    tagged = lib.cbor_new_tag(60000)  # dice_generate_evidence_buffer_with_tag
    array = lib.cbor_new_definite_array(2)
    lib.cbor_array_push(array, lib.cbor_move(lib.cbor_build_bytestring(QUOTE, len(QUOTE))))
    lib.cbor_array_push(array, lib.cbor_move(lib.cbor_build_bytestring(claims, len(claims))))
    lib.cbor_tag_set_item(tagged, array)
    evidence, written = serialize(lib, tagged)
    expected = cb.tag(60000, cb.array(cb.bstr(QUOTE), cb.bstr(claims)))
    assert (evidence[:written], len(evidence)) == (expected, allocation_for(len(expected)))
    # and this project's reader takes libcbor's own buffers, slack and all
    assert decode_item(evidence, "evidence")[1] == len(evidence) - written > 0
    assert decode_item(claims, "claims")[1] == len(claims) - claims_written > 0


def test_endorsements_version_is_32_bits_wide(lib) -> None:
    version, written = serialize(lib, lib.cbor_build_uint32(3))
    assert version[:written] == cb.uint32(3) == b"\x1a\x00\x00\x00\x03"
    small, written = serialize(lib, lib.cbor_build_uint8(3))
    assert small[:written] == cb.uint8(3) == b"\x03"
