"""hazmat.guard: the whole range of library exceptions is contained, Rust panics included; nothing else is.

pyo3's PanicException derives from BaseException. No input we know makes
cryptography 51 panic, so the real class (pyo3 creates it when
cryptography's Rust module loads) is raised from the library call a parser
makes, and the parser must still end in one located AttestationError.
"""

from __future__ import annotations

import cbor2
import cryptography.exceptions
import pytest
from cryptography import x509

from inclavare.attestation import AttestationError, CollateralStore, EvidenceFormatError, Policy, verify
from inclavare.attestation.hazmat import certs
from inclavare.attestation.hazmat.guard import contained, foreign, holds, is_panic, succeeds

from .vectors import BY_ID, at, cli_args, evidence, run_cli


def panic_class() -> type[BaseException]:
    import cryptography.hazmat.bindings._rust  # noqa: F401 - pyo3 creates the class with the module

    found = [
        c for c in BaseException.__subclasses__() if (c.__module__, c.__name__) == ("pyo3_runtime", "PanicException")
    ]
    assert found  # one per pyo3 extension module loaded; all alike
    assert not issubclass(found[0], Exception)
    return found[0]


def test_every_exception_cryptography_and_cbor2_define_is_foreign() -> None:
    """A cryptography upgrade that adds an exception type fails here, not in production."""
    for module in (cryptography.exceptions, x509, cbor2):
        for name in dir(module):
            obj = getattr(module, name)
            ours = isinstance(obj, type) and obj.__module__.startswith(("cryptography", "cbor2"))
            if ours and issubclass(obj, Exception):
                assert issubclass(obj, foreign()), f"{module.__name__}.{name}"
    for builtin in (ValueError, TypeError, OverflowError, IndexError, KeyError, UnicodeDecodeError, RecursionError):
        assert issubclass(builtin, foreign())


def test_contained_maps_foreign_exceptions_and_panics_but_not_interrupts() -> None:
    panic = panic_class()
    for exc in (x509.DuplicateExtension("dup", x509.OID_KEY_USAGE), panic("boom"), struct_error(), RecursionError()):
        with pytest.raises(EvidenceFormatError, match=r"^quote: field: ") as info, contained("quote: field"):
            raise exc
        assert info.value.__cause__ is exc
        assert "\n" not in str(info.value)
    for exc in (KeyboardInterrupt(), SystemExit(1), AttributeError("a bug")):
        with pytest.raises(type(exc)), contained("quote"):
            raise exc
    assert is_panic(panic("x"))
    assert not is_panic(RuntimeError("PanicException"))


def struct_error() -> Exception:
    import struct

    try:
        struct.unpack("<I", b"")
    except struct.error as exc:
        return exc
    raise AssertionError


def test_signature_checks_that_panic_do_not_verify() -> None:
    panic = panic_class()

    def raises(exc: BaseException):  # type: ignore[no-untyped-def]
        def step() -> bool:
            raise exc

        return step

    assert not holds(raises(panic("boom")))
    assert not succeeds(raises(cryptography.exceptions.InvalidKey()))
    with pytest.raises(KeyboardInterrupt):
        holds(raises(KeyboardInterrupt()))


@pytest.fixture
def panicking_loader(monkeypatch):  # type: ignore[no-untyped-def]
    """cryptography's DER certificate loader panics (the Rust layer's failure mode)."""
    panic = panic_class()

    def load(data: bytes) -> x509.Certificate:
        raise panic("called `Option::unwrap()` on a `None` value")

    certs._load_one.cache_clear()  # genuine certificates loaded by earlier tests must be parsed again
    monkeypatch.setattr(certs.x509, "load_der_x509_certificate", load)
    yield
    certs._load_one.cache_clear()


def test_a_panic_while_loading_a_nitro_certificate_is_a_located_refusal(panicking_loader) -> None:  # type: ignore[no-untyped-def]
    s = BY_ID["nitro-evervault-ga"]
    with pytest.raises(EvidenceFormatError) as info:
        verify(evidence(s), at=at(s), collateral=CollateralStore(), policy=Policy.genuine_only())
    assert str(info.value).startswith(
        "nitro document: cabundle[0]: not a valid X.509 certificate (panic in cryptography's Rust layer: "
    )
    rc, out, err = run_cli(*cli_args(s))
    assert (rc, out) == (1, "")
    assert err.count("\n") == 1
    assert "panic in cryptography's Rust layer" in err


def test_a_panic_is_never_swallowed_as_success(panicking_loader) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AttestationError):
        CollateralStore().add_bytes(b"\x30\x03\x02\x01\x00", "collateral.der")
