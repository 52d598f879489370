"""The sans-IO core of the KBS protocol (RCAR: Request, Challenge, Attestation, Response).

Both the broker (:mod:`inclavare.kbs.service`) and the enclave-side client
(:mod:`inclavare.kbs.client`) build on these modules, so they cannot
disagree about messages, versions or the report-data binding. Nothing here
touches a socket, a database or the clock: time and randomness are arguments.

- :mod:`.messages`   Request / Challenge / Attestation, version check, tee names
- :mod:`.binding`    hash-algorithm negotiation and the report-data binding
- :mod:`.canonical`  RFC 8785 canonical JSON (what the binding hashes)
- :mod:`.session`    the session state machine (AUTHED -> ATTESTED | FAILED, with expiry)
- :mod:`.ear`        AR4SI trust vectors and EAR-shaped token claims
- :mod:`.handshake`  the client's side of the handshake

Ref: trustee kbs/docs/kbs_attestation_protocol.md; docs/kbs.md.
"""

from __future__ import annotations

from .binding import DEFAULT_HASH_ALGORITHM, HASH_ALGORITHMS, binds, runtime_data_digest, select_hash_algorithm
from .ear import Tier, status, trust_vector
from .handshake import ClientHandshake, HandshakeError
from .messages import PROTOCOL_VERSION, TEE_EVIDENCE, Attestation, Challenge, Request, check_version
from .session import COOKIE_NAME, Session, SessionState, open_session, session_key

__all__ = [
    "COOKIE_NAME",
    "DEFAULT_HASH_ALGORITHM",
    "HASH_ALGORITHMS",
    "PROTOCOL_VERSION",
    "TEE_EVIDENCE",
    "Attestation",
    "Challenge",
    "ClientHandshake",
    "HandshakeError",
    "Request",
    "Session",
    "SessionState",
    "Tier",
    "binds",
    "check_version",
    "open_session",
    "runtime_data_digest",
    "select_hash_algorithm",
    "session_key",
    "status",
    "trust_vector",
]
