"""Token buckets per address and per session, on an injected clock."""

from __future__ import annotations

import pytest

from inclavare.kbs.ratelimit import RateLimiter, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refill():
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back after 1/rate seconds
    assert buckets.take("b") == 0.0  # other clients are not affected
    clock.t += 0.25
    assert buckets.take("a") == pytest.approx(0.25)
    clock.t += 0.25
    assert buckets.take("a") == 0.0
    clock.t += 100
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # refill is capped at the burst


def test_bounded_memory():
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=10, clock=Clock())
    for i in range(100):
        buckets.take(f"client{i}")
    assert len(buckets) == 10


def test_address_then_session():
    clock = Clock()
    limiter = RateLimiter(TokenBuckets(10.0, 3, clock=clock), TokenBuckets(1.0, 1, clock=clock))
    assert limiter.check("10.0.0.1", "s1") is None
    which, wait = limiter.check("10.0.0.1", "s1")
    assert (which, wait) == ("session", pytest.approx(1.0))
    assert limiter.check("10.0.0.1", "s2") is None
    assert limiter.check("10.0.0.1", None)[0] == "address"


def test_invalid_settings():
    with pytest.raises(ValueError, match="rate"):
        TokenBuckets(0, 1)
