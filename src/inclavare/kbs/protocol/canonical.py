"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for the report-data binding.

The KBC hashes the runtime data (nonce, TEE public key, additional evidence)
in canonical form and puts the digest into the hardware report; the KBS
recomputes it. Both sides must produce the same bytes, so this follows
RFC 8785 exactly for the values the protocol carries: object members sorted
by the UTF-16 code units of their names (§3.2.3), no insignificant
whitespace, strings escaped as ECMAScript ``JSON.stringify`` does (§3.2.2.2:
``\\b \\f \\n \\r \\t``, other controls as ``\\u00xx`` lower-case hex, everything
else as raw UTF-8). Ref: guest-components kbs_protocol ``rcar_client.rs``
(``serde_json_canonicalizer``); trustee ``kbs/src/attestation/backend.rs``.

Numbers are limited to integers within ±2^53 (every number a JWK or nonce
could carry); a float or a larger integer has more than one plausible
serialization across implementations and is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_MAX_SAFE = (1 << 53) - 1
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class CanonicalJsonError(ValueError):
    """The value cannot be canonicalized (unsupported type, float, lone surrogate)."""


def canonical_json(value: object) -> bytes:
    """The RFC 8785 serialization of ``value`` as UTF-8 bytes."""
    out: list[str] = []
    try:
        _write(value, out)
    except RecursionError:  # json.loads nests deeper than this recursive writer can follow
        raise CanonicalJsonError("value nested too deeply") from None
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJsonError("string contains a lone surrogate") from None


def _write(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > _MAX_SAFE:
            raise CanonicalJsonError(f"integer {value} is outside the interoperable range")
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, Mapping):
        _object(value, out)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        _array(value, out)
    else:
        raise CanonicalJsonError(f"cannot canonicalize a {type(value).__name__}")


def _object(value: Mapping[object, object], out: list[str]) -> None:
    keys = list(value)
    if not all(isinstance(k, str) for k in keys):
        raise CanonicalJsonError("object member names must be strings")
    # RFC 8785 §3.2.3: sort by UTF-16 code units, not by code points.
    names = sorted((k for k in keys if isinstance(k, str)), key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    out.append("{")
    for i, name in enumerate(names):
        if i:
            out.append(",")
        out.append(_string(name))
        out.append(":")
        _write(value[name], out)
    out.append("}")


def _array(value: Sequence[object], out: list[str]) -> None:
    out.append("[")
    for i, item in enumerate(value):
        if i:
            out.append(",")
        _write(item, out)
    out.append("]")


def _string(text: str) -> str:
    if _NEEDS_ESCAPE.search(text) is None:  # nonces, base64url key members: nothing to escape
        return f'"{text}"'
    parts = ['"']
    for ch in text:
        if ch in _SHORT:
            parts.append(_SHORT[ch])
        elif ch < " ":
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(ch)
    parts.append('"')
    return "".join(parts)


def loads(data: bytes | str) -> object:
    """``json.loads`` for what a peer sends: NaN and ±Infinity (which Python
    accepts, and which compare false with everything — an ``exp`` of NaN
    would never expire) and nesting deep enough to exhaust the stack are
    refused as ValueError, like any other malformed JSON."""
    import json

    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
