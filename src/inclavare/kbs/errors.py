"""Key broker errors, and how each one answers on the wire.

Every error the broker raises on purpose is a :class:`KbsError`. The server
turns it into an RFC 7807 problem document (``application/problem+json``)
whose ``type`` is ``ERROR_TYPE_PREFIX + problem``, as trustee does
(``kbs/src/error.rs``: ``<prefix>/<VariantName>``). Statuses follow the KBS
protocol (kbs_attestation_protocol.md, "Resource Requests"): 401 when the
requester is not authenticated, 403 when it is but may not have the
resource, 404 when the resource does not exist; 400 for malformed requests.

    KbsError                      status  problem type
    ├── InvalidRequest            400     InvalidRequest        malformed body, located
    │                                                           (`attestation: runtime-data.nonce: missing`)
    ├── PolicyInvalid             400     InvalidPolicy         an uploaded Rego policy does not compile
    ├── AuthFailed                401     AttestationError      the /auth step refused the request
    │                                                           (version, tee, hash algorithms)
    ├── AttestationFailed         401     AttestationError      evidence, binding, nonce or appraisal failed: the
    │                                                           wire says "attestation failed: <category>", one of
    │                                                           ATTESTATION_CATEGORIES (no oracle); the reason goes
    │                                                           to the log and the audit record
    ├── TokenNotFound             401     TokenNotFound         no usable session cookie or bearer token
    ├── TokenInvalid              401     TokenVerifierError    a bearer token that does not verify or has expired
    ├── AdminAuthFailed           401     AdminAuth             admin API without a valid admin token
    ├── AdminForbidden            403     AdminAccessDenied     a valid admin token outside its scopes
    ├── PolicyDeny                403     PolicyDeny            the resource policy said no
    ├── InvalidRequestPath        404     InvalidRequestPath    not a resource path (repository/type/tag)
    ├── ResourceNotFound          404     ResourceNotFound      no such resource
    ├── PayloadTooLarge           413     PayloadTooLarge       a body over http.max_body
    ├── RateLimited               429     TooManyRequests       carries ``retry_after`` seconds
    ├── StorageUnavailable        503     StorageUnavailable    the database cannot be reached (retry)
    ├── PolicyBusy                503     PolicyBusy            a repository's resource policies are all being
    │                                                           evaluated (retry)
    ├── StoredDataCorrupt         500     StorageIntegrity      a stored resource fails its integrity check (moved
    │                                                           to another path, altered, rolled back): not released
    ├── JweError                  500     JweError              a response cannot be encrypted or (client side)
    │                                                           decrypted
    └── ConfigError               --      (not a wire error)    the TOML config, with a dotted location

``public_detail`` is what a remote peer sees; ``str(exc)`` is the detail for
the server log. They differ only where telling the peer would be an oracle.
Secret values (resources, cookies, tokens) never appear in either.
"""

from __future__ import annotations

from ..errors import InclavareError

# Ref: trustee kbs/src/error.rs, ERROR_TYPE_PREFIX; kbs_attestation_protocol.md "Error information".
ERROR_TYPE_PREFIX = "https://github.com/confidential-containers/kbs/errors/"


class KbsError(InclavareError):
    """Base of every broker error; how each class answers on the wire is declared with it.

    ``class X(KbsError, status=..., problem=..., title=..., public=...)``:
    ``public`` is the fixed detail a peer sees where ``str(exc)`` would be an
    oracle; without it the peer sees ``str(exc)``.
    """

    status = 500
    problem = "InternalError"
    title = "Internal error"
    public: str | None = None

    def __init_subclass__(
        cls,
        *,
        status: int | None = None,
        problem: str | None = None,
        title: str | None = None,
        public: str | None = None,
    ) -> None:
        super().__init_subclass__()
        cls.status = status if status is not None else cls.status
        cls.problem = problem if problem is not None else cls.problem
        cls.title = title if title is not None else cls.title
        cls.public = public if public is not None else cls.public

    @property
    def public_detail(self) -> str:
        return self.public if self.public is not None else str(self)

    @property
    def type_url(self) -> str:
        return ERROR_TYPE_PREFIX + self.problem


