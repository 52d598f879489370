"""KBS throughput and latency: full attest-and-fetch round trips with software evidence (not a test).

Run: ``.venv/bin/python bench/kbs.py [--seconds 5] [--concurrency 1 4 16] [--storage sqlite|postgres]
[--baseline SRC] [--rate-limit off|replica|shared ...] [--rounds N]``.

A real ``inclavare kbs serve`` process (uvicorn + starlette, SQLite by
default or a private PostgreSQL) on this machine; client threads in this
process. One round trip is what an enclave does at start: a fresh TEE key,
``POST /auth``, software evidence over the challenge, ``POST /attest``
(evidence verified, Rego appraisal, EAR token), ``GET /resource`` (Rego
resource policy, release record, JWE) and decryption. Reported per
concurrency level: round trips per second and latency percentiles
(p50/p90/p99). A second table times ``GET /resource`` alone on an attested
session. Clients and server share the machine's cores, so the numbers are
a floor for the server. Anchor: trustee publishes no KBS round-trip figures
(docs/kbs.md, "Performance (bench/kbs.py)").

``--baseline SRC`` measures two brokers in the same run: one from ``SRC``
(the ``src`` directory of another checkout, e.g. ``git worktree add
/tmp/base main``) and this tree's, each its own database, and alternates
between them level by level, ``--rounds`` times, so that the machine's
drift falls on both alike. The clients are this tree's for both (the wire
protocol is the same). A baseline without encryption at rest is started
without ``[storage.kek]``. ``--rate-limit`` runs one broker of this tree per
mode the same way: ``off``, ``replica`` (buckets in memory) or ``shared``
(buckets in PostgreSQL), with limits too high to refuse anything, so each
request pays the limiter's cost and nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from inclavare.attestation.attesters import SoftwareAttester  # noqa: E402
from inclavare.kbs.admin_client import KbsAdmin  # noqa: E402
from inclavare.kbs.client import KbsClient  # noqa: E402
from inclavare.kbs.jwe import TeeKey  # noqa: E402
from inclavare.testing.kbs import KbsProcess, PostgresServer, World  # noqa: E402

SECRET = os.urandom(64)
PATH = "default/key/bench"
_NEVER = "per_address = { rate = 1000000.0, burst = 1000000 }\nper_session = { rate = 1000000.0, burst = 1000000 }\n"
RATE_LIMITS = {
    "off": "\n[rate_limit]\nenabled = false\n",
    "replica": f"\n[rate_limit]\n{_NEVER}",
    "shared": f"\n[rate_limit]\nshared = true\n{_NEVER}",
}


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(threads: int, seconds: float, one: Callable[[], None]) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            one()
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    return {
        "concurrency": threads,
        "count": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--storage", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--tee-key", choices=("ec", "rsa"), default="ec")
    parser.add_argument("--baseline", metavar="SRC", help="also run a broker from this src directory, alternating")
    parser.add_argument("--rate-limit", nargs="+", choices=RATE_LIMITS, default=["off"], help="one broker per mode")
    parser.add_argument("--rounds", type=int, default=1, help="with several brokers: alternations per level")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="kbs-bench-")
    world = World.create(root)
    pg = PostgresServer() if args.storage == "postgres" else None
    brokers: dict[str, KbsProcess] = {}
    try:
        if args.baseline:
            brokers["baseline"] = start(world, "baseline", pg, args.baseline)
        for mode in args.rate_limit:
            name = "this tree" if args.rate_limit == ["off"] else f"rate limit {mode}"
            brokers[name] = start(world, f"current-{mode}", pg, None, RATE_LIMITS[mode])
        results = bench(brokers, world, args)
    finally:
        for kbs in brokers.values():
            kbs.stop()
        if pg is not None:
            pg.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        show(results)
    return 0


def start(world: World, name: str, pg: PostgresServer | None, src: str | None, limits: str = "") -> KbsProcess:
    """A broker from this tree, or from ``src`` (its own database either way)."""
    env, storage = {}, ""
    if pg is not None:
        env["KBS_BENCH_DSN"] = pg.create_database(name)
        storage = '[storage]\ntype = "postgres"\ndsn_env = "KBS_BENCH_DSN"'
    kek = True
    if src is not None:
        env["PYTHONPATH"] = os.path.abspath(src)
        kek = os.path.isdir(os.path.join(src, "inclavare", "kbs", "atrest"))  # before encryption at rest: no KEK
    config = world.config(name, storage=storage, extra=limits or RATE_LIMITS["off"], kek=kek)
    return KbsProcess(config, env=env, log_level="warning")


def bench(brokers: dict[str, KbsProcess], world: World, args: argparse.Namespace) -> dict[str, object]:
    attester = SoftwareAttester(world.identity, world.host_key)
    kty = "RSA" if args.tee_key == "rsa" else "EC"
    loads: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}
    for name, kbs in brokers.items():
        with KbsAdmin(kbs.url, world.admin_key) as admin:
            admin.set_resource(PATH, SECRET)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
            admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
        loads[name] = workloads(kbs.url, attester, kty)
        loads[name][0]()  # warm up: imports, policy compilation, connection setup
    out: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "storage": args.storage,
        "tee_key": args.tee_key,
        "brokers": list(brokers),
    }
    for index, key in enumerate(("round_trips", "fetch_only")):
        table: dict[str, list[dict[str, float]]] = {name: [] for name in brokers}
        for c in args.concurrency:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in brokers}
            for _ in range(args.rounds if len(brokers) > 1 else 1):
                for name in brokers:
                    runs[name].append(run(c, args.seconds, loads[name][index]))
            for name in brokers:
                table[name].append(merge(runs[name]))
        out[key] = table
    return out


def workloads(url: str, attester: SoftwareAttester, kty: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """(one attest-and-fetch round trip, one GET on this thread's attested session) against ``url``."""

    def round_trip() -> None:
        with KbsClient(url, attester, tee_key=TeeKey.generate(kty)) as client:
            client.attest()
            assert client.get_resource(PATH) == SECRET

    local = threading.local()

    def fetch_only() -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = KbsClient(url, attester, tee_key=TeeKey.generate(kty))
            client.attest()
        assert client.get_resource(PATH) == SECRET

    return round_trip, fetch_only


def merge(runs: list[dict[str, float]]) -> dict[str, float]:
    """Several runs at one level as one: rates averaged, counts added, the percentiles of the slowest run."""
    worst = max(runs, key=lambda r: r["p50_ms"])
    rate = statistics.fmean(r["per_second"] for r in runs)
    return {**worst, "per_second": rate, "count": sum(r["count"] for r in runs), "runs": len(runs)}


def show(results: dict[str, object]) -> None:
    print(f"# KBS bench: {results['machine']}; storage {results['storage']}; TEE key {results['tee_key']}")
    for title, key in (
        ("full round trips (auth + attest + get + decrypt)", "round_trips"),
        ("GET /resource on an attested session", "fetch_only"),
    ):
        print(f"\n{title}\n| broker | concurrency | per second | p50 ms | p90 ms | p99 ms | n |")
        print("|---|---|---|---|---|---|---|")
        for name, rows in results[key].items():  # type: ignore[attr-defined]
            for r in rows:
                print(
                    f"| {name} | {r['concurrency']} | {r['per_second']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} "
                    f"| {r['p99_ms']:.1f} | {r['count']} |"
                )


if __name__ == "__main__":
    sys.exit(main())
