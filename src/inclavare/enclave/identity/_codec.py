"""A tiny canonical, injective binary encoding for values that get hashed.

Used for the enclave measurement and for HKDF ``info`` strings, where two
different values must never encode to the same bytes and one value must
always encode to the same bytes (so no JSON, whose whitespace and key order
vary, and no general CBOR encoder, whose "canonical" mode differs between
library versions). Grammar (all integers big-endian)::

    enc(None)       = "N"
    enc(False/True) = "F" / "T"
    enc(int n)      = "I" u64(n)                 0 <= n < 2**64
    enc(str s)      = "S" u32(len(utf8(s))) utf8(s)
    enc(bytes b)    = "B" u32(len(b)) b
    enc(list l)     = "L" u32(len(l)) enc(l[0]) enc(l[1]) ...
    enc(dict d)     = "D" u32(len(d)) (enc(k) enc(d[k]) for k in sorted keys)

Dictionary keys must be strings and are sorted by their UTF-8 bytes, so the
insertion order of a dict never shows. Every item starts with a type tag and
every variable-length item carries its length, so the encoding is prefix-free
and therefore injective.
"""

from __future__ import annotations

import struct

Encodable = None | bool | int | str | bytes | list["Encodable"] | dict[str, "Encodable"]


def encode(value: Encodable) -> bytes:
    """The canonical encoding of `value` (see the module docstring)."""
    out = bytearray()
    _encode(value, out)
    return bytes(out)


def _encode(value: Encodable, out: bytearray) -> None:
    if value is None:
        out += b"N"
    elif isinstance(value, bool):  # before int: bool is an int subclass
        out += b"T" if value else b"F"
    elif isinstance(value, int):
        if not 0 <= value < 1 << 64:
            raise ValueError(f"cannot canonically encode {value}: integers are u64")
        out += b"I" + struct.pack(">Q", value)
    elif isinstance(value, str):
        _blob(b"S", value.encode(), out)
    elif isinstance(value, bytes):
        _blob(b"B", value, out)
    elif isinstance(value, list):
        out += b"L" + struct.pack(">I", len(value))
        for item in value:
            _encode(item, out)
    elif isinstance(value, dict):
        out += b"D" + struct.pack(">I", len(value))
        for key in sorted(value, key=lambda k: k.encode()):
            _blob(b"S", key.encode(), out)
            _encode(value[key], out)
    else:
        raise TypeError(f"cannot canonically encode {type(value).__name__}")


def _blob(tag: bytes, raw: bytes, out: bytearray) -> None:
    out += tag + struct.pack(">I", len(raw)) + raw
