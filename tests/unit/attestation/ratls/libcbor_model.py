"""libcbor as rats-tls uses it, written from libcbor's sources: the test peer's CBOR, independent of cbor2.

Encoding (libcbor v0.8.0 ``src/cbor/internal/encoders.c``): heads use the
shortest form (``_cbor_encode_uint``) for lengths and tags, and items built
with ``cbor_build_uint8`` too; ``cbor_build_uint32`` items are always five
bytes. ``cbor_serialize_alloc`` before libcbor 0.10 reports a 32 * 2^k
allocation, whose tail is uninitialised heap (``serialization.c``); from 0.10
on it reports the exact size.

Decoding is ``cbor_load``: the first item of the buffer, trailing bytes
ignored, definite lengths only (all rats-tls writes), integer widths kept so
that rats-tls's ``cbor_int_get_width`` checks can be modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

UINT, BYTES, TEXT, ARRAY, MAP, TAG = 0, 2, 3, 4, 5, 6
WIDTHS = {24: 1, 25: 2, 26: 4, 27: 8}


def head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for code, size in WIDTHS.items():
        if value < 1 << (8 * size):
            return bytes([major << 5 | code]) + value.to_bytes(size, "big")
    raise ValueError(value)


def uint8(value: int) -> bytes:
    return head(UINT, value)


def uint32(value: int) -> bytes:
    return bytes([UINT << 5 | 26]) + value.to_bytes(4, "big")


def bstr(data: bytes) -> bytes:
    return head(BYTES, len(data)) + data


def tstr(text: str) -> bytes:
    return head(TEXT, len(text.encode())) + text.encode()


def array(*items: bytes) -> bytes:
    return head(ARRAY, len(items)) + b"".join(items)


def cmap(*pairs: tuple[bytes, bytes]) -> bytes:
    return head(MAP, len(pairs)) + b"".join(k + v for k, v in pairs)


def tag(value: int, item: bytes) -> bytes:
    return head(TAG, value) + item


def serialize_alloc(item: bytes, old_libcbor: bool, filler: int = 0xA5) -> bytes:
    """What rats-tls gets as (buffer, size): the item, plus allocation slack before libcbor 0.10."""
    if not old_libcbor:
        return item
    size = 32
    while size < len(item):
        size *= 2
    return item + bytes([filler]) * (size - len(item))


@dataclass
class Item:
    major: int
    value: int  # uint value, length, count or tag number
    width: int  # bytes of the head's argument (0: in the initial byte)
    payload: bytes = b""  # byte and text strings
    children: tuple[Item, ...] = ()  # array items, map keys and values alternating, or the tagged item


class Malformed(Exception):
    """cbor_load's result.error.code != CBOR_ERR_NONE."""


def load(data: bytes) -> Item:
    """libcbor ``cbor_load``: the first item; what follows is ignored."""
    item, _ = _item(data, 0)
    return item


def _item(data: bytes, pos: int) -> tuple[Item, int]:
    if pos >= len(data):
        raise Malformed("not enough data")
    major, info = data[pos] >> 5, data[pos] & 31
    pos += 1
    width = WIDTHS.get(info, 0)
    if info > 27:
        raise Malformed("indefinite or reserved")
    value = int.from_bytes(data[pos : pos + width], "big") if width else info
    if len(data) < pos + width:
        raise Malformed("truncated head")
    pos += width
    if major in (BYTES, TEXT):
        if len(data) < pos + value:
            raise Malformed("truncated string")
        return Item(major, value, width, data[pos : pos + value]), pos + value
    if major in (ARRAY, MAP, TAG):
        count = 1 if major == TAG else value * (2 if major == MAP else 1)
        children = []
        for _ in range(count):
            child, pos = _item(data, pos)
            children.append(child)
        return Item(major, value, width, children=tuple(children)), pos
    if major == UINT:
        return Item(major, value, width), pos
    raise Malformed(f"major type {major} is not used by rats-tls")
