"""``/metrics`` under ``kbs serve --workers 2``: whichever worker answers a scrape, it counts every worker's requests.

Each worker used to keep its own registry: a scrape saw the requests of the
worker that happened to accept it. Stopping one worker (SIGSTOP) makes the
other take every new connection meanwhile, so who serves what is known.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from inclavare.kbs.jwe import TeeKey
from inclavare.kbs.protocol.handshake import ClientHandshake
from inclavare.testing.containers import wait_for
from inclavare.testing.kbs import KbsProcess, World


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-workers-metrics")))


@pytest.fixture
def kbs(world):
    with KbsProcess(world.config("metrics", extra="\n[rate_limit]\nenabled = false\n"), args=["--workers", "2"]) as k:
        yield k


def workers_of(kbs: KbsProcess) -> list[int]:
    with open(f"/proc/{kbs.proc.pid}/task/{kbs.proc.pid}/children") as f:
        return sorted(int(pid) for pid in f.read().split())


@contextlib.contextmanager
def served_by(kbs: KbsProcess, worker: int, world: World) -> Iterator[None]:
    """Every new connection meanwhile goes to ``worker``: the other ones are stopped — each
    outside a write transaction, or ``worker``'s writes would wait on the writers' queue that
    the stopped one holds (storage/sqlite.py), and the request would time out."""
    others = [pid for pid in workers_of(kbs) if pid != worker]
    queue = os.open(os.path.join(world.root, "metrics.db-writers"), os.O_RDWR | os.O_CLOEXEC)
    try:
        for pid in others:
            _stop_idle(pid, queue)
        yield
    finally:
        os.close(queue)
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def _stop_idle(pid: int, queue: int) -> None:
    for _ in range(200):
        os.kill(pid, signal.SIGSTOP)
        try:
            fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it: it stopped outside one
            fcntl.flock(queue, fcntl.LOCK_UN)
            return
        except BlockingIOError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
    raise AssertionError(f"worker {pid} kept the writers' queue")


def auth(kbs: KbsProcess) -> None:
    hs = ClientHandshake("software", TeeKey.generate().public_jwk())
    assert httpx.post(f"{kbs.url}/kbs/v0/auth", json=hs.request()).status_code == 200  # a new connection


def scrape(kbs: KbsProcess) -> dict[str, float]:
    text = httpx.get(f"{kbs.url}/metrics").text
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines() if line and line[0] != "#")
    }


def test_a_scrape_counts_the_requests_of_every_worker(kbs, world):
    a, b = workers_of(kbs)
    with served_by(kbs, a, world):
        for _ in range(3):
            auth(kbs)
    with served_by(kbs, b, world):
        for _ in range(2):
            auth(kbs)
    for worker in (a, b):
        with served_by(kbs, worker, world):
            seen = scrape(kbs)
        assert seen["kbs_auth_requests_total"] == 5
        assert seen['kbs_http_requests_total{method="POST",route="/kbs/v0/auth",status="200"}'] == 5
        assert seen["kbs_http_active_connections"] == 0
        assert [name for name in seen if name.startswith("kbs_build_info")] == ['kbs_build_info{version="0.1.0"}']


def test_the_counts_of_a_worker_that_died_stay(kbs, world):
    a = workers_of(kbs)[0]
    with served_by(kbs, a, world):
        for _ in range(4):
            auth(kbs)
    os.kill(a, signal.SIGKILL)
    wait_for(lambda: len(workers_of(kbs)) == 2 and a not in workers_of(kbs), "a replacement worker", 10)
    for worker in workers_of(kbs):
        with served_by(kbs, worker, world):
            assert scrape(kbs)["kbs_auth_requests_total"] == 4
