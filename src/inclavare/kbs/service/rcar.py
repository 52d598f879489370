"""RCAR: ``POST /kbs/v0/auth`` (Request -> Challenge) and ``POST /kbs/v0/attest`` (Attestation -> token).

The attest step, in order (ref: trustee kbs/src/attestation/backend.rs
``__attest``; the evidence checks are :func:`inclavare.attestation.verify`'s):

1. the session (cookie) is known, live and AUTHED; the Attestation echoes its nonce;
2. the TEE public key is a usable JWK (RSA-OAEP-256 or ECDH-ES+A256KW);
3. the evidence is of a kind the declared ``tee`` may carry, and verifies
   completely (signatures, chains, collateral, TCB) at the injected instant;
4. its report data is H(canonical runtime data) with the negotiated H;
5. the attestation policy (Rego) turns claims + live reference values into
   an AR4SI vector; a *contraindicated* result is refused (no token);
6. an EAR token is signed, and the session moves AUTHED -> ATTESTED in one
   conditional update — a concurrent replay of the same nonce loses.

Any refusal in 1 (nonce), 3, 4 or 5 burns the session (FAILED) and answers
401 "attestation failed: <category>", one of a fixed set
(:data:`~inclavare.kbs.errors.ATTESTATION_CATEGORIES`): the reason is logged
and audited, never returned. So
does anything *unexpected* on the way (a verifier or library raising what
nobody mapped, a panic in cryptography's Rust layer): the attempt is
audited, the nonce is spent, and the peer sees the same 401, never a 500
it could tell apart or retry with other evidence against one challenge.
Only a body that is not an Attestation at all (400) leaves the session
usable: nothing was appraised.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

from ... import attestation
from ...attestation.claims import EvidenceKind, NitroClaims, VerifiedClaims
from ...attestation.errors import CollateralError, EvidenceFormatError, OutsideValidity, PolicyRejected, UntrustedKey
from ...attestation.hazmat.guard import describe, is_panic
from ..errors import AttestationFailed, InvalidRequest, KbsError
from ..jwe import public_key_from_jwk
from ..policy import ATTESTATION_POLICIES, PolicyEvaluationError, appraise
from ..protocol import binding, ear, messages
from ..protocol.session import Session, SessionState, awaiting_attestation, check_nonce, open_session, session_key
from .deps import Deps

log = logging.getLogger("inclavare.kbs")
# The library checks genuineness (every TCB status but Revoked, debug and software admitted);
# what is *trusted* is the attestation policy's decision (step 5).
APPRAISAL = dataclasses.replace(attestation.Policy.genuine_only(), allow_software=True, name="kbs-genuine")
BUILD = "inclavare-kbs 0.1.0"


def subject_of(session: Session) -> str:
    return f"session:{session.key[:16]}"


class RcarService:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._auths = 0

    def auth(self, body: bytes) -> tuple[str, Session, messages.Challenge]:
        """Answer a Request: (cookie value, session, Challenge)."""
        m = self.d.metrics
        m.auth_requests.inc()
        try:
            request = messages.Request.parse(messages.parse_json(body, "request"))
            messages.check_version(request.version)
            conf = self.d.config.attestation
            algorithm = binding.select_hash_algorithm(request.supported_hash_algorithms, conf.hash_algorithm)
            now = self.d.clock()
            cookie, session, challenge = open_session(
                request, algorithm, now=now, timeout=conf.session_timeout, rng=self.d.rng
            )
            self.d.storage.insert_session(session)
        except KbsError:
            m.auth_errors.inc()
            raise
        m.auth_successes.inc()
        self._purge(now)
        return cookie, session, challenge

    def attest(self, body: bytes, cookie: str | None, source: str) -> tuple[str, Session]:
        """Answer an Attestation: (token, attested session)."""
        m = self.d.metrics
        m.attestation_requests.inc()
        if cookie is None:
            m.attestation_errors.inc()
            raise AttestationFailed("no kbs-session-id cookie (call /kbs/v0/auth first)", "no session")
        now = self.d.clock()
        found = self.d.storage.get_session(session_key(cookie))
        try:
            session = awaiting_attestation(found, now)
        except AttestationFailed as exc:  # a spent nonce: a replay, recorded like any refusal
            assert found is not None
            self._refuse(found, exc, now, source)
            raise
        try:
            # Every failed /attest spends the nonce, a malformed body too: one
            # challenge, one try, whatever is wrong with it.
            parsed = _parse_attestation(body)
            result, vector = self._appraise(session, parsed, now)
            token, done = self._issue(session, parsed, result, vector, now, source)
        except AttestationFailed as exc:
            self._refuse(session, exc, now, source)
            raise
        except InvalidRequest as exc:
            failure = AttestationFailed(f"attestation body: {exc}", "malformed request")
            self._refuse(session, failure, now, source)
            raise failure from None
        except KbsError:
            raise  # storage or policy lanes unavailable (503): the broker's trouble, not the evidence's
        except BaseException as exc:
            failure = _unexpected(exc, "appraising the attestation")
            self._refuse(session, failure, now, source)
            raise failure from exc
        m.attestation_successes.labels(session.tee).inc()
        return token, done

    def _appraise(
        self, session: Session, att: messages.Attestation, now: float
    ) -> tuple[VerifiedClaims, dict[str, int]]:
        check_nonce(session, att)
        if att.init_data is not None or att.additional_evidence:
            raise AttestationFailed(
                "init-data and additional (device) evidence are not supported by this KBS", "unsupported evidence"
            )
        kind: EvidenceKind | None = None
        try:
            digest = binding.runtime_data_digest(att.runtime_data(), session.hash_algorithm)
            evidence = att.evidence_bytes()
            kind = attestation.detect(evidence)
            if kind not in messages.TEE_EVIDENCE[session.tee]:
                raise AttestationFailed(
                    f"tee {session.tee} may not carry {kind.value} evidence", "unsupported evidence"
                )
            at = datetime.fromtimestamp(now, UTC)
            result = attestation.verify(evidence, at=at, collateral=self.d.collateral.store(), policy=APPRAISAL)
        except attestation.AttestationError as exc:
            raise AttestationFailed(f"evidence: {exc}", _category(exc, kind)) from None
        except (InvalidRequest, ValueError) as exc:
            raise AttestationFailed(f"evidence: {exc}", "malformed request") from None
        if not binding.binds(_report_data(result), digest):
            raise AttestationFailed(
                "report data does not bind this session's nonce and tee-pubkey", "report data mismatch"
            )
        vector = self._vector(result, now)
        if ear.status(vector) is ear.Tier.CONTRAINDICATED:
            raise AttestationFailed(f"appraisal is contraindicated: {vector}", "policy: denied")
        return result, vector

    def _vector(self, result: VerifiedClaims, now: float) -> dict[str, int]:
        policy_id = self.d.config.attestation.policy
        module = self.d.storage.policies("attestation").get(policy_id) or ATTESTATION_POLICIES.get(policy_id)
        if module is None:
            raise AttestationFailed(f"attestation policy {policy_id!r} does not exist", "policy: unavailable")
        reference: dict[str, list[str]] = {}
        for rv in self.d.storage.reference_values():
            if rv.live(now):  # expiry applies at evaluation time (injected clock)
                reference.setdefault(rv.name, []).append(rv.value)
        try:
            return appraise(self.d.engine, module, result, reference)
        except PolicyEvaluationError as exc:
            raise AttestationFailed(str(exc), "policy: denied") from None

    def _issue(
        self,
        session: Session,
        att: messages.Attestation,
        result: VerifiedClaims,
        vector: dict[str, int],
        now: float,
        source: str,
    ) -> tuple[str, Session]:
        tokens = self.d.tokens
        claims = ear.ear_claims(
            issuer=tokens.issuer,
            iat=int(now),
            exp=int(now + tokens.lifetime),
            jti=tokens.new_jti(),
            nonce=session.nonce,
            tee_pubkey=att.tee_pubkey,
            vector=vector,
            policy_id=self.d.config.attestation.policy,
            annotated={"tee": session.tee, **_annotated(result)},
            build=BUILD,
        )
        done = session.transition(SessionState.ATTESTED, tee_pubkey=dict(att.tee_pubkey), claims=claims)
        record = self.d.audit.record(
            now,
            "attest",
            "ok",
            subject=subject_of(session),
            tee=session.tee,
            source=source,
            detail=ear.status(vector).value,
        )
        if not self.d.storage.finish_attestation(done, record):
            raise AttestationFailed("session was attested concurrently (nonce replay)", "challenge spent")
        self.d.audit.emit(record)
        return tokens.issue(claims), done

    def _refuse(self, session: Session, exc: AttestationFailed, now: float, source: str) -> None:
        self.d.metrics.attestation_failures.labels(session.tee).inc()
        log.warning("attestation refused for %s (tee %s): %s: %s", subject_of(session), session.tee, exc.category, exc)
        record = self.d.audit.record(
            now,
            "attest",
            "failed",
            subject=subject_of(session),
            tee=session.tee,
            source=source,
            detail=f"{exc.category}: {exc}"[:200],
        )
        if session.state is SessionState.AUTHED:
            self.d.storage.finish_attestation(session.transition(SessionState.FAILED), record)
        else:
            self.d.storage.record(record)
        self.d.audit.emit(record)

    def _purge(self, now: float) -> None:
        self._auths += 1
        if self._auths % 256 == 0:  # sessions expire on their own; this only reclaims space
            self.d.storage.purge_sessions(now - self.d.config.attestation.session_timeout)


def _parse_attestation(body: bytes) -> messages.Attestation:
    """The Attestation and its usable TEE key; InvalidRequest (400) for anything else."""
    try:
        parsed = messages.Attestation.parse(messages.parse_json(body, "attestation"))
        public_key_from_jwk(parsed.tee_pubkey, "attestation: runtime-data.tee-pubkey")
    except InvalidRequest:
        raise
    except BaseException as exc:
        _unexpected(exc, "parsing the request")  # logged with its traceback; the peer learns only "malformed"
        raise InvalidRequest("attestation: malformed request") from exc
    return parsed


def _unexpected(exc: BaseException, doing: str) -> AttestationFailed:
    """An exception nobody mapped (a bug, a library failing in a new way, a Rust panic) as a refusal.

    The traceback goes to the server log; KeyboardInterrupt, SystemExit and
    the like are not refusals and propagate.
    """
    if not isinstance(exc, Exception) and not is_panic(exc):
        raise exc
    log.error("unexpected %s while %s", type(exc).__name__, doing, exc_info=exc)
    return AttestationFailed(f"internal error while {doing}: {describe(exc)}", "internal error")


def _category(exc: attestation.AttestationError, kind: EvidenceKind | None) -> str:
    """What the peer may learn of a verifier's refusal (kbs/errors.py, ATTESTATION_CATEGORIES)."""
    if isinstance(exc, UntrustedKey) or (isinstance(exc, CollateralError) and kind is EvidenceKind.SOFTWARE):
        return "no trusted host key"  # the software verifier's CollateralError: it trusts no host key at all
    if isinstance(exc, OutsideValidity):
        return "evidence expired"
    if isinstance(exc, CollateralError):
        return "collateral missing"
    if isinstance(exc, PolicyRejected):  # APPRAISAL refuses only a Revoked TCB
        return "tcb revoked"
    if isinstance(exc, EvidenceFormatError):
        return "malformed request"
    return "evidence invalid"


def _report_data(result: VerifiedClaims) -> bytes | None:
    """Where the evidence carries caller data: REPORT_DATA, or a Nitro document's user_data."""
    claims = result.claims
    if isinstance(claims, NitroClaims) or result.kind is EvidenceKind.NITRO_DOCUMENT:
        return getattr(claims, "user_data", None)
    return claims.report_data


def _annotated(result: VerifiedClaims) -> dict[str, object]:
    doc = result.to_json()
    return {"evidence_kind": doc["kind"], "claims": doc["claims"], "tcb": doc["tcb"]}
