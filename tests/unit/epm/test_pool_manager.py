"""The pool manager against an instance that speaks the real protocol (fake_pool_instance.py):
fill, hand out once, refill, re-spawn, back off, stop; the claim socket; the metrics page."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.request

import pytest

from inclavare.enclave.pool import claim as claim_client
from inclavare.enclave.pool import wire
from inclavare.epm.config import EpmConfig
from inclavare.epm.pool.claims import ClaimServer
from inclavare.epm.pool.manager import PoolManager
from inclavare.epm.pool.metrics import MetricsServer
from inclavare.epm.pool.serve import Pool
from inclavare.epm.pool.template import Template, read_template

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_pool_instance.py")
NOBODY = 65534


def fake(mode: str = "ready") -> list[str]:
    return [sys.executable, FAKE, "--mode", mode]


def make_template(directory: str, size: int, manifest: bytes = b"[enclave]\n", runtime: str = "wasm") -> Template:
    """A bundle whose rootfs has a manifest and its signature, as the pool key reads them."""
    rootfs = os.path.join(directory, "rootfs")
    os.makedirs(os.path.join(rootfs, "app"), exist_ok=True)
    for name, data in (("m.toml", manifest), ("m.toml.sig", b"signature of " + manifest)):
        with open(os.path.join(rootfs, "app", name), "wb") as f:
            f.write(data)
    config = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
              "annotations": {"enclave.type": "software", "enclave.runtime.path": runtime,
                              "enclave.runtime.args": "manifest=/app/m.toml"}}  # fmt: skip
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return read_template(directory, size)


def wait_for(predicate, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def ready_pids(manager: PoolManager, key: str) -> list[int]:
    with manager._cond:
        return [i.pid for i in manager._ready[key]]


def gone(pid: int) -> bool:
    """Reaped (not merely a zombie): /proc has no such process."""
    return not os.path.exists(f"/proc/{pid}")


def ping(sock: socket.socket) -> int:
    wire.send(sock, {"op": "ping"})
    msg, _ = wire.expect(sock, "pong")
    return int(msg["pid"])  # type: ignore[call-overload]


@pytest.fixture
def template(tmp_path):
    return make_template(str(tmp_path / "hello"), 2)


@pytest.fixture
def managers():
    started: list[PoolManager] = []

    def make(templates, mode: str = "ready", **options) -> PoolManager:
        m = PoolManager(tuple(templates), command=fake(mode), **options)
        m.start()
        started.append(m)
        return m

    yield make
    for m in started:
        m.stop()


@pytest.fixture
def run_dir():
    path = tempfile.mkdtemp(prefix="pool-", dir="/tmp")
    yield os.path.join(path, "run")
    shutil.rmtree(path, ignore_errors=True)


def test_fills_to_size_and_hands_each_instance_out_once(managers, template):
    m = managers([template])
    wait_for(lambda: m.ready(template.key) == 2, what="two ready instances")
    first = m.claim(template.key)
    second = m.claim(template.key)
    assert first is not None
    assert second is not None
    assert first.pid != second.pid
    assert m.claim(template.key) is None  # size hits: the next is a miss until refilled
    for instance in (first, second):
        assert ping(instance.sock) == instance.pid  # the socket reaches that very process
        instance.close()
    wait_for(lambda: m.ready(template.key) == 2, what="the refill")
    assert not {first.pid, second.pid} & set(ready_pids(m, template.key))
    series = m.metrics.series[template.key]
    assert (series.hits, series.misses, series.ready, series.fill_count) == (2, 1, 2, 4)
    wait_for(lambda: gone(first.pid) and gone(second.pid), what="the handed-out instances to be reaped")


def test_refills_wait_until_claims_pause(managers, template):
    """A refill would compete with the container its claim is starting: it waits for a quiet spell."""
    m = managers([template], refill_delay=0.6)
    wait_for(lambda: m.ready(template.key) == 2, what="two ready instances")
    claimed = m.claim(template.key)
    assert claimed is not None
    claimed.close()
    started = time.monotonic()
    time.sleep(0.3)
    assert m.ready(template.key) == 1  # not yet: claims may still be coming
    again = m.claim(template.key)  # another claim: the quiet spell starts over
    assert again is not None
    again.close()
    wait_for(lambda: m.ready(template.key) >= 1, what="the refill")
    assert time.monotonic() - started >= 0.3 + 0.6 - 0.05


def test_unknown_key_is_a_miss(managers, template):
    m = managers([template])
    assert m.claim("ab" * 32) is None
    assert m.metrics.series["ab" * 32].misses == 1
    assert 'key="abababababababab",runtime="",bundle=""' in m.metrics.series["ab" * 32].labels


def test_an_idle_instance_that_dies_is_reaped_and_replaced(managers, template):
    m = managers([template])
    wait_for(lambda: m.ready(template.key) == 2)
    victim = ready_pids(m, template.key)[0]
    os.kill(victim, 9)
    wait_for(lambda: victim not in ready_pids(m, template.key) and m.ready(template.key) == 2, what="a re-spawn")
    wait_for(lambda: gone(victim), what="the dead instance to be reaped")


def test_a_dead_instance_is_never_handed_out(managers, template):
    m = managers([template], backoff=(30, 30))
    wait_for(lambda: m.ready(template.key) == 2)
    pids = ready_pids(m, template.key)
    with m._cond:  # the watcher cannot drop it before the claim looks
        os.kill(pids[0], 9)
        wait_for(lambda: os.waitid(os.P_PID, pids[0], os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None)
        got = m.claim(template.key)
    assert got is not None
    assert got.pid == pids[1]
    got.close()


def test_a_failing_template_backs_off_and_is_reported(managers, template, caplog):
    caplog.set_level(logging.WARNING, "inclavare.epm.pool")
    m = managers([template], mode="fail", backoff=(0.2, 0.4))
    time.sleep(1.5)
    failures = m.metrics.series[template.key].failures
    assert 2 <= failures <= 6, failures  # 0, 0.2, 0.6, 1.0, 1.4: backing off, not crash-looping
    lines = [r.getMessage() for r in caplog.records if "preparing an instance failed" in r.getMessage()]
    assert len(lines) == failures
    assert "next try in 0.2 s" in lines[0]
    assert "fake: the template's manifest is not signed" in lines[0]
    assert m.ready(template.key) == 0


@pytest.mark.parametrize(("mode", "reason"), [
    ("badkey", "the instance prepared pool key 0000000000000000"),
    ("exit", "the other side closed the connection"),
    ("hang", "was not ready within 0.5 s"),
])  # fmt: skip
def test_an_instance_that_does_not_become_ready_is_a_failure(managers, template, caplog, mode, reason):
    caplog.set_level(logging.WARNING, "inclavare.epm.pool")
    m = managers([template], mode=mode, prepare_timeout=0.5, backoff=(30, 30))
    wait_for(lambda: m.metrics.series[template.key].failures == 1)
    assert reason in caplog.text
    assert m.ready(template.key) == 0


def test_stop_kills_idle_instances_and_leaves_handed_out_ones(template):
    m = PoolManager((template,), command=fake())
    m.start()
    wait_for(lambda: m.ready(template.key) == 2)
    claimed = m.claim(template.key)
    assert claimed is not None
    assert ping(claimed.sock) == claimed.pid  # the claimant talks to it at once, as init does (the guest then
    wait_for(lambda: m.ready(template.key) == 2)  # drops PR_SET_PDEATHSIG: it is the container's)
    idle = ready_pids(m, template.key)
    m.stop()
    for pid in idle:
        assert gone(pid), f"idle instance {pid} outlived stop()"
    try:
        assert ping(claimed.sock) == claimed.pid  # alive, and still answering its container
    finally:
        claimed.close()  # EOF: it exits; it is this test's child to reap now
        claimed.proc.wait(10)


def test_size_zero_prepares_nothing(managers, tmp_path):
    t = make_template(str(tmp_path / "zero"), 0)
    m = managers([t])
    time.sleep(0.3)
    assert m.ready(t.key) == 0
    assert m.claim(t.key) is None


# The claim socket.


@pytest.fixture
def claims(managers, template, run_dir):
    m = managers([template])
    server = ClaimServer(os.path.join(run_dir, "pool.sock"), m)
    server.start()
    yield server
    server.stop()


def test_claim_over_the_socket(claims, template):
    import stat

    assert stat.S_IMODE(os.stat(claims.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(claims.path)).st_mode) == 0o700
    wait_for(lambda: claims.manager.ready(template.key) == 2)
    sock, why = claim_client.claim(claims.path, template.key)
    assert sock is not None, why
    with sock:
        pid = ping(sock)
        assert pid not in ready_pids(claims.manager, template.key)
    assert claim_client.claim(claims.path, "cd" * 32) == (None, "no instance for this enclave")


def test_a_non_root_claimant_is_refused(claims, template, caplog):
    wait_for(lambda: claims.manager.ready(template.key) == 2)
    run = os.path.dirname(claims.path)
    for directory in (os.path.dirname(run), run, claims.path):
        os.chmod(directory, 0o777)  # an administrator's mistake: the gate still holds
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nobody, then the client's own call
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sock, why = claim_client.claim(claims.path, template.key)
            os.write(w, (why if sock is None else "hit").encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    assert answer.startswith(claims.path), answer  # not "hit"
    assert claims.refused == 1
    assert f"(uid {NOBODY}): epm serves root only" in caplog.text
    assert claims.manager.ready(template.key) == 2  # nothing was taken


@pytest.mark.parametrize("request_", [
    {"op": "claim", "key": "AB" * 32},  # not lower-case hex
    {"op": "claim", "key": "ab"},
    {"op": "claim"},
    {"op": "take", "key": "ab" * 32},
])  # fmt: skip
def test_anything_but_a_claim_is_closed_unanswered(claims, request_):
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(5)
        s.connect(claims.path)
        wire.send(s, request_)
        with pytest.raises(wire.PoolProtocolError, match="closed the connection"):
            wire.recv(s)


def test_a_second_pool_on_a_live_socket_is_refused(claims):
    from inclavare.epm.errors import EpmError

    with pytest.raises(EpmError, match="another epm is serving on this socket"):
        ClaimServer(claims.path, claims.manager).start()


# The metrics page.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(address: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}  # fmt: skip


def test_pool_serves_claims_and_metrics(template, run_dir):
    address = f"127.0.0.1:{free_port()}"
    pool = Pool(EpmConfig(socket=os.path.join(run_dir, "pool.sock"), metrics_address=address, enclaves=(template,)),
                command=fake())  # fmt: skip
    pool.start()
    try:
        wait_for(lambda: pool.manager.ready(template.key) == 2)
        sock, why = claim_client.claim(pool.claims.path, template.key)
        assert sock is not None, why
        sock.close()
        claim_client.claim(pool.claims.path, "ef" * 32)
        page = scrape(address)
        labels = f'key="{template.short}",runtime="wasm",bundle="{template.bundle}"'
        assert page[f"epm_pool_hits_total{{{labels}}}"] == 1
        assert page[f"epm_pool_misses_total{{{labels}}}"] == 0
        assert page['epm_pool_misses_total{key="efefefefefefefef",runtime="",bundle=""}'] == 1
        assert page[f"epm_pool_ready{{{labels}}}"] in (1, 2)
        assert page[f"epm_pool_fill_seconds_count{{{labels}}}"] >= 2
        assert page[f'epm_pool_fill_seconds_bucket{{{labels},le="+Inf"}}'] >= 2
        assert page[f"epm_pool_fill_seconds_sum{{{labels}}}"] >= page[f"epm_pool_prepare_seconds_total{{{labels}}}"]
        assert page[f"epm_pool_fill_failures_total{{{labels}}}"] == 0
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://{address}/", timeout=5)
    finally:
        pool.stop()
    assert not os.path.exists(pool.claims.path)


def test_metrics_address_in_use_is_one_line(template):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        from inclavare.epm.errors import EpmError
        from inclavare.epm.pool.metrics import Metrics

        with pytest.raises(EpmError, match=rf"^{address}: cannot serve the pool's metrics: Address already in use$"):
            MetricsServer(address, Metrics((template,))).start()
