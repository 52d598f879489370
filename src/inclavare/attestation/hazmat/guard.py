"""Foreign exceptions stop here: a parser of hostile bytes raises only the project's errors.

The libraries under the parsers report malformed input in many ways.
`cryptography` raises ``ValueError`` for most bad DER, but also
``InvalidVersion`` and ``DuplicateExtension`` (plain ``Exception``
subclasses in ``cryptography.x509``), ``UnsupportedAlgorithm``,
``InvalidSignature``, ``InvalidKey``... (``cryptography.exceptions``), and its
Rust layer turns a panic into ``pyo3_runtime.PanicException``, which derives
from ``BaseException``, not ``Exception``. `cbor2` raises the
``CBORDecodeError`` family, ``json`` ``ValueError`` or ``RecursionError``, our
own slicing ``IndexError``, ``KeyError``, ``struct.error`` or
``OverflowError``, and formatting a huge integer ``ValueError``.

:func:`contained` wraps one parsing step and turns every one of those into
the caller's :class:`~inclavare.errors.AttestationError` subclass, with the
location (``what``: which evidence, field or certificate) and the library's
reason on one line. The original stays in ``__cause__`` for ``--debug``.

A panic is contained too, as a refusal of the input that caused it: pyo3
catches the unwinding Rust panic at the FFI boundary, so the interpreter
and the library are intact, and a peer must not be able to turn a
malformed certificate into a crashed request (a traceback, an HTTP 500, an
un-audited attempt). ``KeyboardInterrupt``, ``SystemExit`` and the like
still propagate.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

import cbor2
from cryptography import exceptions as cx

from ..errors import AttestationError, EvidenceFormatError

_P = ParamSpec("_P")
_R = TypeVar("_R")

_FOREIGN_BASE: tuple[type[Exception], ...] = (
    ValueError,  # also UnicodeError, binascii.Error, json.JSONDecodeError, tomllib.TOMLDecodeError
    TypeError,
    ArithmeticError,  # OverflowError, ZeroDivisionError, decimal.DecimalException
    LookupError,  # IndexError, KeyError
    struct.error,
    RecursionError,
    EOFError,
    cbor2.CBORError,
    cx.InvalidSignature,
    cx.UnsupportedAlgorithm,
    cx.InvalidKey,
    cx.InvalidTag,
    cx.InternalError,
    cx.AlreadyFinalized,
    cx.AlreadyUpdated,
    cx.NotYetFinalized,
)


@functools.cache
def foreign() -> tuple[type[Exception], ...]:
    """Every exception type a library raises for malformed input.

    ``cryptography.x509`` is imported here, on first use, not at module
    import: software enclaves load the COSE code without any X.509 (see
    :mod:`inclavare.attestation`).
    """
    from cryptography import x509

    return (
        *_FOREIGN_BASE,
        x509.InvalidVersion,
        x509.DuplicateExtension,
        x509.ExtensionNotFound,
        x509.AttributeNotFound,
        x509.UnsupportedGeneralNameType,
    )


def is_panic(exc: BaseException) -> bool:
    """Is ``exc`` a Rust panic surfaced by pyo3 (``pyo3_runtime.PanicException``)?

    The class is not importable by name; it is recognised by its module and
    name, as pyo3 creates it.
    """
    cls = type(exc)
    return cls.__name__ == "PanicException" and cls.__module__ == "pyo3_runtime"


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 120 characters), for one-line errors."""
    text = str(exc).splitlines()[0][:120] if str(exc).strip() else ""
    name = "panic in cryptography's Rust layer" if is_panic(exc) else type(exc).__name__
    return f"{name}: {text}" if text else name


class contained:  # lower case: used like contextlib.suppress, ``with contained(what):``
    """Run a parsing step; a foreign exception (or a panic) becomes ``error``.

    The message is ``<what>: <reason> (<Type>: <library message>)``, or
    without ``reason`` ``<what>: <Type>: <library message>``. ``error`` takes
    one message argument (EvidenceFormatError, CollateralError, ...). A
    class rather than a generator: parsers enter it on every verification.
    """

    __slots__ = ("error", "reason", "what")

    def __init__(self, what: str, error: type[AttestationError] = EvidenceFormatError, reason: str = "") -> None:
        self.what = what
        self.error = error
        self.reason = reason

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None or isinstance(exc, AttestationError):
            return
        if not isinstance(exc, foreign()) and not is_panic(exc):
            return  # KeyboardInterrupt, SystemExit, a bug outside the foreign range: unchanged
        where = f"{self.what}: {self.reason} ({describe(exc)})" if self.reason else f"{self.what}: {describe(exc)}"
        raise self.error(where) from exc


def guarded(
    what: str, error: type[AttestationError] = EvidenceFormatError
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a parser's entry point with :func:`contained` (its own errors pass unchanged)."""

    def decorate(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with contained(what, error):
                return fn(*args, **kwargs)

        return run

    return decorate


def attempt(step: Callable[[], _R]) -> _R | None:
    """``step()``, or None if it raised a foreign exception or panicked.

    For checks where failing to compute means "no": a malformed key or
    signature that makes the library raise something unexpected is a
    signature that does not verify, a point that is not on the curve.
    """
    try:
        return step()
    except BaseException as exc:
        if isinstance(exc, foreign()) or is_panic(exc):
            return None
        raise


def holds(check: Callable[[], bool]) -> bool:
    """A yes/no check that may raise: its answer, or False (see :func:`attempt`)."""
    return attempt(check) is True


def succeeds(step: Callable[[], object]) -> bool:
    """A check that signals failure by raising (``key.verify(...)``): did it return? (see :func:`attempt`)"""

    def run() -> bool:
        step()
        return True

    return holds(run)
