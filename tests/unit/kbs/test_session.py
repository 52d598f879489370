"""The session state machine: AUTHED -> ATTESTED | FAILED, one attempt per nonce, expiry by the injected clock."""

from __future__ import annotations

import base64
import hashlib
import itertools

import pytest

from inclavare.kbs.errors import AttestationFailed, TokenNotFound
from inclavare.kbs.protocol.messages import Attestation, Request
from inclavare.kbs.protocol.session import (
    TRANSITIONS,
    InvalidSessionTransition,
    SessionState,
    attested,
    awaiting_attestation,
    check_nonce,
    open_session,
    session_key,
)

REQUEST = Request("0.4.0", "software", {})


def counting_rng():
    counter = itertools.count()
    return lambda n: bytes([next(counter) % 256]) * n


def test_open_session():
    cookie, session, challenge = open_session(REQUEST, "sha512", now=100.0, timeout=300.0, rng=counting_rng())
    assert base64.b64decode(challenge.nonce) == bytes(32)  # 32 random bytes, standard base64 (trustee)
    assert challenge.extra_params == {"selected-hash-algorithm": "sha512"}
    assert session.key == session_key(cookie) == hashlib.sha256(cookie.encode()).hexdigest()
    assert cookie not in repr(session)  # only the hash is kept
    assert (session.state, session.tee, session.nonce, session.expires_at) == (
        SessionState.AUTHED,
        "software",
        challenge.nonce,
        400.0,
    )


def test_transition_table():
    _, session, _ = open_session(REQUEST, "sha384", now=0, timeout=10, rng=counting_rng())
    for frm, to in itertools.product(SessionState, SessionState):
        s = session if frm is SessionState.AUTHED else session.transition(frm)
        if to in TRANSITIONS[frm]:
            assert s.transition(to).state is to
        else:
            with pytest.raises(InvalidSessionTransition):
                s.transition(to)


def test_expiry_is_by_the_clock():
    _, session, _ = open_session(REQUEST, "sha384", now=0, timeout=10, rng=counting_rng())
    assert awaiting_attestation(session, 9.999) is session
    with pytest.raises(TokenNotFound, match="expired"):
        awaiting_attestation(session, 10.0)
    done = session.transition(SessionState.ATTESTED, claims={}, tee_pubkey={})
    assert attested(done, 9.0) is done
    with pytest.raises(TokenNotFound, match="expired"):
        attested(done, 10.0)


def test_one_attempt_per_nonce():
    _, session, _ = open_session(REQUEST, "sha384", now=0, timeout=10, rng=counting_rng())
    for state in (SessionState.ATTESTED, SessionState.FAILED):
        with pytest.raises(AttestationFailed, match="nonce already used"):
            awaiting_attestation(session.transition(state), 1.0)
    with pytest.raises(TokenNotFound, match="unknown"):
        awaiting_attestation(None, 1.0)


def test_only_attested_sessions_fetch():
    _, session, _ = open_session(REQUEST, "sha384", now=0, timeout=10, rng=counting_rng())
    for s in (None, session, session.transition(SessionState.FAILED)):
        with pytest.raises(TokenNotFound):
            attested(s, 1.0)


def test_nonce_must_match():
    _, session, challenge = open_session(REQUEST, "sha384", now=0, timeout=10, rng=counting_rng())
    check_nonce(session, Attestation(challenge.nonce, {}, ""))
    with pytest.raises(AttestationFailed, match="replayed or forged"):
        check_nonce(session, Attestation("b3RoZXI=", {}, ""))
