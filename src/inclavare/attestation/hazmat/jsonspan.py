"""Exact byte spans of the members of a top-level JSON object.

Intel PCS signs the *bytes* of the ``tcbInfo`` / ``enclaveIdentity`` value as
served, not a canonical form (Intel PCS API: "signature ... calculated over
tcbInfo body without whitespaces"; in practice the served bytes). So the
verifier must locate that value inside the response body and verify the
signature over exactly those bytes, then parse *those same bytes*. Duplicate
keys are refused at every level: with two ``tcbInfo`` members a verifier
could check one and use the other.
"""

from __future__ import annotations

import json

from ..errors import CollateralError

_WS = b" \t\r\n"


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise CollateralError(f"json: duplicate key {key!r}")
        out[key] = value
    return out


def loads_strict(data: bytes, what: str) -> object:
    """``json.loads`` that refuses duplicate keys, NaN/Infinity and invalid UTF-8."""
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except CollateralError as exc:
        raise CollateralError(f"{what}: {exc}".replace("json: ", "")) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CollateralError(f"{what}: malformed JSON ({str(exc).splitlines()[0][:80]})") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def member_spans(data: bytes, what: str) -> dict[str, bytes]:
    """The raw bytes of each member value of the top-level object in ``data``."""
    loads_strict(data, what)  # the whole document must be valid, strict JSON first
    pos = _skip_ws(data, 0)
    if data[pos : pos + 1] != b"{":
        raise CollateralError(f"{what}: not a JSON object")
    pos, out = pos + 1, dict[str, bytes]()
    while True:
        pos = _skip_ws(data, pos)
        if data[pos : pos + 1] == b"}":
            return out
        key_end = _skip_string(data, pos)
        key = json.loads(data[pos:key_end])
        pos = _skip_ws(data, key_end) + 1  # the ':'
        start = _skip_ws(data, pos)
        end = _skip_value(data, start)
        out[key] = data[start:end]
        pos = _skip_ws(data, end)
        if data[pos : pos + 1] == b",":
            pos += 1


def _skip_ws(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _WS:
        pos += 1
    return pos


def _skip_string(data: bytes, pos: int) -> int:
    pos += 1  # opening quote
    while data[pos] != 0x22:
        pos += 2 if data[pos] == 0x5C else 1
    return pos + 1


def _skip_value(data: bytes, pos: int) -> int:
    if data[pos] == 0x22:
        return _skip_string(data, pos)
    if data[pos] in b"{[":
        depth = 0
        while True:
            c = data[pos]
            if c == 0x22:
                pos = _skip_string(data, pos)
                continue
            depth += 1 if c in b"{[" else -1 if c in b"}]" else 0
            pos += 1
            if depth == 0:
                return pos
    while pos < len(data) and data[pos] not in b",}] \t\r\n":
        pos += 1
    return pos
