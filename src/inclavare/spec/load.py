"""config.json -> :class:`~inclavare.spec.model.Spec`, with located errors.

Every problem becomes one :class:`~inclavare.errors.SpecError` naming the file,
the dotted field (``linux.namespaces[2].type``) and the reason. Unknown
members are kept in ``Spec.raw`` and otherwise ignored, as the runtime spec
requires of runtimes ("MUST NOT generate an error if it encounters an
unknown property").
"""

from __future__ import annotations

import os

from .. import _fastjson
from ..errors import SpecError
from .model import Model, Spec, _attr

_MAX_CONFIG = 16 << 20  # a config.json larger than 16 MiB is refused, not parsed


def load_bundle(bundle: str) -> Spec:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_CONFIG + 1)
    except FileNotFoundError:
        raise SpecError("", "no such file (is --bundle right?)", path) from None
    except OSError as exc:
        raise SpecError("", exc.strerror or str(exc), path) from None
    if len(raw) > _MAX_CONFIG:
        raise SpecError("", "larger than 16 MiB", path)
    return parse_spec(raw, path)


def parse_spec(raw: str | bytes, file: str = "config.json") -> Spec:
    try:
        doc = _fastjson.loads(raw)
    except _fastjson.JSONError as exc:
        raise SpecError("", f"malformed JSON: {exc}", file) from None
    spec = build(Spec, doc, "", file)
    assert isinstance(spec, Spec)
    assert isinstance(doc, dict)  # build refused anything but an object
    spec.raw = doc
    return spec


def build(kind: object, value: object, where: str, file: str) -> object:
    """Check `value` against `kind` and build the model object it describes."""
    if kind == "any":
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise SpecError(where, f"must be a string, not {_json_type(value)}", file)
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise SpecError(where, f"must be an integer, not {_json_type(value)}", file)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(where, f"must be a boolean, not {_json_type(value)}", file)
        return value
    if isinstance(kind, tuple):
        return _build_container(kind, value, where, file)
    assert isinstance(kind, type)
    assert issubclass(kind, Model)
    return _build_model(kind, value, where, file)


def _build_container(kind: tuple[str, object], value: object, where: str, file: str) -> object:
    shape, item = kind
    if shape == "list":
        if not isinstance(value, list):
            raise SpecError(where, f"must be an array, not {_json_type(value)}", file)
        return [build(item, v, f"{where}[{i}]", file) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise SpecError(where, f"must be an object, not {_json_type(value)}", file)
    return {k: build(item, v, f"{where}.{k}", file) for k, v in value.items()}


def _build_model(cls: type[Model], value: object, where: str, file: str) -> Model:
    if not isinstance(value, dict):
        raise SpecError(where or "(top level)", f"must be an object, not {_json_type(value)}", file)
    obj = cls()
    for name, kind, required in cls.FIELDS:
        field = f"{where}.{name}" if where else name
        member = value.get(name)
        if member is None:
            if required:
                raise SpecError(field, "is required", file)
            continue
        setattr(obj, _attr(name), build(kind, member, field, file))
    return obj


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
