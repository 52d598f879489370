"""Operating the broker: host keys added and removed through one replica take effect on every replica.

Two ``inclavare kbs serve`` processes on one private PostgreSQL
(inclavare.testing.kbs.PostgresServer); the host key is trusted through
replica A with ``inclavare kbs-client host-key add`` (the JSON ``inclavare
enclave host-key`` prints), and an enclave signing with it is accepted by
both, without a restart; ``host-key remove`` makes both refuse. The time each
replica took is printed (``-s``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives import serialization

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.enclave.identity import HostKey
from inclavare.kbs.client import KbsClient, KbsClientError
from inclavare.testing.kbs import KbsProcess, World

ENV = "INCLAVARE_KBS_TEST_DSN"
STORAGE = f'[storage]\ntype = "postgres"\ndsn_env = "{ENV}"'
UNLIMITED = "\n[rate_limit]\nenabled = false\n"
PEM = serialization.Encoding.PEM
NEW_HOST = HostKey.from_seed(bytes(range(100, 132)))


def tool(*args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "inclavare.cli.tool._main", *args]
    return subprocess.run(cmd, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-ops")))


@pytest.fixture
def replicas(postgres, world):
    env = {ENV: postgres.create_database("ops")}
    started: list[KbsProcess] = []
    try:
        for name in ("a", "b"):
            started.append(KbsProcess(world.config(name, storage=STORAGE, extra=UNLIMITED), env=env))
        a = started[0]
        admin = ["kbs-client", "--url", a.url, "--admin-key", f"{world.root}/admin.pem"]
        for args in (
            ("set-resource-policy", "--builtin", "approved-executables", "--scope", "default/*"),
            ("set-resource", "--path", "default/key/db", "--value", "s3cret"),
            ("reference-value", "add-from-enclave", world.manifest, "--rootfs", world.rootfs),
        ):
            result = tool(*admin, *args)
            assert result.returncode == 0, result.stderr
        yield started
    finally:
        for k in started:
            k.stop()


def attests(url: str, world: World) -> bool:
    """One fresh handshake with NEW_HOST's evidence: True if the replica issued a token, False on a 401."""
    with KbsClient([url], SoftwareAttester(world.identity, NEW_HOST), retries=0) as client:
        try:
            client.get_resource("default/key/db")
        except KbsClientError as exc:
            if exc.status != 401:
                raise
            return False
    return True


def until(url: str, world: World, want: bool, since: float, limit: float = 10.0) -> float:
    while attests(url, world) is not want:
        assert time.monotonic() - since < limit, f"{url} still {'refuses' if want else 'accepts'} after {limit} s"
        time.sleep(0.02)
    return time.monotonic() - since


def test_a_host_key_added_through_one_replica_is_trusted_by_both(replicas, world, tmp_path):
    a, b = replicas
    key_file = tmp_path / "new-host-key.pem"
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_file.write_bytes(NEW_HOST.private_key().private_bytes(PEM, pkcs8, serialization.NoEncryption()))
    key_file.chmod(0o600)
    printed = tool("enclave", "host-key", "--path", str(key_file), "--format", "json")
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "host-key.json").write_bytes(printed.stdout)
    assert not attests(a.url, world)
    assert not attests(b.url, world)

    admin = ["kbs-client", "--url", a.url, "--admin-key", f"{world.root}/admin.pem"]
    start = time.monotonic()
    added = tool(*admin, "host-key", "add", str(tmp_path / "host-key.json"))
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)[0]["id"] == NEW_HOST.key_id.hex()
    on_a, on_b = until(a.url, world, True, start), until(b.url, world, True, start)  # no restart, within 10 s
    listed = json.loads(tool(*admin, "host-key", "list").stdout)
    assert [i["id"] for i in listed] == [NEW_HOST.key_id.hex()]

    start = time.monotonic()
    removed = tool(*admin, "host-key", "remove", NEW_HOST.key_id.hex())
    assert json.loads(removed.stdout) == {"deleted": True}, removed.stderr
    off_a, off_b = until(a.url, world, False, start), until(b.url, world, False, start)
    print(f"\nhost key trusted: replica a {on_a:.3f} s, b {on_b:.3f} s; distrusted: a {off_a:.3f} s, b {off_b:.3f} s")
