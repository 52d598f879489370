"""The RCAR session: a small state machine with an expiry, free of I/O.

Trustee models the handshake as ``SessionStatus::{Authed, Attested}`` with a
timeout (kbs/src/attestation/session.rs). We add one terminal state::

    (none) --/auth--> AUTHED --/attest ok--> ATTESTED
                        |
                        +--/attest refused--> FAILED

Every nonce is good for exactly one attestation attempt: a second
``/attest`` on the same session — a replay, or a retry after a refusal — is
refused, so a peer cannot probe evidence variations against one challenge.
(Trustee returns the stored token again for an attested session.) A session
past ``expires_at`` is dead in every state; the clock is an argument.

The cookie value is a bearer secret, so the broker stores and logs only
``session_key(cookie)`` (SHA-256, hex); a database dump does not hand out
sessions.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from ..errors import AttestationFailed, TokenNotFound
from .messages import Attestation, Challenge, Request

COOKIE_NAME = "kbs-session-id"  # trustee kbs/src/attestation/session.rs KBS_SESSION_ID
NONCE_BYTES = 32  # trustee backend.rs NONCE_SIZE_BYTES
COOKIE_BYTES = 32


class SessionState(StrEnum):
    AUTHED = "authed"
    ATTESTED = "attested"
    FAILED = "failed"


TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.AUTHED: frozenset({SessionState.ATTESTED, SessionState.FAILED}),
    SessionState.ATTESTED: frozenset(),
    SessionState.FAILED: frozenset(),
}


class InvalidSessionTransition(AttestationFailed):
    def __init__(self, frm: SessionState, to: SessionState) -> None:
        self.frm = frm
        self.to = to
        super().__init__(f"session: cannot go from {frm.value} to {to.value} (nonce already used)", "challenge spent")


@dataclass(frozen=True)
class Session:
    key: str  # session_key(cookie): what storage and logs see
    state: SessionState
    tee: str
    nonce: str
    hash_algorithm: str
    created_at: float
    expires_at: float
    tee_pubkey: Mapping[str, object] | None = None
    claims: Mapping[str, object] | None = None  # the token's claims once ATTESTED (the token itself is not kept)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def transition(self, to: SessionState, **fields: object) -> Session:
        """The next state, or InvalidSessionTransition; ``fields`` set the attested values."""
        if to not in TRANSITIONS[self.state]:
            raise InvalidSessionTransition(self.state, to)
        return dataclasses.replace(self, state=to, **fields)  # type: ignore[arg-type]  # replace() checks the names


def session_key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(
    request: Request,
    hash_algorithm: str,
    *,
    now: float,
    timeout: float,
    rng: Callable[[int], bytes],
) -> tuple[str, Session, Challenge]:
    """Answer a Request: (cookie value, new AUTHED session, Challenge)."""
    nonce = base64.b64encode(rng(NONCE_BYTES)).decode("ascii")  # trustee: STANDARD base64 of 32 bytes
    cookie = base64.urlsafe_b64encode(rng(COOKIE_BYTES)).decode("ascii").rstrip("=")
    session = Session(
        key=session_key(cookie),
        state=SessionState.AUTHED,
        tee=request.tee,
        nonce=nonce,
        hash_algorithm=hash_algorithm,
        created_at=now,
        expires_at=now + timeout,
    )
    return cookie, session, Challenge(nonce, {"selected-hash-algorithm": hash_algorithm})


def awaiting_attestation(session: Session | None, now: float) -> Session:
    """The session an Attestation may answer: known, live and still AUTHED."""
    if session is None:
        raise TokenNotFound("session: unknown kbs-session-id (call /kbs/v0/auth first)")
    if session.expired(now):
        raise TokenNotFound("session: expired (call /kbs/v0/auth again)")
    if session.state is not SessionState.AUTHED:
        raise InvalidSessionTransition(session.state, SessionState.ATTESTED)
    return session


def check_nonce(session: Session, attestation: Attestation) -> None:
    """The Attestation must echo this session's nonce (trustee: "the nonce ... is different")."""
    if attestation.nonce != session.nonce:
        raise AttestationFailed(
            "runtime-data.nonce is not the nonce of this session (replayed or forged)", "nonce mismatch"
        )


def attested(session: Session | None, now: float) -> Session:
    """A session that may fetch resources: known, live and ATTESTED."""
    if session is None:
        raise TokenNotFound("session: unknown kbs-session-id")
    if session.expired(now):
        raise TokenNotFound("session: expired")
    if session.state is not SessionState.ATTESTED:
        raise TokenNotFound(f"session: {session.state.value}, not attested")
    return session
