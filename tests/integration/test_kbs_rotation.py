"""A KEK rotation while brokers serve: clients keep attesting and fetching, an admin keeps writing, no request fails.

The operator's procedure (docs/kbs.md, "Rotating the KEK"), against real
``inclavare kbs serve`` processes on SQLite and on two PostgreSQL replicas:
give every broker the new key with the old one as ``previous`` (SIGHUP),
run ``inclavare kbs rotate-kek``, drop the old key (SIGHUP). Clients do
not retry (``retries=0``): a single refused request fails the test.
"""

from __future__ import annotations

import base64
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from inclavare.attestation.attesters import SoftwareAttester
from inclavare.kbs.admin_client import KbsAdmin
from inclavare.kbs.atrest import kek_id
from inclavare.kbs.client import KbsClient
from inclavare.testing.containers import wait_for
from inclavare.testing.kbs import PG_BIN, KbsProcess, World

ENV = "INCLAVARE_KBS_ROTATION_DSN"
UNLIMITED = "\n[rate_limit]\nenabled = false\n"
VALUES = {f"default/key/k{i}": f"rotation secret {i} ".encode() + os.urandom(16) for i in range(12)}
_dbs = itertools.count()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "inclavare.cli.tool._main", "kbs", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def new_kek(world: World, name: str) -> str:
    path = f"{world.root}/{name}"
    assert cli("keygen", "--kek", path).returncode == 0
    return path


def key_id(path: str) -> str:
    return kek_id(base64.b64decode(Path(path).read_text()))


def configure(world: World, name: str, storage: str, current: str, *previous: str) -> str:
    """``<name>.toml`` with [storage.kek] file = current and one [[storage.kek.previous]] per old key."""
    path = world.config(name, storage=storage, extra=UNLIMITED, kek=False)
    kek = f'[storage.kek]\nfile = "{current}"\n' + "".join(
        f'[[storage.kek.previous]]\nfile = "{p}"\n' for p in previous
    )
    text = Path(path).read_text().replace("[[admin.keys]]", kek + "\n[[admin.keys]]", 1)
    Path(path).write_text(text)
    return path


def reload(brokers: list[KbsProcess], times: int) -> None:
    """SIGHUP every broker and wait until each has logged its ``times``-th reload."""
    for k in brokers:
        k.proc.send_signal(signal.SIGHUP)
    for k in brokers:
        wait_for(lambda k=k: k.log().count("storage.kek reloaded") >= times, f"{k.config} to reload", 20)


class Traffic:
    """Clients attesting and fetching, and an admin writing, in threads, until stopped; every outcome counted."""

    def __init__(self, urls: list[str], world: World) -> None:
        self.urls, self.world = urls, world
        self.stop = threading.Event()
        self.fetched, self.written = [0], {}
        self.errors: list[str] = []
        self.lock = threading.Lock()
        attester = SoftwareAttester(world.identity, world.host_key)
        self.threads = [threading.Thread(target=self.fetch, args=(attester, t)) for t in range(3)]
        self.threads.append(threading.Thread(target=self.write))
        for t in self.threads:
            t.start()

    def fetch(self, attester: SoftwareAttester, tid: int) -> None:
        paths = itertools.cycle(sorted(VALUES))
        while not self.stop.is_set():
            try:
                with KbsClient(self.urls[tid % len(self.urls) :] + self.urls, attester, retries=0) as client:
                    for _ in range(15):
                        path = next(paths)
                        assert client.get_resource(path) == VALUES[path], path
                        with self.lock:
                            self.fetched[0] += 1
            except Exception as exc:  # reported by the test, with what failed
                self.errors.append(f"fetch: {type(exc).__name__}: {exc}")
                return

    def write(self) -> None:
        with KbsAdmin(self.urls[0], self.world.admin_key) as admin:
            for i in itertools.count():
                if self.stop.wait(0.05):
                    return
                path, value = f"default/live/w{i}", f"written during the rotation {i}".encode()
                try:
                    admin.set_resource(path, value)
                except Exception as exc:
                    self.errors.append(f"write {path}: {type(exc).__name__}: {exc}")
                    return
                self.written[path] = value

    def count(self) -> int:
        with self.lock:
            return self.fetched[0]

    def keep_going(self, seconds: float = 0.5) -> None:
        """Let some requests through, and check that they did go through."""
        before = self.count()
        wait_for(lambda: self.count() >= before + 20 or self.errors, "fetches to continue", 30)
        time.sleep(seconds)
        assert not self.errors, self.errors

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not self.errors, self.errors


