"""Hypothesis fuzzing of what peers send the broker: only KbsError escapes, and a refusal burns the nonce.

Request bodies (JSON that is malformed, deep, of the wrong shapes; genuine
bodies with edited members), TEE keys (JWK), compact JWS/JWT tokens for
resources and the admin API, admin request bodies, and whole /attest calls
through the service: nothing but the project's errors may escape (a
ValueError, RecursionError or a pyo3 PanicException would be an HTTP 500),
and every AttestationFailed on an AUTHED session leaves it FAILED.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inclavare.kbs import jws
from inclavare.kbs.errors import AttestationFailed, KbsError
from inclavare.kbs.jwe import TeeKey, b64url, encrypt, public_key_from_jwk
from inclavare.kbs.protocol import messages
from inclavare.kbs.protocol.session import SessionState, session_key

from .helpers import OPS, Broker, make_broker

N = int(os.environ.get("INCLAVARE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=N,
    deadline=None,
    derandomize="INCLAVARE_FUZZ_RANDOM" not in os.environ,
    suppress_health_check=list(HealthCheck),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
deep = st.integers(1, 1500).map(lambda d: ("[" * d + "]" * d).encode())


def nest(depth: int) -> object:
    """``depth`` nested arrays (hypothesis raises the recursion limit while it runs a test, so the
    depths that matter here are larger than the 1000 of a plain interpreter)."""
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


bodies = st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()), deep)


def only_kbs_errors(fn) -> KbsError | None:  # type: ignore[no-untyped-def]
    """Run ``fn``: a KbsError is returned; any other exception escapes and fails the test."""
    try:
        fn()
    except KbsError as exc:
        return exc
    return None


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Broker:
    b = make_broker(str(tmp_path_factory.mktemp("kbs-fuzz")))
    b.setup_release()
    yield b
    b.service.close()


@FUZZ
@given(bodies)
def test_request_and_attestation_bodies(body: bytes) -> None:
    def request() -> None:
        messages.check_version(messages.Request.parse(messages.parse_json(body, "request")).version)

    def attestation() -> None:
        att = messages.Attestation.parse(messages.parse_json(body, "attestation"))
        public_key_from_jwk(att.tee_pubkey)
        att.evidence_bytes()

    only_kbs_errors(request)
    only_kbs_errors(attestation)


GOOD_EC = TeeKey.generate().public_jwk()
GOOD_RSA = TeeKey.generate("RSA").public_jwk()


moduli = st.integers(2**2047, 2**3072 - 1).map(lambda n: b64url(n.to_bytes((n.bit_length() + 7) // 8)))


@FUZZ
@given(
    st.sampled_from([GOOD_EC, GOOD_RSA]),
    st.dictionaries(
        st.sampled_from(["kty", "alg", "crv", "x", "y", "n", "e"]), st.one_of(json_values, moduli), max_size=3
    ),
)
def test_tee_keys(good: dict[str, str], changes: dict[str, object]) -> None:
    """A TEE key is refused (400) or usable: the broker must be able to encrypt a release to it."""
    jwk = {**good, **changes}
    if only_kbs_errors(lambda: public_key_from_jwk(jwk)) is None:
        encrypt(jwk, b"resource")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


tokens = st.one_of(
    st.text(max_size=200),
    st.tuples(bodies, bodies, st.binary(max_size=80)).map(lambda t: ".".join(_b64(p) for p in t)),
)


@FUZZ
@given(tokens)
def test_tokens_for_resources_and_the_admin_api(broker: Broker, token: str) -> None:
    def jws_parts() -> None:
        try:
            jws.verify(token, broker.service.deps.tokens.key.key.public_key())
        except jws.JwsError:
            pass  # the module's own error, turned into TokenInvalid by the token layer

    only_kbs_errors(jws_parts)
    only_kbs_errors(lambda: broker.service.deps.tokens.verify(token, broker.clock.now))
    only_kbs_errors(lambda: broker.service.admin.authenticate(f"Bearer {token}"))
    only_kbs_errors(lambda: broker.get(token=token))


@FUZZ
@given(bodies, st.sampled_from(["attestation", "resource", "reference", "expire"]))
def test_admin_bodies(broker: Broker, body: bytes, kind: str) -> None:
    a = broker.service.admin
    call = {
        "attestation": lambda: a.set_attestation_policy(OPS, body, "fuzz"),
        "resource": lambda: a.set_resource_policy(OPS, body, "fuzz"),
        "reference": lambda: a.add_reference_values(OPS, body, "fuzz"),
        "expire": lambda: a.expire_reference_values(OPS, "software.measurement", body, "fuzz"),
    }[kind]
    only_kbs_errors(call)


@FUZZ
@given(
    st.one_of(
        bodies.map(lambda b: ("raw", b)),
        st.tuples(st.sampled_from(["runtime-data", "tee-evidence", "init-data"]), json_values).map(
            lambda t: ("member", t)
        ),
        st.tuples(st.sampled_from(["nonce", "tee-pubkey"]), json_values).map(lambda t: ("runtime", t)),
        st.tuples(st.sampled_from(["primary_evidence", "additional_evidence"]), json_values).map(
            lambda t: ("evidence", t)
        ),
        st.binary(max_size=600).map(lambda b: ("bytes", b)),
        st.sampled_from([1, 500, 990, 1500, 1900]).map(lambda d: ("deep-key", d)),
    )
)
def test_whole_attest_calls(broker: Broker, case: tuple[str, object]) -> None:
    """Any /attest body: only KbsError, and an AttestationFailed spends the session's nonce."""
    cookie, hs, report_data = broker.auth()
    doc = hs.attestation(broker.attester.collect_evidence(report_data).data)
    how, change = case
    if how == "raw":
        body = change
    else:
        if how == "member":
            doc[change[0]] = change[1]
        elif how == "runtime":
            doc["runtime-data"][change[0]] = change[1]
        elif how == "evidence":
            doc["tee-evidence"][change[0]] = change[1]
        elif how == "deep-key":
            doc["runtime-data"]["tee-pubkey"] = {**doc["runtime-data"]["tee-pubkey"], "x5c": nest(change)}
        else:
            doc["tee-evidence"]["primary_evidence"] = {"evidence": base64.b64encode(change).decode()}
        body = json.dumps(doc).encode()
    assert isinstance(body, bytes)
    error = only_kbs_errors(lambda: broker.service.rcar.attest(body, cookie, "fuzz"))
    session = broker.service.deps.storage.get_session(session_key(cookie))
    assert session is not None
    if isinstance(error, AttestationFailed):
        assert error.public_detail == f"attestation failed: {error.category}"
        assert session.state is SessionState.FAILED
    elif error is None:
        assert session.state is SessionState.ATTESTED
    else:
        assert error.status == 400
        assert session.state is SessionState.AUTHED
