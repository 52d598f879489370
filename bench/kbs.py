"""KBS throughput and latency: full attest-and-fetch round trips with software evidence (not a test).

Run: ``.venv/bin/python bench/kbs.py [--seconds 5] [--concurrency 1 4 16] [--storage sqlite|postgres]``.

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

from inclavare.kbs.attester import SoftwareEvidenceProvider  # noqa: E402

from inclavare.kbs.admin_client import KbsAdmin  # noqa: E402
from inclavare.kbs.client import KbsClient  # noqa: E402
from inclavare.kbs.jwe import TeeKey  # noqa: E402
from inclavare.testing.kbs import KbsProcess, PostgresServer, World  # noqa: E402

SECRET = os.urandom(64)
PATH = "default/key/bench"


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
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="kbs-bench-")
    world = World.create(root)
    pg = PostgresServer() if args.storage == "postgres" else None
    env, storage = {}, ""
    if pg is not None:
        env = {"KBS_BENCH_DSN": pg.create_database("bench")}
        storage = '[storage]\ntype = "postgres"\ndsn_env = "KBS_BENCH_DSN"'
    kbs = KbsProcess(
        world.config("bench", storage=storage, extra="\n[rate_limit]\nenabled = false\n"), env=env, log_level="warning"
    )
    try:
        results = bench(kbs, world, args)
    finally:
        kbs.stop()
        if pg is not None:
            pg.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        show(results)
    return 0


def bench(kbs: KbsProcess, world: World, args: argparse.Namespace) -> dict[str, object]:
    with KbsAdmin(kbs.url, world.admin_key) as admin:
        admin.set_resource(PATH, SECRET)
        admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
    provider = SoftwareEvidenceProvider(world.identity, world.host_key)
    kty = "RSA" if args.tee_key == "rsa" else "EC"

    def round_trip() -> None:
        with KbsClient(kbs.url, provider, tee_key=TeeKey.generate(kty)) as client:  # type: ignore[arg-type]
            client.attest()
            assert client.get_resource(PATH) == SECRET

    local = threading.local()

    def fetch_only() -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = KbsClient(kbs.url, provider, tee_key=TeeKey.generate(kty))  # type: ignore[arg-type]
            client.attest()
        assert client.get_resource(PATH) == SECRET

    round_trip()  # warm up: imports, policy compilation, connection setup
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "storage": args.storage,
        "tee_key": args.tee_key,
        "round_trips": [run(c, args.seconds, round_trip) for c in args.concurrency],
        "fetch_only": [run(c, args.seconds, fetch_only) for c in args.concurrency],
    }


def show(results: dict[str, object]) -> None:
    print(f"# KBS bench: {results['machine']}; storage {results['storage']}; TEE key {results['tee_key']}")
    for title, key in (
        ("full round trips (auth + attest + get + decrypt)", "round_trips"),
        ("GET /resource on an attested session", "fetch_only"),
    ):
        print(f"\n{title}\n| concurrency | per second | p50 ms | p90 ms | p99 ms | n |\n|---|---|---|---|---|---|")
        for r in results[key]:  # type: ignore[attr-defined]
            print(
                f"| {r['concurrency']} | {r['per_second']:.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} "
                f"| {r['p99_ms']:.1f} | {r['count']} |"
            )


if __name__ == "__main__":
    sys.exit(main())
