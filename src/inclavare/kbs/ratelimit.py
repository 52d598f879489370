"""Per-client rate limiting: token buckets per source address and per session (trustee#836).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per
second; each request takes one. An empty bucket answers 429 with
``Retry-After`` = the seconds until one token is back (RFC 6585 §4,
RFC 9110 §10.2.3). Two places to keep the buckets:

- :class:`RateLimiter` (default): in this replica's memory. With N replicas
  behind a load balancer a client gets at most N times the rate. The map
  of buckets is bounded (least recently used clients are forgotten, which
  only ever gives them a full bucket). Clock: monotonic seconds.
- :class:`SharedLimiter` (``rate_limit.shared``, PostgreSQL): in the
  database (:mod:`inclavare.kbs.storage.rates`), one bucket per client
  across every replica, for one database transaction per request
  (docs/kbs.md, "Rate limits", has the cost). Clock: wall-clock seconds,
  since replicas compare their instants.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """Token buckets keyed by client; ``take(key)`` -> 0.0 if allowed, else seconds to wait."""

    def __init__(
        self, rate: float, burst: int, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
                bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimiter:
    """The two limits a request passes: its address, then its session (if it has one)."""

    blocking = False  # check() never waits on I/O: the event loop may call it

    def __init__(self, per_address: TokenBuckets, per_session: TokenBuckets) -> None:
        self.per_address = per_address
        self.per_session = per_session

    def check(self, address: str, session: str | None) -> tuple[str, float] | None:
        """None if allowed, else (which limit, seconds to wait)."""
        wait = self.per_address.take(address)
        if wait > 0:
            return "address", wait
        if session is not None:
            wait = self.per_session.take(session)
            if wait > 0:
                return "session", wait
        return None


class RateStore(Protocol):
    """What :class:`SharedLimiter` needs of storage (:class:`~inclavare.kbs.storage.rates.SharedRates`)."""

    def take_rates(self, now: float, limits: Sequence[tuple[str, float, float]]) -> tuple[int, float] | None: ...

    def purge_rates(self, now: float) -> int: ...


class SharedLimiter:
    """The same two limits, kept in the database: every replica draws on one bucket per client."""

    blocking = True  # one database transaction: call it from a worker thread
    PURGE_EVERY = 4096  # checks between purges of idle keys (their rows are only space)

    def __init__(
        self,
        store: RateStore,
        per_address: tuple[float, int],
        per_session: tuple[float, int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        for rate, burst in (per_address, per_session):
            if rate <= 0 or burst < 1:
                raise ValueError("rate must be > 0 and burst >= 1")
        self.store = store
        self.clock = clock
        # GCRA form of a bucket (storage/rates.py): emission interval and tolerance
        self._address = (1.0 / per_address[0], (per_address[1] - 1) / per_address[0])
        self._session = (1.0 / per_session[0], (per_session[1] - 1) / per_session[0])
        self._checks = 0

    def check(self, address: str, session: str | None) -> tuple[str, float] | None:
        """None if allowed, else (which limit, seconds to wait)."""
        now = self.clock()
        limits = [(f"address:{address}", *self._address)]
        if session is not None:
            limits.append((f"session:{session}", *self._session))
        hit = self.store.take_rates(now, limits)
        self._checks += 1
        if self._checks % self.PURGE_EVERY == 0:
            self.store.purge_rates(now)
        if hit is None:
            return None
        return ("address", "session")[hit[0]], hit[1]
