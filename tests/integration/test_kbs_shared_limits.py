"""Rate limits across replicas: with PostgreSQL one bucket per client for all replicas (rate_limit.shared).

Two ``inclavare kbs serve`` processes on one database; requests alternate
between them. Shared (PostgreSQL's default), a client gets its burst once;
per replica (``shared = false``), once from each.
"""

from __future__ import annotations

import itertools
import threading

import httpx
import pytest

from inclavare.kbs.atrest import Kek, Keyring
from inclavare.testing.kbs import KbsProcess, PostgresServer, World

ENV = "INCLAVARE_KBS_LIMITS_DSN"
STORAGE = f'[storage]\ntype = "postgres"\ndsn_env = "{ENV}"'
BODY = {"version": "0.4.0", "tee": "software"}
_dbs = itertools.count()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-limits")))


def replicas(world: World, postgres: PostgresServer, limits: str) -> list[KbsProcess]:
    env = {ENV: postgres.create_database(f"limits{next(_dbs)}")}
    extra = f"\n[rate_limit]\nper_address = {{ rate = 0.2, burst = 6 }}\n{limits}"
    started: list[KbsProcess] = []
    for name in ("a", "b"):
        started.append(KbsProcess(world.config(f"{name}{next(_dbs)}", storage=STORAGE, extra=extra), env=env))
    return started


def statuses(brokers: list[KbsProcess], count: int) -> list[int]:
    """POST /auth ``count`` times, alternating replicas; the statuses."""
    out = []
    for i in range(count):
        answer = httpx.post(f"{brokers[i % 2].url}/kbs/v0/auth", json=BODY)
        if answer.status_code == 429:
            assert int(answer.headers["retry-after"]) >= 1
        out.append(answer.status_code)
    return out


def test_replicas_share_one_bucket_per_client(world, postgres):
    brokers = replicas(world, postgres, "")  # PostgreSQL: shared unless told otherwise
    try:
        assert statuses(brokers, 10) == [200] * 6 + [429] * 4
    finally:
        for k in brokers:
            k.stop()


def test_per_replica_buckets_give_a_client_the_burst_once_per_replica(world, postgres):
    brokers = replicas(world, postgres, "shared = false\n")
    try:
        assert statuses(brokers, 14) == [200] * 12 + [429] * 2  # 2 replicas x burst 6
    finally:
        for k in brokers:
            k.stop()


def test_a_limiter_without_its_database_answers_503(world):
    """The limiter asks the database first: with the database gone that is a 503 the client retries, not a 500."""
    own = PostgresServer()
    try:
        env = {ENV: own.create_database("gone")}
        kbs = KbsProcess(world.config("gone", storage=STORAGE), env=env)
        try:
            assert httpx.post(f"{kbs.url}/kbs/v0/auth", json=BODY).status_code == 200
            own.stop()
            answer = httpx.post(f"{kbs.url}/kbs/v0/auth", json=BODY)
            assert (answer.status_code, answer.json()["detail"]) == (503, "storage is unavailable; retry")
            assert "StorageUnavailable: postgres" in kbs.log()
        finally:
            kbs.stop()
    finally:
        own.stop()


def test_purging_idle_keys_does_not_deadlock_with_a_request(postgres):
    """A request holds its address row and is about to take its session row, both idle; a purge runs then.

    A plain DELETE of idle rows took the session row first (it comes first
    in the table) and waited for the address row; the request then waited
    for the session row: a deadlock, one of them killed (a 503). The purge
    now skips rows someone holds.
    """
    import time

    from inclavare.kbs.storage.postgres import PostgresStorage

    store = PostgresStorage(postgres.create_database(f"purge{next(_dbs)}"), Keyring(Kek(bytes(32))))
    with store.transaction() as c:  # two idle keys, the session's first
        for key in ("session:s1", "address:10.0.0.1"):
            store._run(c, "INSERT INTO kbs_rates (key, tat) VALUES (?, 0.0)", (key,))
    purged: list[object] = []
    errors: list[Exception] = []

    def purge() -> None:
        try:
            purged.append(store.purge_rates(100.0))
        except Exception as exc:
            errors.append(exc)

    purger = threading.Thread(target=purge)
    with store.transaction() as c:  # the request, as SharedLimiter.check makes it
        assert store._take(c, "address:10.0.0.1", 100.0, 1.0, 5.0) is None
        purger.start()
        time.sleep(0.5)  # the purge now runs (or waits) while the request holds its address row
        assert store._take(c, "session:s1", 100.0, 1.0, 5.0) is None
    purger.join(10)
    store.close()
    assert errors == []
    assert purged == [1]  # the session row (the address row was held, so skipped)
