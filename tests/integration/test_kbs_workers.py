"""``inclavare kbs serve --workers N``: worker processes on one socket and one SQLite database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.kbs.admin_client import KbsAdmin
from inclavare.kbs.client import KbsClient
from inclavare.kbs.jwe import TeeKey
from inclavare.kbs.protocol.handshake import ClientHandshake
from inclavare.testing.containers import wait_for
from inclavare.testing.kbs import KbsProcess, World
from inclavare.testing.pki import CertificateAuthority

SECRET = b"shared by every worker"
NO_LIMITS = "\n[rate_limit]\nenabled = false\n"


def workers_of(kbs: KbsProcess) -> list[int]:
    with open(f"/proc/{kbs.proc.pid}/task/{kbs.proc.pid}/children") as f:
        return sorted(int(pid) for pid in f.read().split())


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-workers")))


@pytest.fixture
def kbs(world):
    with KbsProcess(world.config("workers", extra=NO_LIMITS), args=["--workers", "2"]) as k:
        with KbsAdmin(k.url, world.admin_key) as admin:
            admin.set_resource("default/key/app", SECRET)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
        yield k


def test_two_workers_serve_round_trips(kbs, world):
    assert len(workers_of(kbs)) == 2
    attester = SoftwareAttester(world.identity, world.host_key)
    for _ in range(6):  # new connections: the kernel spreads them over the workers
        with KbsClient(kbs.url, attester) as client:
            assert client.get_resource("default/key/app") == SECRET


def test_a_nonce_used_on_two_workers_is_refused_on_the_second(kbs, world):
    """Worker A attests (B stopped, so A takes the connection); the same body then reaches B (A stopped): 401."""
    a, b = workers_of(kbs)
    attester = SoftwareAttester(world.identity, world.host_key)
    hs = ClientHandshake("software", TeeKey.generate().public_jwk())
    with _only(b):
        challenge = httpx.post(f"{kbs.url}/kbs/v0/auth", json=hs.request())
        cookie = {"Cookie": f"kbs-session-id={challenge.cookies['kbs-session-id']}"}
        body = json.dumps(hs.attestation(attester.collect_evidence(hs.challenge(challenge.json())).data))
        assert httpx.post(f"{kbs.url}/kbs/v0/attest", content=body, headers=cookie).status_code == 200
    with _only(a):
        replay = httpx.post(f"{kbs.url}/kbs/v0/attest", content=body, headers=cookie)
        assert replay.status_code == 401
        with KbsClient(kbs.url, attester) as client:  # worker B itself serves
            assert client.get_resource("default/key/app") == SECRET


def test_concurrent_replays_across_workers_yield_one_token(kbs, world):
    """The same /attest body on many fresh connections at once: one token, every other attempt 401."""
    attester = SoftwareAttester(world.identity, world.host_key)
    hs = ClientHandshake("software", TeeKey.generate().public_jwk())
    challenge = httpx.post(f"{kbs.url}/kbs/v0/auth", json=hs.request())
    cookie = {"Cookie": f"kbs-session-id={challenge.cookies['kbs-session-id']}"}
    body = json.dumps(hs.attestation(attester.collect_evidence(hs.challenge(challenge.json())).data))
    statuses: list[int] = []

    def attest() -> None:
        with httpx.Client() as c:  # a connection of its own: either worker may take it
            statuses.append(c.post(f"{kbs.url}/kbs/v0/attest", content=body, headers=cookie).status_code)

    threads = [threading.Thread(target=attest) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [401] * 11


@contextlib.contextmanager
def _only(stopped: int) -> Iterator[None]:
    """Stop one worker so the other accepts every new connection meanwhile."""
    os.kill(stopped, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(stopped, signal.SIGCONT)


def test_sighup_reaches_every_worker(kbs):
    before = kbs.log().count("storage.kek reloaded")
    kbs.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: kbs.log().count("storage.kek reloaded") == before + 2, "both workers to reload the KEK", 20)
    assert kbs.proc.poll() is None


def test_a_worker_that_dies_is_replaced_and_sigterm_stops_them_all(kbs, world):
    first = workers_of(kbs)
    os.kill(first[0], signal.SIGKILL)
    wait_for(lambda: len(workers_of(kbs)) == 2 and workers_of(kbs) != first, "a replacement worker", 10)
    attester = SoftwareAttester(world.identity, world.host_key)
    for _ in range(4):
        with KbsClient(kbs.url, attester) as client:
            assert client.get_resource("default/key/app") == SECRET
    now = workers_of(kbs)
    kbs.proc.send_signal(signal.SIGTERM)
    assert kbs.proc.wait(15) == 0
    for pid in now:
        assert not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z"


def test_workers_serve_https(world):
    ca = CertificateAuthority("workers CA")
    cert, key = ca.write_server(f"{world.root}", "127.0.0.1")
    ca_file = f"{world.root}/workers-ca.pem"
    with open(ca_file, "wb") as f:
        f.write(ca.pem)
    path = world.config("tls-workers", extra=NO_LIMITS)
    with open(path) as f:
        text = f.read().replace("[http]\n", f'[http]\ntls_cert = "{cert}"\ntls_key = "{key}"\n', 1)
    with open(path, "w") as f:
        f.write(text)
    with KbsProcess(path, args=["--workers", "2"]) as k:
        url = k.url.replace("http://", "https://")
        with KbsAdmin(url, world.admin_key, verify=ca_file) as admin:
            admin.set_resource("default/key/app", SECRET)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
        attester = SoftwareAttester(world.identity, world.host_key)
        for _ in range(4):
            with KbsClient(url, attester, verify=ca_file) as client:
                assert client.get_resource("default/key/app") == SECRET


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[storage]\npath = ", '[storage]\npath = ":memory:"\n# '), 'storage.path: ":memory:" is private to one'),
        (("[token]\nsigning_key = ", "[token]\n# "), "token.signing_key: --workers needs a token key they share"),
    ],
)
def test_what_workers_cannot_share_is_refused_in_one_line(world, edit, message):
    path = world.config("refused", extra=NO_LIMITS)
    with open(path) as f:
        text = f.read().replace(*edit)
    with open(path, "w") as f:
        f.write(text)
    cmd = [sys.executable, "-m", "inclavare.cli.tool._main", "kbs", "serve", "--config", path, "--workers", "2"]
    result = subprocess.run(cmd, capture_output=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_workers_flag_must_be_positive(world):
    cmd = [sys.executable, "-m", "inclavare.cli.tool._main", "kbs", "serve", "--config", world.config("zero")]
    result = subprocess.run([*cmd, "--workers", "0"], capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == ["inclavare kbs: zero.toml: --workers: must be at least 1, not 0"]
