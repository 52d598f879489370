"""What the broker keeps, and the one interface every storage backend implements.

Everything a replica needs to serve any step of any session lives here, so
several replicas on one database behave as one broker: RCAR sessions (keyed
by SHA-256 of the cookie), resources (sealed under a key-encryption key the
database never holds: :mod:`inclavare.kbs.atrest`), policies, reference
values, the audit log and the shared rate-limit state.

**What "released" means.** A release is the broker's commitment to hand one
resource to one requester for one request. :meth:`Storage.release` reads
the resource, re-checks the session and writes exactly one audit record in
a single transaction, *before* any byte of the response is sent; no
response carries a resource without a committed record. A client that
retries a request (after a timeout, or against another replica after the
first died) sends the same ``Idempotency-Key``: the record for
(requester, key) already exists, the resource is served again and the
record's ``deliveries`` count goes up — one logical request, one release
record, however many replicas or retries it took. Requests without a key
are each their own release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..atrest.kek import Kek, Keyring
from ..protocol.session import Session

if TYPE_CHECKING:
    from .collateral import CollateralItem


@dataclass(frozen=True)
class AuditRecord:
    """One line of the audit log; never holds a secret (no resource bytes, cookies or tokens)."""

    at: float
    event: str  # auth | attest | release | deny | resource.set | resource.delete | policy.set | reference.*
    outcome: str  # ok | denied | failed | not-found
    subject: str = ""  # session:<key prefix> | token:<jti> | admin:<name> | client
    resource: str | None = None
    request_key: str | None = None  # the Idempotency-Key of a release
    tee: str | None = None
    source: str = ""  # client address
    replica: str = ""
    detail: str = ""
    id: int | None = None
    deliveries: int = 0

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class ReferenceValue:
    name: str
    value: str
    expires_at: float | None
    created_at: float

    def live(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class Release:
    value: bytes
    audit_id: int
    replayed: bool  # an earlier attempt of the same request already holds the release record


@dataclass(frozen=True)
class KeyState:
    """What the database says about its keys (ids and counts, nothing secret)."""

    active: str | None  # the KEK new data keys are wrapped under
    wrapped: Mapping[str, int]  # KEK id -> resources whose data key it wraps
    plaintext: int  # rows still in the pre-encryption table (inclavare kbs migrate)


class Storage(Protocol):
    """A transactional store; every method is one transaction and is safe from many threads."""

    def close(self) -> None: ...

    # -- sessions -----------------------------------------------------------
    def insert_session(self, session: Session) -> None: ...

    def get_session(self, key: str) -> Session | None: ...

    def finish_attestation(self, session: Session, audit: AuditRecord) -> bool:
        """Move an AUTHED session to ``session.state`` (ATTESTED/FAILED); False if it was not AUTHED."""
        ...

    def purge_sessions(self, now: float) -> int: ...

    # -- releases and the audit log ------------------------------------------
    def release(self, path: str, *, session_key: str | None, now: float, audit: AuditRecord) -> Release | None:
        """The release transaction (see the module docstring); None if there is no such resource."""
        ...

    def record(self, audit: AuditRecord) -> None: ...

    def audit_log(self, since_id: int = 0, limit: int = 100) -> list[AuditRecord]: ...

    # -- resources (sealed: storage/sealed.py) ----------------------------------
    keyring: Keyring

    def put_resource(self, path: str, value: bytes, now: float, audit: AuditRecord) -> None: ...

    def delete_resource(self, path: str, audit: AuditRecord) -> bool: ...

    def list_resources(self, prefix: str = "") -> list[str]: ...

    # -- policies (kind: "attestation" keyed by policy id, "resource" keyed by scope) --
    def put_policy(self, kind: str, name: str, body: str, now: float, audit: AuditRecord) -> None: ...

    def delete_policy(self, kind: str, name: str, audit: AuditRecord) -> bool: ...

    def policies(self, kind: str) -> Mapping[str, str]: ...

    # -- reference values ------------------------------------------------------
    def put_reference_values(
        self, name: str, values: list[str], expires_at: float | None, now: float, audit: AuditRecord
    ) -> None: ...

    def expire_reference_values(self, name: str, value: str | None, at: float, audit: AuditRecord) -> int: ...

    def delete_reference_values(self, name: str, value: str | None, audit: AuditRecord) -> int: ...

    def reference_values(self, name: str | None = None) -> list[ReferenceValue]: ...

    # -- collateral added through the admin API (storage/collateral.py) ----------
    def put_collateral(self, item: CollateralItem, audit: AuditRecord) -> bool: ...

    def delete_collateral(self, item_id: str, audit: AuditRecord) -> bool: ...

    def collateral_generation(self) -> int: ...

    def collateral(self) -> tuple[int, list[CollateralItem]]: ...

    # -- keys and maintenance (storage/sealed.py) --------------------------------
    def key_state(self) -> KeyState: ...

    def verify_keys(self, now: float, file: str = ..., *, serving: bool = ...) -> KeyState:
        """Before serving: the keyring reads every row and no plaintext row is left, else ConfigError."""
        ...

    def reload_keys(self, keyring: Keyring, file: str = ...) -> KeyState: ...

    def activate(self, kek: Kek, now: float) -> str | None: ...

    def migrate_batch(self, limit: int, record: AuditRecord) -> int: ...

    def drop_plaintext(self) -> bool: ...

    def rewrap_batch(self, to: Kek, after: str, limit: int, record: AuditRecord) -> tuple[int, str, list[str]]: ...

    def compact(self) -> None: ...

    # -- rate limits shared by replicas (storage/rates.py) -----------------------
    def take_rates(self, now: float, limits: Sequence[tuple[str, float, float]]) -> tuple[int, float] | None: ...

    def purge_rates(self, now: float) -> int: ...
