"""Bringing a database to its keyring: ``inclavare kbs migrate`` and ``inclavare kbs rotate-kek``.

Both work in batches of small transactions, so they can be stopped at any
point and run again: nothing is half-done, and a second run does what the
first left (idempotent, resumable).

- :func:`migrate` seals the rows of a database written before encryption
  at rest (each moved from the plaintext table to the sealed one in one
  transaction), then drops the emptied table and compacts the file
  (SQLite: VACUUM, so freed pages do not keep plaintext). Brokers refuse to
  serve until it has run.
- :func:`rotate` makes the keyring's current KEK the database's active one
  (from that instant every replica wraps new data keys under it) and
  re-wraps the other rows' data keys, while brokers serve: each row is
  readable under its old KEK until its transaction commits and under the
  new one after, and replicas hold both (storage.kek.previous).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..storage.interface import AuditRecord, KeyState, Storage

BATCH = 100


@dataclass
class Report:
    done: int  # rows sealed (migrate) or data keys re-wrapped (rotate)
    state: KeyState  # the database afterwards
    previous_active: str | None = None  # rotate: the KEK that was active before
    failures: list[str] = field(default_factory=list)  # rotate: rows that stay under their KEK, and why


def migrate(
    storage: Storage, record: AuditRecord, batch: int = BATCH, progress: Callable[[int], None] | None = None
) -> Report:
    """Seal every plaintext row under the database's active KEK; drop the plaintext table; compact."""
    total = 0
    while moved := storage.migrate_batch(batch, record):
        total += moved
        if progress is not None:
            progress(total)
    storage.drop_plaintext()
    storage.compact()
    return Report(total, storage.key_state())


def rotate(
    storage: Storage, record: AuditRecord, batch: int = BATCH, progress: Callable[[int], None] | None = None
) -> Report:
    """Activate the keyring's current KEK and re-wrap every data key under another one."""
    to = storage.keyring.current
    report = Report(0, storage.key_state(), storage.activate(to, record.at))
    for _ in range(2):  # a second pass picks up a row written under the old KEK by a write already in flight
        after = ""
        while True:
            done, last, failures = storage.rewrap_batch(to, after, batch, record)
            report.done += done
            report.failures += failures
            if progress is not None and done:
                progress(report.done)
            if last == after:
                break
            after = last
        report.state = storage.key_state()
        if report.failures or set(report.state.wrapped) <= {to.id}:
            break
    return report
