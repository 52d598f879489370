"""JSON on rune's hot path, straight from CPython's C accelerator.

Why not ``import json``: the stdlib package imports ``re`` (and with it
``enum``) at import time, which costs about 7 ms of rune's start-up on the
reference machine — a quarter of runc's whole `run`. The C scanner and encoder
in ``_json`` are what ``json`` itself uses for the fast path; this module only
adds the thin driver code that ``json.decoder``/``json.encoder`` would.
Error paths may import the stdlib (they are not hot).
"""

from __future__ import annotations

import _json

_WS = " \t\n\r"


class _Context:
    # Attribute set read by _json.make_scanner (Modules/_json.c, scanner_new).
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> object:
        # RFC 8259 has no NaN/Infinity; refuse them like a strict parser.
        raise ValueError(f"invalid JSON constant {name}")


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # typeshed wants a scanner; any attribute bag works


class JSONError(ValueError):
    """Malformed JSON; ``pos``/``lineno``/``colno`` locate the problem."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        self.pos = pos
        self.lineno = doc.count("\n", 0, pos) + 1
        self.colno = pos - doc.rfind("\n", 0, pos)
        super().__init__(f"{msg} at line {self.lineno} column {self.colno}")


def loads(doc: str | bytes) -> object:
    """Parse one JSON document (RFC 8259; NaN and Infinity refused)."""
    if isinstance(doc, bytes | bytearray):
        try:
            doc = bytes(doc).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError("not UTF-8", "", exc.start) from None
    start = len(doc) - len(doc.lstrip(_WS))
    try:
        value, end = _scan(doc, start)
    except RecursionError:
        raise JSONError("nested too deeply", doc, start) from None
    except Exception:
        # The C scanner reports errors through json.decoder, which it imports
        # lazily (and, without it loaded, can fail as SystemError). Errors are
        # not hot: let the stdlib parser produce the located message.
        _raise_stdlib_error(doc)
        raise JSONError("expecting a value", doc, start) from None
    rest = len(doc) - len(doc.rstrip(_WS))
    if end != len(doc) - rest:
        raise JSONError("extra data", doc, end)
    return value


def _raise_stdlib_error(doc: str) -> None:
    import json

    try:
        json.loads(doc, parse_constant=_Context.parse_constant)
    except json.JSONDecodeError as exc:
        raise JSONError(exc.msg, doc, exc.pos) from None
    except ValueError as exc:
        raise JSONError(str(exc), doc, 0) from None


def _default(obj: object) -> object:
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ":", ",", False, False, False)


def dumps(obj: object) -> str:
    """Compact JSON, ASCII-only, NaN refused."""
    return "".join(_encode(obj, 0))


def dumps_pretty(obj: object, indent: str = "  ", _level: int = 0) -> str:
    """Indented JSON as Go's json.MarshalIndent writes it (runc's `state` output)."""
    pad = "\n" + indent * (_level + 1)
    if isinstance(obj, dict) and obj:
        items = [
            _json.encode_basestring_ascii(str(k)) + ": " + dumps_pretty(v, indent, _level + 1) for k, v in obj.items()
        ]
        return "{" + pad + ("," + pad).join(items) + "\n" + indent * _level + "}"
    if isinstance(obj, list | tuple) and obj:
        items = [dumps_pretty(v, indent, _level + 1) for v in obj]
        return "[" + pad + ("," + pad).join(items) + "\n" + indent * _level + "]"
    return dumps(obj)
