"""``enclave.runtime.args`` of the built-in runtimes: ``key=value`` options.

The annotation ``enclave.runtime.args=manifest=/app/hello.manifest.toml,memory=16M``
reaches ``init`` as ``"manifest=/app/hello.manifest.toml memory=16M"``
(commas become spaces, :func:`~inclavare.enclave.interface.split_args`).

=================  =======  ===========================================================
option             runtime  meaning
=================  =======  ===========================================================
manifest=PATH      both     the signed enclave manifest in the rootfs (required)
sig=PATH           both     its signature file (default ``<manifest>.sig``)
signer=HEX         both     expected MRSIGNER (64 hex digits); other signers are refused
memory=SIZE        both     lower the manifest's memory limit: bytes (``16M``, ``65536``)
                            or, for wasm, 64 KiB pages (``256p``)
fuel=N             wasm     lower (or set) the fuel budget
timeout=SECONDS    wasm     lower (or set) the wall-clock deadline (epoch interruption)
preopen=PATH[:ro]  wasm     also preopen a rootfs directory (repeatable; ``:rw`` to write)
cache=on|off       wasm     the compiled-module cache (default on)
=================  =======  ===========================================================

The manifest is measured and signed; these options are not. So they may only
*tighten* what the manifest allows (a larger memory, fuel or time is refused),
except ``preopen``, which is the host's decision as a mount is, and is logged.
"""

from __future__ import annotations

import os

from ...errors import one_line
from ..errors import EnclaveConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~1.5 ms of rune create, which reads these options for the warm pool
    from typing import TypeVar

    _N = TypeVar("_N", int, float)

PAGE = 64 << 10  # WebAssembly page (core spec §2.5.9 "Memory Types")
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_REPEATABLE = frozenset({"preopen"})
_FLAGS = {"on": True, "off": False}


def option_error(word: str, reason: str) -> EnclaveConfigError:
    """``enclave.runtime.args: memory=abc: must be a positive size ...``"""
    return EnclaveConfigError("enclave.runtime.args", one_line(f"{word}: {reason}"))


class Options:
    """The parsed options; ``None`` means "not given"."""

    __slots__ = ("cache", "fuel", "manifest", "memory", "preopens", "sig", "signer", "timeout")

    def __init__(self) -> None:
        self.manifest = ""
        self.sig = ""
        self.signer: bytes | None = None
        self.memory: int | None = None  # bytes
        self.fuel: int | None = None
        self.timeout: float | None = None  # seconds
        self.preopens: list[tuple[str, bool]] = []  # (rootfs path, read_only)
        self.cache = True


def parse(words: list[str], allowed: frozenset[str]) -> Options:
    """Options from the split argument words; `allowed` names the runtime's keys."""
    opts = Options()
    seen: set[str] = set()
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or key not in allowed:
            known = ", ".join(f"{k}=" for k in sorted(allowed))
            raise option_error(word, f"unknown option (known: {known})")
        if key in seen and key not in _REPEATABLE:
            raise option_error(word, f"{key}= is given twice")
        seen.add(key)
        _apply(opts, key, value, word)
    if not opts.manifest:
        raise option_error("manifest=", "is required: the enclave manifest in the rootfs, e.g. manifest=/app/app.toml")
    if not opts.sig:
        opts.sig = opts.manifest + ".sig"
    return opts


def _apply(opts: Options, key: str, value: str, word: str) -> None:
    if key in ("manifest", "sig"):
        setattr(opts, key, _path(value, word))
    elif key == "signer":
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise option_error(word, "must be 64 hex digits (SHA-256 of the signer's public key)")
        opts.signer = raw
    elif key == "memory":
        opts.memory = _size(value, word)
    elif key == "fuel":
        opts.fuel = _positive_int(value, word)
    elif key == "timeout":
        opts.timeout = _seconds(value, word)
    elif key == "preopen":
        path, _, mode = value.partition(":")
        if mode not in ("", "ro", "rw"):
            raise option_error(word, 'the mode after ":" must be ro or rw')
        opts.preopens.append((_path(path, word), mode != "rw"))
    elif key == "cache":
        if value not in _FLAGS:
            raise option_error(word, "must be on or off")
        opts.cache = _FLAGS[value]


def _path(value: str, word: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise option_error(word, "must be an absolute path in the container's rootfs")
    parts = value.split("/")
    if ".." in parts:
        raise option_error(word, '".." is not allowed')
    return os.path.normpath(value).replace("//", "/")


def _size(value: str, word: str) -> int:
    """Bytes: ``65536``, ``64K``, ``16M``; or 64 KiB wasm pages: ``256p``."""
    unit = 1
    digits = value
    if value[-1:] == "p":
        unit, digits = PAGE, value[:-1]
    elif value[-1:].upper() in _UNITS:
        unit, digits = _UNITS[value[-1:].upper()], value[:-1]
    if not digits.isdigit() or not digits.isascii() or int(digits) == 0:
        raise option_error(word, "must be a positive size: bytes (65536, 64K, 16M, 1G) or wasm pages (256p)")
    return int(digits) * unit


def _positive_int(value: str, word: str) -> int:
    if not value.isdigit() or not value.isascii() or not 0 < int(value) < 1 << 63:
        raise option_error(word, "must be a positive integer")
    return int(value)


def _seconds(value: str, word: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e9:  # also refuses nan and inf
        raise option_error(word, "must be a positive number of seconds")
    return seconds


def tighten(word: str, given: _N | None, measured: _N | None, unit: str = "") -> _N | None:
    """The limit in force: the measured one, lowered by `given`; raising it is refused."""
    if given is None:
        return measured
    if measured is not None and given > measured:
        raise option_error(
            word, f"{given}{unit} exceeds the manifest's signed limit of {measured}{unit}; options can only lower it"
        )
    return given