def rotate_while_serving(world: World, brokers: list[KbsProcess], config: str, old: str, new: str, env=None):
    with KbsAdmin(brokers[0].url, world.admin_key) as admin:
        for path, value in VALUES.items():
            admin.set_resource(path, value)
        admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
    traffic = Traffic([k.url for k in brokers], world)
    try:
        traffic.keep_going()
        storage = Path(config).read_text().split("[storage.kek]")[0].split("[storage]")[1]
        configure(world, Path(config).stem, "[storage]" + storage.rstrip(), new, old)
        reload(brokers, 1)  # 1. every broker holds both keys; the database still writes under the old one
        traffic.keep_going()
        rotated = cli("rotate-kek", "--config", config, "--batch", "5", env=env)  # 2. the switch and the re-wrap
        assert rotated.returncode == 0, rotated.stderr
        assert rotated.stdout.splitlines()[0].startswith(
            f"rotate-kek: KEK {key_id(new)} is active (was {key_id(old)}); "
        )
        traffic.keep_going()
        configure(world, Path(config).stem, "[storage]" + storage.rstrip(), new)
        reload(brokers, 2)  # 3. the old key is gone from every broker
        traffic.keep_going()
    finally:
        traffic.finish()
    assert traffic.count() > 100
    assert len(traffic.written) > 5
    with KbsAdmin(brokers[-1].url, world.admin_key) as admin:
        assert set(traffic.written) <= set(admin.list_resources())
    for k in brokers:
        assert "not reloaded" not in k.log()
    return traffic


def test_sqlite_broker_serves_throughout_a_rotation(tmp_path):
    world = World.create(str(tmp_path / "world"))
    old, new = world.kek, new_kek(world, "kek.new")
    config = configure(world, "solo", "", old)
    with KbsProcess(config) as kbs:
        traffic = rotate_while_serving(world, [kbs], config, old, new)
    db = sqlite3.connect(f"{world.root}/solo.db")
    assert db.execute("SELECT DISTINCT kek_id FROM kbs_secrets").fetchall() == [(key_id(new),)]
    assert db.execute("SELECT id FROM kbs_keks WHERE active = 1").fetchall() == [(key_id(new),)]
    db.close()
    dump = b"".join(p.read_bytes() for p in Path(world.root).glob("solo.db*"))
    secrets = [*VALUES.values(), *traffic.written.values()]
    assert [v for v in secrets if v in dump] == []
    refused = cli("serve", "--config", configure(world, "solo", "", old))  # the old key can no longer open it
    assert refused.returncode == 1
    assert refused.stderr.startswith("inclavare kbs: solo.toml: storage.kek: wrong key: this database's key-")


def test_two_postgres_replicas_serve_throughout_a_rotation(tmp_path, postgres):
    world = World.create(str(tmp_path / "world"))
    old, new = world.kek, new_kek(world, "kek.new")
    env = {ENV: postgres.create_database(f"rotation{next(_dbs)}")}
    storage = f'[storage]\ntype = "postgres"\ndsn_env = "{ENV}"'
    configs = [configure(world, name, storage, old) for name in ("a", "b")]
    brokers: list[KbsProcess] = []
    try:
        brokers = [KbsProcess(c, env=env) for c in configs]
        # both replicas read config a.toml's [storage.kek] on reload: one file, as a shared secret mount would be
        for k in brokers[1:]:
            Path(k.config).unlink()
            Path(k.config).symlink_to(configs[0])
        traffic = rotate_while_serving(world, brokers, configs[0], old, new, env)
    finally:
        for k in brokers:
            k.stop()
    dump = subprocess.run([f"{PG_BIN}/pg_dump", "--dbname", env[ENV]], capture_output=True, check=True).stdout
    assert b"kbs_secrets" in dump
    for value in [*VALUES.values(), *traffic.written.values()]:
        assert value not in dump
        assert value.hex().encode() not in dump  # bytea as pg_dump prints it
    import psycopg

    with psycopg.connect(env[ENV]) as db:
        assert db.execute("SELECT DISTINCT kek_id FROM kbs_secrets").fetchall() == [(key_id(new),)]
        assert db.execute("SELECT id FROM kbs_keks WHERE active = 1").fetchall() == [(key_id(new),)]
