"""Token buckets per address and per session, on an injected clock."""

from __future__ import annotations

import pytest

from inclavare.kbs.ratelimit import RateLimiter, SharedLimiter, TokenBuckets


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


@pytest.fixture
def store(tmp_path):
    from inclavare.kbs.atrest import Kek, Keyring
    from inclavare.kbs.storage.sqlite import SqliteStorage

    s = SqliteStorage(str(tmp_path / "kbs.db"), Keyring(Kek(bytes(32))))
    yield s
    s.close()


def test_the_shared_limiter_answers_as_the_buckets_do(store):
    """GCRA in the database (storage/rates.py) and the in-memory token bucket: the same answers, step by step."""
    clock = Clock()
    memory = RateLimiter(TokenBuckets(2.0, 3, clock=clock), TokenBuckets(1.0, 2, clock=clock))
    shared = SharedLimiter(store, (2.0, 3), (1.0, 2), clock=clock)
    steps = [0.0, 0.0, 0.0, 0.0, 0.1, 0.3, 0.5, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0]
    for i, dt in enumerate(steps):
        clock.t += dt
        session = None if i % 4 == 3 else "s1"
        want, got = memory.check("10.0.0.1", session), shared.check("10.0.0.1", session)
        assert (want is None) == (got is None), (i, want, got)
        if want is not None:
            assert want[0] == got[0]
            assert want[1] == pytest.approx(got[1], abs=1e-6)
    assert shared.check("10.0.0.2", "s2") is None  # other clients are not affected


def test_idle_keys_are_purged(store):
    clock = Clock()
    shared = SharedLimiter(store, (10.0, 1), (10.0, 1), clock=clock)
    for i in range(5):
        shared.check(f"10.0.0.{i}", f"s{i}")
    assert store.purge_rates(clock.t) == 0  # all ten keys are still within their interval
    clock.t += 1.0
    assert store.purge_rates(clock.t) == 10
    with pytest.raises(ValueError, match="rate"):
        SharedLimiter(store, (0.0, 1), (1.0, 1))
