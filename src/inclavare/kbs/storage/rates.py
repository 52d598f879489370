"""Rate-limit state shared by every replica on one database: one row per client, GCRA.

The generic cell rate algorithm (ITU-T I.371; the token bucket of
:mod:`inclavare.kbs.ratelimit` in one number) keeps per key only the
*theoretical arrival time* ``tat``: with ``interval = 1 / rate`` and
``tolerance = (burst - 1) * interval``, a request at ``now`` conforms iff
``max(tat, now) - now <= tolerance``, and then ``tat = max(tat, now) +
interval``. One conditional upsert decides and updates it, so replicas
racing on one key are serialized by the row lock. A key idle for longer
than its tolerance is the same as no row, so old rows are purged freely.

The table is UNLOGGED on PostgreSQL: rate state is not worth a WAL
record, and losing it in a crash only hands every client a full bucket.
Clocks: ``now`` is the caller's wall clock; replicas' clocks differing by
``d`` seconds move a limit by ``d * rate`` requests, nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

from .dialect import Cursor, Dialect, SqlBase


def schema(d: Dialect) -> list[tuple[str, str]]:
    return [("kbs_rates", f"CREATE {d.unlogged}TABLE kbs_rates (key TEXT PRIMARY KEY, tat {d.real} NOT NULL)")]


class SharedRates(SqlBase):
    """The GCRA over ``kbs_rates``; mixed into :class:`~.sql.SqlStorage`."""

    def take_rates(self, now: float, limits: Sequence[tuple[str, float, float]]) -> tuple[int, float] | None:
        """Take one request from each ``(key, interval, tolerance)`` in order, in one transaction.

        None if every limit allowed it; else (index of the first that refused,
        seconds until it would allow one), and later limits are not charged.
        """
        with self.transaction() as c:
            for i, (key, interval, tolerance) in enumerate(limits):
                wait = self._take(c, key, now, interval, tolerance)
                if wait is not None:
                    return i, wait
        return None

    def _take(self, c: Cursor, key: str, now: float, interval: float, tolerance: float) -> float | None:
        """One GCRA step for ``key`` (its row stays locked until commit): None if allowed, else the wait."""
        top = self.dialect.greatest
        row = self._run(
            c,
            "INSERT INTO kbs_rates (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            f"SET tat = {top}(kbs_rates.tat, ?) + ? WHERE {top}(kbs_rates.tat, ?) - ? <= ? RETURNING tat",
            (key, now + interval, now, interval, now, now, tolerance),
        ).fetchone()
        if row is not None:
            return None
        tat = float(self._run(c, "SELECT tat FROM kbs_rates WHERE key = ?", (key,)).fetchone()[0])
        return max(tat - now - tolerance, 0.001)

    def purge_rates(self, now: float) -> int:
        """Forget keys whose bucket is full again (``tat`` in the past).

        Rows a request holds are skipped: a DELETE locking rows in scan order
        against requests locking an address row, then a session row, is a
        deadlock (seen under load before SKIP LOCKED).
        """
        skip = self.dialect.skip_locked
        with self.transaction() as c:
            return self._run(
                c, f"DELETE FROM kbs_rates WHERE key IN (SELECT key FROM kbs_rates WHERE tat < ? {skip})", (now,)
            ).rowcount
