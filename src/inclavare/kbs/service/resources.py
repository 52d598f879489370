"""``GET /kbs/v0/resource/<repository>/<type>/<tag>``: who asks, may they, release, encrypt.

1. The requester: an ATTESTED, live session (cookie ``kbs-session-id``), or
   else a valid attestation token (``Authorization: Bearer``), whose EAR
   claims carry the TEE key (trustee ``get_attestation_token``: session
   first, then bearer). Neither: 401.
2. The resource policy governing the path decides over the token claims
   *before* the resource is looked up, so a denied requester cannot learn
   which resources exist (403 either way); allowed but absent: 404.
3. The release transaction (:meth:`~inclavare.kbs.storage.Storage.release`)
   unseals the resource (:mod:`inclavare.kbs.atrest`) and records the
   release exactly once per (requester, Idempotency-Key). A sealed row that
   fails its integrity check (moved, altered, rolled back) is released to
   nobody: 500 StorageIntegrity, audited and logged as an error.
4. The value goes out as a JWE to the TEE key (:mod:`inclavare.kbs.jwe`).
Denials and misses are audited too; resource bytes never are.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import (
    InvalidRequest,
    KbsError,
    PolicyDeny,
    ResourceNotFound,
    StoredDataCorrupt,
    TokenInvalid,
    TokenNotFound,
)
from ..jwe import encrypt
from ..policy import PolicyEvaluationError, authorize, check_path, governed_by_builtin
from ..protocol.ear import tee_pubkey_of
from ..protocol.session import Session, SessionState, attested, session_key
from .deps import Deps
from .rcar import subject_of

log = logging.getLogger("inclavare.kbs")
_REQUEST_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


@dataclass(frozen=True)
class Requester:
    subject: str
    claims: Mapping[str, object]
    tee_pubkey: Mapping[str, object]
    session_key: str | None
    tee: str | None


# Attested sessions read by this process, by session key. ATTESTED is a terminal state, so a row read
# once never changes; expiry is checked on every use (``attested``), and the release transaction checks
# the row itself again (storage/sql.py ``_live_session``), so a purged or expired session releases
# nothing. Each GET used to read and parse the row (its claims are the whole token) again.
ATTESTED_CACHE = 4096


class ResourceService:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._attested: dict[str, Session] = {}

    def inline_ok(self, repository: str, type_: str, tag: str) -> bool:
        """Whether a GET of this path may run on the server's event loop (server/app.py): only if
        a built-in policy governs it. A tenant's own Rego runs in the pool, in its lane, so a slow
        one cannot stall the loop that every other tenant's requests share."""
        try:
            path = check_path(repository, type_, tag)
        except KbsError:
            return True  # refused at once, wherever it runs
        return governed_by_builtin(self.d.storage.policies("resource"), path)

    def get(
        self,
        repository: str,
        type_: str,
        tag: str,
        *,
        cookie: str | None,
        authorization: str | None,
        request_key: str | None,
        source: str,
    ) -> dict[str, str]:
        """The JWE of one resource for an attested requester."""
        path = check_path(repository, type_, tag)
        if request_key is not None and not _REQUEST_KEY.match(request_key):
            raise InvalidRequest("Idempotency-Key: 8 to 128 of A-Z a-z 0-9 . _ : -")
        now = self.d.clock()
        who = self.requester(cookie, authorization, now)
        self._authorize(who, path, now, source)
        record = self.d.audit.record(
            now,
            "release",
            "ok",
            subject=who.subject,
            resource=path,
            request_key=request_key,
            tee=who.tee,
            source=source,
        )
        try:
            released = self.d.storage.release(path, session_key=who.session_key, now=now, audit=record)
        except StoredDataCorrupt as exc:
            log.error("release of %s refused: %s", path, exc)
            self._deny(who, path, now, source, "failed", "stored resource failed its integrity check")
            raise
        if released is None:
            self._deny(who, path, now, source, "not-found", "no such resource")
            raise ResourceNotFound(f"resource {path} does not exist")
        m = self.d.metrics
        m.resource_reads.labels(path.split("/", 1)[0]).inc()
        if not released.replayed:
            m.releases.inc()
            self.d.audit.emit(record, released.audit_id)
        else:
            log.info("release %d of %s replayed for %s", released.audit_id, path, who.subject)
        return encrypt(who.tee_pubkey, released.value, self.d.rng)

    def requester(self, cookie: str | None, authorization: str | None, now: float) -> Requester:
        bearer = _bearer(authorization)
        if cookie is not None:
            session = self._session(session_key(cookie))
            try:
                live = attested(session, now)
            except TokenNotFound:
                if bearer is None:
                    raise
            else:
                assert live.claims is not None
                assert live.tee_pubkey is not None
                return Requester(subject_of(live), live.claims, live.tee_pubkey, live.key, live.tee)
        if bearer is None:
            raise TokenNotFound("no kbs-session-id cookie and no Authorization: Bearer token")
        claims = self.d.tokens.verify(bearer, now)
        tee = _annotated_tee(claims)
        return Requester(f"token:{claims['jti']}", claims, tee_pubkey_of(claims), None, tee)

    def _session(self, key: str) -> Session | None:
        session = self._attested.get(key)
        if session is not None:
            return session
        session = self.d.storage.get_session(key)
        if session is not None and session.state is SessionState.ATTESTED:
            if len(self._attested) >= ATTESTED_CACHE:
                self._attested.clear()  # the live ones come back on their next GET
            self._attested[key] = session
        return session

    def _authorize(self, who: Requester, path: str, now: float, source: str) -> None:
        m = self.d.metrics
        m.policy_evaluations.inc()
        try:
            decision = authorize(self.d.engine, self.d.storage.policies("resource"), path, who.claims)
        except PolicyEvaluationError as exc:
            m.policy_errors.inc()
            log.error("resource policy for %s failed: %s", path, exc)
            self._deny(who, path, now, source, "denied", "policy evaluation failed")
            raise PolicyDeny(f"resource policy for {path} failed to evaluate") from None
        if not decision.allow:
            m.policy_violations.inc()
            why = f"denied by the {decision.scope!r} policy" if decision.scope else "no policy covers this path"
            self._deny(who, path, now, source, "denied", why)
            raise PolicyDeny(f"{path}: {why}")
        m.policy_approvals.inc()

    def _deny(self, who: Requester, path: str, now: float, source: str, outcome: str, detail: str) -> None:
        record = self.d.audit.record(
            now, "deny", outcome, subject=who.subject, resource=path, tee=who.tee, source=source, detail=detail
        )
        try:
            self.d.storage.record(record)
        except KbsError as exc:  # the refusal stands even if it cannot be written down
            log.error("audit record for a denial of %s not stored: %s", path, exc)
        self.d.audit.emit(record)


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenInvalid("Authorization: only Bearer tokens are accepted")
    return token.strip()


def _annotated_tee(claims: Mapping[str, object]) -> str | None:
    node: object = claims
    for key in ("submods", "cpu0", "ear.veraison.annotated-evidence", "tee"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, str) else None
