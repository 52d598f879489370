"""Collateral the broker verifies with: the config's files plus what admins added, shared by every replica.

``attestation.collateral`` (files and directories, read at start) is the
base; ``POST /kbs/v0/collateral`` adds items to the database
(:mod:`inclavare.kbs.storage.collateral`) and ``DELETE`` removes them. What
``attestation.verify`` sees is the union, rebuilt when the database's
*generation* moves. A replica reads the generation at most once per
``attestation.collateral_refresh`` seconds (one indexed row), so a change
made through any replica is in force on every replica within that time, and
at once on the replica that made it. Items the config loads cannot be
removed through the API: they come back with the next start.

An item is one upload, classified by content as the collateral loader does
(:class:`inclavare.attestation.CollateralStore`): a software-TEE host key
(PEM, or the JSON ``inclavare enclave host-key`` prints), PCS TCB info or QE
identity, a CRL, certificates, a dcap-qvl bundle. Its id is the host key's
key id (SHA-256 of the raw key, as software evidence names it) or the
SHA-256 of the bytes. Trust anchors are not collateral: the Intel and AMD
roots are pinned in the code (attestation/hazmat/roots.py), never taken from
a store.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ...attestation import CollateralStore
from ...attestation.errors import CollateralError
from ...attestation.hazmat.certs import common_name
from ..errors import InvalidRequest
from ..storage import Storage
from ..storage.collateral import CollateralItem

log = logging.getLogger("inclavare.kbs")
MAX_ITEM = 1 << 20


def classify(data: bytes, now: float, where: str = "collateral") -> CollateralItem:
    """One upload as an item, or InvalidRequest saying why the loader refuses it."""
    if not data.strip():
        raise InvalidRequest(f"{where}: empty body")
    scratch = CollateralStore()
    try:
        scratch.add_bytes(data, where)
    except CollateralError as exc:
        raise InvalidRequest(str(exc)) from None
    if scratch.host_keys:
        raw = scratch.host_keys[0].public_bytes(Encoding.Raw, PublicFormat.Raw)
        pem = scratch.host_keys[0].public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        key_id = hashlib.sha256(raw).hexdigest()
        return CollateralItem(key_id, "host-key", f"software-TEE host key {key_id[:16]}", pem, now)
    kind, summary = _describe(scratch)
    if not summary:  # PCS "TCB evaluation data numbers": recognised by the loader, nothing to verify with
        raise InvalidRequest(f"{where}: holds nothing a verifier uses")
    return CollateralItem(hashlib.sha256(data).hexdigest(), kind, summary, data, now)


def _describe(s: CollateralStore) -> tuple[str, str]:
    parts = [f"{t.id} TCB info FMSPC {t.fmspc.hex().upper()} issued {t.issue_date:%Y-%m-%d}" for t in s.tcb_infos]
    parts += [f"{q.id} identity issued {q.issue_date:%Y-%m-%d}" for q in s.qe_identities]
    parts += [f"CRL of {common_name(c.issuer)} updated {c.last_update_utc:%Y-%m-%d}" for c in s.crls]
    parts += [f"certificate {common_name(c.subject)}" for c in s.certificates]
    kinds = [k for k, items in (("tcb-info", s.tcb_infos), ("qe-identity", s.qe_identities),
                                ("crl", s.crls), ("certificate", s.certificates)) if items]  # fmt: skip
    kind = kinds[0] if len(kinds) == 1 else "bundle"
    return kind, "; ".join(parts)[:300]


class CollateralCache:
    """The union of the config's collateral and the database's, rebuilt when the generation moves."""

    def __init__(self, base: CollateralStore, storage: Storage, refresh: float, clock: Callable[[], float]) -> None:
        self.base = base
        self._storage = storage
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = -1
        self._checked = float("-inf")
        self._store = base

    def store(self) -> CollateralStore:
        """The store to verify with now (at most ``refresh`` seconds behind the database)."""
        now = self._clock()
        if now - self._checked < self._refresh:
            return self._store
        with self._lock:  # one thread looks; the others keep verifying with the store they have
            if now - self._checked >= self._refresh:
                self._check(now)
        return self._store

    def invalidate(self) -> None:
        """This replica changed the table: look at the next attestation, whatever the refresh interval."""
        self._checked = float("-inf")

    def _check(self, now: float) -> None:
        if self._storage.collateral_generation() != self._generation:
            generation, items = self._storage.collateral()
            self._store = self._build(items)
            log.info("collateral generation %d: %d item(s) from the database", generation, len(items))
            self._generation = generation
        self._checked = now

    def _build(self, items: list[CollateralItem]) -> CollateralStore:
        store = CollateralStore()
        store.update(self.base)
        for item in items:
            try:
                store.add_bytes(item.data, f"collateral {item.id[:16]}")
            except CollateralError as exc:  # it was checked on the way in: a database writer's doing; skip it
                log.error("collateral %s in the database is not usable, skipped: %s", item.id[:16], exc)
        return store
