"""Typed, located accessors for a parsed TOML table (manifest parsing helpers).

Each getter takes the table, the key and the dotted location of the table
and returns a checked Python value or raises one :class:`ManifestError`
naming the file and the full field (``wasm.preopened_dirs[1].guest``).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from .errors import ManifestError

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SIZE = re.compile(r"([0-9]{1,15})([KMGT]?)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Table:
    """One TOML table plus where it sits; tracks which keys were read."""

    def __init__(self, file: str, where: str, data: object) -> None:
        self.file = file
        self.where = where
        if not isinstance(data, dict):
            raise self.error("", f"must be a table, not {type_name(data)}")
        self.data: dict[str, Any] = data

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, reason: str) -> ManifestError:
        return ManifestError(self.file, self.at(key) if key else self.where or "(top level)", reason)

    def reject_unknown(self, known: tuple[str, ...]) -> None:
        # A misspelt key (``trusted_file``) silently ignored would drop a
        # security setting, so unknown keys are refused rather than kept.
        for key in self.data:
            if key not in known:
                raise self.error(key, "unknown key")

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, "is required")
        return check_string(self, key, value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {type_name(value)}")
        return value

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int:
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"must be an integer {low}..{high}")
        return value

    def optional_integer(self, key: str, low: int, high: int) -> int | None:
        return self.integer(key, low, high) if key in self.data else None

    def size(self, key: str, default: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, str):
            match = _SIZE.fullmatch(value)
            value = int(match[1]) * _UNITS[match[2]] if match else -1
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 64:
            raise self.error(key, 'must be a positive number of bytes or a size like "512M"')
        return value

    def array(self, key: str) -> list[Any]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.error(key, f"must be an array, not {type_name(value)}")
        return value

    def strings(self, key: str) -> list[str]:
        return [check_string(self, f"{key}[{i}]", v) for i, v in enumerate(self.array(key))]

    def sub(self, key: str) -> Table | None:
        return Table(self.file, self.at(key), self.data[key]) if key in self.data else None

    def sha256(self, key: str) -> bytes | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise self.error(key, "must be 64 hex digits (a SHA-256 digest)")
        return bytes.fromhex(value)


def check_string(table: Table, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise table.error(key, f"must be a string, not {type_name(value)}")
    if "\0" in value:
        raise table.error(key, "must not contain NUL")
    return value


def rootfs_path(table: Table, key: str, value: object) -> str:
    """An absolute path inside the rootfs, normalised (``//a/./b`` -> ``/a/b``).

    ``..`` is refused rather than resolved: it would let two spellings name
    one file, and the measurement must see one spelling per file.
    """
    text = check_string(table, key, value)
    if not text.startswith("/"):
        raise table.error(key, f"{text!r} must be an absolute path")
    parts = [p for p in text.split("/") if p and p != "."]
    if ".." in parts:
        raise table.error(key, f"{text!r} must not contain '..'")
    return "/" + "/".join(parts)


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime.date | datetime.time):
        return "a date/time"
    return type(value).__name__