# One line each: the tree in the module docstring says what they mean.
# fmt: off
class InvalidRequest(KbsError, status=400, problem="InvalidRequest", title="Malformed request"): ...
class PolicyInvalid(KbsError, status=400, problem="InvalidPolicy", title="Invalid policy"): ...
class AuthFailed(KbsError, status=401, problem="AttestationError", title="Authentication failed"): ...
class TokenNotFound(KbsError, status=401, problem="TokenNotFound", title="Not authenticated"): ...
class TokenInvalid(KbsError, status=401, problem="TokenVerifierError", title="Invalid attestation token",
                   public="the attestation token is invalid or has expired"): ...
class AdminAuthFailed(KbsError, status=401, problem="AdminAuth", title="Admin authentication failed"): ...
class AdminForbidden(KbsError, status=403, problem="AdminAccessDenied", title="Admin access denied"): ...
class PolicyDeny(KbsError, status=403, problem="PolicyDeny", title="Access denied by policy",
                 public="access denied by policy"): ...
class InvalidRequestPath(KbsError, status=404, problem="InvalidRequestPath", title="Invalid request path"): ...
class ResourceNotFound(KbsError, status=404, problem="ResourceNotFound", title="Resource not found"): ...
class PayloadTooLarge(KbsError, status=413, problem="PayloadTooLarge", title="Request body too large"): ...
# Every evaluation slot of one repository is taken: a slow policy there must
# not take the worker threads every other tenant needs.
class PolicyBusy(KbsError, status=503, problem="PolicyBusy", title="Policy evaluation busy"): ...
class StorageUnavailable(KbsError, status=503, problem="StorageUnavailable", title="Storage unavailable",
                         public="storage is unavailable; retry"): ...
class JweError(KbsError, problem="JweError", title="JWE failed"): ...
# Someone with write access to the database moved, altered or rolled back a sealed row (kbs/atrest/envelope.py).
class StoredDataCorrupt(KbsError, status=500, problem="StorageIntegrity",
                        title="Stored data failed its integrity check",
                        public="stored data failed its integrity check"): ...
# fmt: on


# Why a peer's /attest was refused, as far as the peer may know: a fixed set named by the broker's code,
# never by the policy, the evidence's contents, reference values or resource names (docs/kbs.md, "Why an
# attestation failed"). The enclave operator needs the category to fix a deployment; a prober learns
# nothing it could not learn from its own evidence, one burnt nonce per try.
ATTESTATION_CATEGORIES = frozenset(
    {
        "no session",  # no kbs-session-id cookie
        "challenge spent",  # the session's nonce was used already (a replay, or a second try)
        "nonce mismatch",  # runtime-data.nonce is not the session's
        "malformed request",  # not an Attestation, an unusable TEE key, evidence that does not decode
        "unsupported evidence",  # a kind the declared tee may not carry; init-data or device evidence
        "no trusted host key",  # software evidence signed by a host key the broker does not trust
        "evidence expired",  # a certificate or collateral outside its validity at the broker's instant
        "collateral missing",  # the broker lacks the TCB info, identity, CRL or certificate to verify it
        "tcb revoked",  # genuine hardware evidence whose TCB the vendor has revoked
        "evidence invalid",  # any other failed check: signatures, chains, measurements of the QE
        "report data mismatch",  # the evidence does not bind this session's nonce and TEE key
        "policy: denied",  # the attestation policy's appraisal is contraindicated, or it failed on this input
        "policy: unavailable",  # the configured attestation policy does not exist
        "internal error",  # something nobody mapped (logged with its traceback)
    }
)


class AttestationFailed(KbsError, status=401, problem="AttestationError", title="Attestation failed"):
    """A refused /attest; the peer sees ``attestation failed: <category>``, the log ``str(exc)``."""

    def __init__(self, reason: str, category: str) -> None:
        if category not in ATTESTATION_CATEGORIES:  # a typo here would put free text on the wire
            raise ValueError(f"not an attestation failure category: {category!r}")
        self.category = category
        super().__init__(reason)

    @property
    def public_detail(self) -> str:
        return f"attestation failed: {self.category}"


class RateLimited(KbsError, status=429, problem="TooManyRequests", title="Too many requests"):
    def __init__(self, retry_after: float, key: str = "client") -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limit exceeded for this {key}; retry after {retry_after:.1f} s")


class ConfigError(KbsError):
    """The broker's TOML configuration is wrong; the message names file and dotted location."""

    def __init__(self, location: str, reason: str, file: str = "kbs.toml") -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"{file}: {location}: {reason}" if location else f"{file}: {reason}")
