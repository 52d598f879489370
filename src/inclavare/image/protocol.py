"""ocicrypt's key provider protocol: the JSON both sides exchange.

Ref: containers/ocicrypt keywrap/keyprovider/keyprovider.go
(``KeyProviderKeyWrapProtocolInput`` / ``...Output``) and
utils/keyprovider/keyprovider.proto (the gRPC service carries the same JSON
as ``bytes``). Field names are Go's JSON tags; Go encodes ``[]byte`` as
padded standard base64 and a nil slice or pointer as ``null``::

    input   {"op": "keywrap" | "keyunwrap",
             "keywrapparams":   {"ec": EncryptConfig | null, "optsdata": b64 | null},
             "keyunwrapparams": {"dc": DecryptConfig | null, "annotation": b64 | null}}
    output  {"keywrapresults": {"annotation": b64}} | {"keyunwrapresults": {"optsdata": b64}}

``EncryptConfig`` (ocicrypt config/config.go) has no JSON tags:
``{"Parameters": {name: [b64, ...]}, "DecryptConfig": {"Parameters": {...}}}``.
For ``--encryption-key provider:<name>:<params>`` ocicrypt sets
``Parameters[<name>] = [<params>]``; a provider reads only its own entry.
Go marshals both param structs even for the op that does not use them
(``omitempty`` has no effect on structs), so ``null`` members are normal.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import KeyProviderError

OP_WRAP = "keywrap"
OP_UNWRAP = "keyunwrap"
INPUT_LIMIT = 1 << 20  # an EncryptConfig may carry public keys; nothing legitimate is near this


@dataclass(frozen=True)
class WrapRequest:
    parameters: dict[str, list[bytes]]  # ec.Parameters
    optsdata: bytes = field(repr=False)  # the private layer options: secret


@dataclass(frozen=True)
class UnwrapRequest:
    parameters: dict[str, list[bytes]]  # dc.Parameters
    annotation: bytes


def parse_input(data: bytes) -> WrapRequest | UnwrapRequest:
    """Decode a ``KeyProviderKeyWrapProtocolInput``; every defect names its field."""
    doc = json_object(data, "input")
    op = doc.get("op")
    if op == OP_WRAP:
        params = _object(doc.get("keywrapparams"), "input", "keywrapparams")
        ec = _parameters(params.get("ec"), "keywrapparams.ec")
        return WrapRequest(ec, _b64(params.get("optsdata"), "input", "keywrapparams.optsdata"))
    if op == OP_UNWRAP:
        params = _object(doc.get("keyunwrapparams"), "input", "keyunwrapparams")
        dc = _parameters(params.get("dc"), "keyunwrapparams.dc")
        return UnwrapRequest(dc, _b64(params.get("annotation"), "input", "keyunwrapparams.annotation"))
    raise KeyProviderError("input", "op", f"must be {OP_WRAP!r} or {OP_UNWRAP!r}, not {str(op)[:40]!r}")


def encode_wrap_input(parameters: dict[str, list[bytes]], optsdata: bytes) -> bytes:
    """What ocicrypt's ``WrapKeys`` sends (EncryptConfig with an empty DecryptConfig)."""
    ec = {"Parameters": _encode_params(parameters), "DecryptConfig": {"Parameters": None}}
    doc = {
        "op": OP_WRAP,
        "keywrapparams": {"ec": ec, "optsdata": _e(optsdata)},
        "keyunwrapparams": {"dc": None, "annotation": None},
    }
    return json.dumps(doc).encode()


def encode_unwrap_input(parameters: dict[str, list[bytes]], annotation: bytes) -> bytes:
    """What ocicrypt's ``UnwrapKey`` sends."""
    dc = {"Parameters": _encode_params(parameters)}
    doc = {
        "op": OP_UNWRAP,
        "keywrapparams": {"ec": None, "optsdata": None},
        "keyunwrapparams": {"dc": dc, "annotation": _e(annotation)},
    }
    return json.dumps(doc).encode()


def encode_wrap_output(annotation: bytes) -> bytes:
    return json.dumps({"keywrapresults": {"annotation": _e(annotation)}}).encode()


def encode_unwrap_output(optsdata: bytes) -> bytes:
    return json.dumps({"keyunwrapresults": {"optsdata": _e(optsdata)}}).encode()


def parse_wrap_output(data: bytes, who: str) -> bytes:
    results = _object(json_object(data, who).get("keywrapresults"), who, "keywrapresults")
    return _b64(results.get("annotation"), who, "keywrapresults.annotation")


def parse_unwrap_output(data: bytes, who: str) -> bytes:
    results = _object(json_object(data, who).get("keyunwrapresults"), who, "keyunwrapresults")
    return _b64(results.get("optsdata"), who, "keyunwrapresults.optsdata")


def json_object(data: bytes, where: str) -> dict[str, Any]:
    """A key provider document (or the options it carries) that must be a JSON object of sane size."""
    if len(data) > INPUT_LIMIT:
        raise KeyProviderError(where, "", f"larger than {INPUT_LIMIT} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise KeyProviderError(where, "", "is not valid JSON") from None
    if not isinstance(doc, dict):
        raise KeyProviderError(where, "", "must be a JSON object")
    return doc


def _object(value: object, file: str, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KeyProviderError(file, name, "must be an object")
    return value


def _b64(value: object, file: str, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise KeyProviderError(file, name, "must be a non-empty base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyProviderError(file, name, "is not valid base64") from None


def _parameters(config: object, where: str) -> dict[str, list[bytes]]:
    if config is None:
        return {}
    params = _object(config, "input", where).get("Parameters")
    if params is None:
        return {}
    out: dict[str, list[bytes]] = {}
    for name, values in _object(params, "input", where + ".Parameters").items():
        if values is None:
            out[name] = []
            continue
        if not isinstance(values, list):
            raise KeyProviderError("input", f"{where}.Parameters.{name}", "must be an array of base64 strings")
        out[name] = [_b64(v, "input", f"{where}.Parameters.{name}") for v in values]
    return out


def _encode_params(parameters: dict[str, list[bytes]]) -> dict[str, list[str]]:
    return {name: [_e(v) for v in values] for name, values in parameters.items()}


def _e(data: bytes) -> str:
    return base64.b64encode(data).decode()
