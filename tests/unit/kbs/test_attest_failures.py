"""Every failed /attest is a refusal: audited, the nonce burnt, 401 "attestation failed" — whatever failed.

Corrupted certificates inside genuine SGX/TDX quotes and Nitro documents
made `cryptography` raise exceptions the broker did not map (a 500, twice
on the same session, with nothing audited); a deeply nested TEE key made
the canonical-JSON writer recurse out of the stack. An unexpected exception
from a verifier, or a panic in cryptography's Rust layer, must end the same
way as a signature that does not verify.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cbor2
import pytest

from inclavare import attestation
from inclavare.attestation.hazmat.guard import is_panic
from inclavare.kbs.errors import AttestationFailed
from inclavare.kbs.jwe import TeeKey, b64url
from inclavare.kbs.protocol.session import SessionState, session_key
from inclavare.kbs.service import rcar

from .helpers import Broker

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
QUOTES = {"sgx": "sgx/dcap-qvl/sgx_quote.bin", "tdx": "tdx/dcap-qvl/tdx_quote.bin"}
NITRO = "nitro/evervault/valid-attestation-doc.bin"


def bad_version(der: bytes) -> bytes:
    """X.509 version v3 -> 3 (cryptography: x509.InvalidVersion, not a ValueError)."""
    at = der.index(b"\xa0\x03\x02\x01\x02") + 4
    return der[:at] + b"\x03" + der[at + 1 :]


def corrupted_quote(tee: str) -> bytes:
    """The genuine quote with its PCK leaf certificate's version byte changed (same length, PEM re-encoded)."""
    quote = (VECTORS / QUOTES[tee]).read_bytes()
    match = re.search(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END", quote)
    assert match is not None
    body = match.group(1)
    encoded = iter(base64.b64encode(bad_version(base64.b64decode(re.sub(rb"\s", b"", body)))))
    changed = bytes(ch if chr(ch).isspace() else next(encoded) for ch in body)
    return quote[: match.start(1)] + changed + quote[match.end(1) :]


def corrupted_nitro() -> bytes:
    cose = cbor2.loads((VECTORS / NITRO).read_bytes())
    payload = cbor2.loads(cose[2])
    payload["certificate"] = bad_version(payload["certificate"])
    cose[2] = cbor2.dumps(payload)
    return cbor2.dumps(cose)


def state(broker: Broker, cookie: str) -> SessionState:
    session = broker.service.deps.storage.get_session(session_key(cookie))
    assert session is not None
    return session.state


def failed_attests(broker: Broker) -> list[str]:
    return [
        r.detail or "" for r in broker.service.deps.storage.audit_log() if r.event == "attest" and r.outcome == "failed"
    ]


def refused(broker: Broker, body: dict[str, object], cookie: str) -> AttestationFailed:
    with pytest.raises(AttestationFailed) as info:
        broker.service.rcar.attest(json.dumps(body).encode(), cookie, "t")
    assert info.value.public_detail == f"attestation failed: {info.value.category}"
    assert info.value.status == 401
    return info.value


def corrupted(tee: str) -> bytes:
    return corrupted_nitro() if tee == "nitro" else corrupted_quote(tee)


@pytest.mark.parametrize("tee", ["sgx", "tdx", "nitro"])
def test_a_corrupted_certificate_is_refused_audited_and_burns_the_nonce(broker: Broker, tee: str) -> None:
    cookie, hs, _ = broker.auth(tee)
    error = refused(broker, hs.attestation(corrupted(tee)), cookie)
    assert "not a valid X.509 certificate (InvalidVersion" in str(error)
    assert state(broker, cookie) is SessionState.FAILED
    # The same challenge cannot be used to try another variant of the evidence.
    error = refused(broker, hs.attestation(corrupted(tee)), cookie)
    assert "nonce already used" in str(error)
    details = failed_attests(broker)
    assert len(details) == 2
    assert "InvalidVersion" in details[0]
    assert broker.service.deps.metrics.attestation_failures.labels(tee)._value.get() == 2


def _panic_class() -> type[BaseException]:
    """pyo3's PanicException (a BaseException), as cryptography's Rust layer raises it."""
    import cryptography.hazmat.bindings._rust  # noqa: F401 - makes pyo3 create the class

    found = [
        c for c in BaseException.__subclasses__() if (c.__module__, c.__name__) == ("pyo3_runtime", "PanicException")
    ]
    assert found, "pyo3_runtime.PanicException is not loaded"
    assert is_panic(found[0]("probe"))
    return found[0]


@pytest.mark.parametrize("raised", ["panic", "type-error"])
def test_an_unexpected_exception_while_appraising_is_a_refusal(broker: Broker, monkeypatch, raised: str) -> None:
    broker.setup_release()
    cookie, hs, report_data = broker.auth()
    exc: BaseException = _panic_class()("rust panicked") if raised == "panic" else TypeError("a verifier bug")

    def fails(*args: object, **kwargs: object) -> object:
        raise exc

    monkeypatch.setattr(rcar.attestation, "verify", fails)
    error = refused(broker, hs.attestation(broker.attester.collect_evidence(report_data).data), cookie)
    assert "internal error while appraising the attestation" in str(error)
    assert state(broker, cookie) is SessionState.FAILED
    assert len(failed_attests(broker)) == 1


def test_a_panic_while_parsing_is_a_refusal_that_burns_the_session(broker: Broker, monkeypatch) -> None:
    broker.setup_release()
    cookie, hs, report_data = broker.auth()
    body = json.dumps(hs.attestation(broker.attester.collect_evidence(report_data).data)).encode()
    panic = _panic_class()

    def fails(*args: object, **kwargs: object) -> object:
        raise panic("rust panicked")

    with monkeypatch.context() as m:
        m.setattr(rcar, "public_key_from_jwk", fails)
        with pytest.raises(AttestationFailed, match="attestation body: attestation: malformed request"):
            broker.service.rcar.attest(body, cookie, "t")
    assert state(broker, cookie) is SessionState.FAILED
    with pytest.raises(AttestationFailed, match="nonce already used"):
        broker.service.rcar.attest(body, cookie, "t")


def test_a_deeply_nested_tee_key_is_refused_not_a_recursion_error(broker: Broker) -> None:
    """json.loads follows 1000 levels; canonicalising them for the binding recursed out of the stack."""
    key = TeeKey.generate().public_jwk()
    nested: object = "x"
    for _ in range(900):
        nested = [nested]
    cookie, hs, report_data = broker.auth(key=TeeKey.generate())
    hs.tee_pubkey = {**key, "x5c": nested}
    body = hs.attestation(broker.attester.collect_evidence(report_data).data)
    error = refused(broker, body, cookie)
    assert "nested too deeply" in str(error)
    assert state(broker, cookie) is SessionState.FAILED


def test_an_rsa_key_with_an_even_modulus_is_malformed(broker: Broker) -> None:
    """It loads, but nothing can be encrypted to it: the release would fail after a good attestation."""
    good = TeeKey.generate("RSA").public_jwk()
    cookie, hs, _ = broker.auth(key=TeeKey.generate())
    hs.tee_pubkey = {**good, "n": b64url(((1 << 3071) | 2).to_bytes(384))}
    with pytest.raises(AttestationFailed, match="odd modulus"):
        broker.service.rcar.attest(json.dumps(hs.attestation(b"x")).encode(), cookie, "t")
    assert state(broker, cookie) is SessionState.FAILED


def test_the_attestation_api_stays_what_rcar_calls() -> None:
    """The fault injection above patches the name rcar uses; make sure it is the real recipe."""
    assert rcar.attestation.verify is attestation.verify


def test_a_panic_in_any_other_call_is_a_500_problem_not_a_dropped_connection(broker: Broker, monkeypatch) -> None:
    """Starlette's error middleware catches Exception; PanicException is a BaseException."""
    import asyncio

    import httpx

    from inclavare.kbs.server.app import create_app

    panic = _panic_class()

    def fails(*args: object, **kwargs: object) -> object:
        raise panic("rust panicked")

    monkeypatch.setattr(broker.service.resources, "get", fails)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(broker.service), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kbs") as client:
            return await client.get("/kbs/v0/resource/default/key/db")

    response = asyncio.run(get())
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "internal error"
