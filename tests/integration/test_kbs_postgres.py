"""Several KBS replicas on one PostgreSQL: any replica serves any step, and a SIGKILLed one loses nothing.

The test starts its own PostgreSQL (initdb + postgres on a unix socket in a
temporary directory, as the postgres user) and two `inclavare kbs serve`
processes on one database, sharing the token key.
"""

from __future__ import annotations

import itertools
import threading
import time

import httpx
import pytest

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.kbs.admin_client import KbsAdmin
from inclavare.kbs.client import KbsClient
from inclavare.kbs.jwe import TeeKey
from inclavare.kbs.protocol.handshake import ClientHandshake
from inclavare.testing.kbs import KbsProcess, World

ENV = "INCLAVARE_KBS_TEST_DSN"
STORAGE = f'[storage]\ntype = "postgres"\ndsn_env = "{ENV}"'
UNLIMITED = "\n[rate_limit]\nenabled = false\n"
VALUES = {f"default/key/k{i}": f"secret number {i} \x00\xff".encode() for i in range(5)}
_dbs = itertools.count()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-pg")))


@pytest.fixture
def replicas(postgres, world):
    env = {ENV: postgres.create_database(f"replicas{next(_dbs)}")}
    started = []
    try:
        for name in ("a", "b"):
            started.append(KbsProcess(world.config(name, storage=STORAGE, extra=UNLIMITED), env=env))
        with KbsAdmin(started[0].url, world.admin_key) as admin:
            for path, value in VALUES.items():
                admin.set_resource(path, value)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
        yield started, env
    finally:
        for k in started:
            k.stop()


@pytest.fixture
def attester(world) -> SoftwareAttester:
    return SoftwareAttester(world.identity, world.host_key)


def test_two_replicas_serve_one_client_alternately(replicas, world, attester):
    (a, b), _ = replicas
    with KbsAdmin(b.url, world.admin_key) as admin_b:
        assert sorted(admin_b.list_resources()) == sorted(VALUES)  # set through A, seen by B
    key = TeeKey.generate()
    hs = ClientHandshake("software", key.public_jwk())
    challenge = httpx.post(f"{a.url}/kbs/v0/auth", json=hs.request())  # Request -> A
    cookie = {"Cookie": f"kbs-session-id={challenge.cookies['kbs-session-id']}"}
    body = hs.attestation(attester.collect_evidence(hs.challenge(challenge.json())).data)
    attested = httpx.post(f"{b.url}/kbs/v0/attest", json=body, headers=cookie)  # Attestation -> B
    assert attested.status_code == 200, attested.text
    token = {"Authorization": "Bearer " + ClientHandshake.token(attested.json())}
    for i, (replica, auth) in enumerate([(a, cookie), (b, cookie), (a, token), (b, token)]):
        got = httpx.get(f"{replica.url}/kbs/v0/resource/default/key/k{i}", headers=auth)
        assert key.decrypt(got.json()) == VALUES[f"default/key/k{i}"]
    again = httpx.post(f"{a.url}/kbs/v0/attest", json=body, headers=cookie)  # the nonce was spent on B
    assert again.status_code == 401
    # a response lost on the way back from A: the retry with the same key on B is the same release
    retry = {**cookie, "Idempotency-Key": "lost-response-0001"}
    for replica in (a, b):
        got = httpx.get(f"{replica.url}/kbs/v0/resource/default/key/k0", headers=retry)
        assert key.decrypt(got.json()) == VALUES["default/key/k0"]
    with KbsAdmin(a.url, world.admin_key) as admin:
        releases = [r for r in admin.audit(limit=1000) if r["event"] == "release"]
    assert [(r["replica"], r["deliveries"]) for r in releases] == [("a", 1), ("b", 1), ("a", 1), ("b", 1), ("a", 2)]


def test_a_replica_killed_under_load_loses_nothing(replicas, world, attester):
    (a, b), env = replicas
    threads, per_thread = 4, 24
    done = [0]
    after_kill = [0]
    killed = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client_loop(tid: int) -> None:
        urls = [a.url, b.url] if tid % 2 == 0 else [b.url, a.url]
        try:
            for i in range(per_thread):
                if i % 6 == 0:
                    client = KbsClient(urls, attester, retries=6, backoff=0.05, timeout=5)
                path = f"default/key/k{i % len(VALUES)}"
                assert client.get_resource(path, request_key=f"thread{tid}-request{i}") == VALUES[path]
                with lock:
                    done[0] += 1
                    after_kill[0] += killed.is_set()
        except BaseException as exc:  # reported below, with the thread's name
            errors.append(exc)

    def killer() -> None:
        while done[0] < threads * per_thread // 3 and not errors:
            time.sleep(0.005)
        a.kill()  # SIGKILL, mid-load: requests are in flight on A
        killed.set()

    workers = [threading.Thread(target=client_loop, args=(t,), name=f"client{t}") for t in range(threads)]
    for w in [*workers, threading.Thread(target=killer)]:
        w.start()
    for w in workers:
        w.join(120)
    assert not errors, errors
    assert a.proc.returncode == -9
    assert done[0] == threads * per_thread
    assert 0 < after_kill[0] < done[0]  # the kill happened while clients were working

    with KbsAdmin(b.url, world.admin_key) as admin:
        audit = admin.audit(limit=1000)
        assert sorted(admin.list_resources()) == sorted(VALUES)  # nothing lost
    releases = [r for r in audit if r["event"] == "release"]
    keys = [r["request_key"] for r in releases]
    expected = {f"thread{t}-request{i}" for t in range(threads) for i in range(per_thread)}
    assert sorted(keys) == sorted(expected)  # one record per logical request: none lost, none twice
    assert {r["replica"] for r in releases} == {"a", "b"}  # A's committed records survived its death
    assert sum(r["deliveries"] for r in releases) >= len(expected)

    restarted = KbsProcess(a.config, env=env)  # A comes back and serves sessions it never saw
    try:
        with KbsClient([b.url], attester) as client:
            client.attest()
            client.urls = [restarted.url]
            assert client.get_resource("default/key/k0") == VALUES["default/key/k0"]
    finally:
        restarted.stop()
