"""KBS throughput and latency: full attest-and-fetch round trips with software evidence (not a test).

Run: ``.venv/bin/python bench/kbs.py [--seconds 5] [--concurrency 1 4 16] [--workers N]
[--storage sqlite|postgres] [--client fast|library] [--baseline SRC] [--rounds N] [--rate-limit MODE ...]``.

A real ``inclavare kbs serve`` (uvicorn + starlette, SQLite by default or a
private PostgreSQL, ``--workers`` processes) and, in *other* processes, the
clients: ``min(concurrency, cores)`` forked load processes running
``concurrency`` threads between them. One round trip is what an enclave
does at start: a fresh P-256 TEE key, a new connection, ``POST /auth``,
software evidence over the challenge, ``POST /attest`` (evidence verified,
Rego appraisal, EAR token), ``GET /resource`` (Rego resource policy,
release record, JWE) and decryption. A second table times ``GET
/resource`` alone on attested sessions (one keep-alive connection each).

Reported per concurrency level: operations per second, p50/p99 latency,
and CPU per operation — the server's (every process of it, from
``/proc``) and the clients' (their own ``process_time``) — with each
side's share of the machine. Clients and server share this machine's
cores: the client's CPU is part of the budget, which is why the default
``--client fast`` speaks RCAR with a minimal HTTP/1.1 client (:class:`Http11`) and decrypts with
``cryptography`` (the protocol's own messages either way:
:class:`~inclavare.kbs.protocol.handshake.ClientHandshake`);
``--client library`` uses :class:`~inclavare.kbs.client.KbsClient`
(httpx, jwcrypto), what an enclave runs.

``--baseline SRC`` measures two brokers in the same run: one from ``SRC``
(the ``src`` directory of another checkout, e.g. ``/work/main/src``), with
that checkout's ``.venv`` interpreter if it has one (its own dependencies),
with the same ``--workers`` (one process if its CLI predates the option),
and this tree's, each its own database. They alternate
level by level, ``--rounds`` times, so the machine's drift (the VM is
shared) falls on both alike; rates are averaged over the rounds,
percentiles are the slowest round's. ``--rate-limit`` runs one broker of
this tree per mode the same way (``off``, ``replica``, ``shared``), with
limits too high to refuse anything. Anchor: trustee publishes no KBS
round-trip figures (docs/kbs.md, "Throughput").
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash  # noqa: E402
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap  # noqa: E402

from inclavare.attestation.attesters import SoftwareAttester  # noqa: E402
from inclavare.kbs.admin_client import KbsAdmin  # noqa: E402
from inclavare.kbs.client import KbsClient  # noqa: E402
from inclavare.kbs.jwe import TeeKey  # noqa: E402
from inclavare.kbs.protocol.handshake import ClientHandshake  # noqa: E402
from inclavare.testing.kbs import KbsProcess, PostgresServer, World  # noqa: E402

SECRET = os.urandom(64)
PATH = "default/key/bench"
_NEVER = "per_address = { rate = 1000000.0, burst = 1000000 }\nper_session = { rate = 1000000.0, burst = 1000000 }\n"
RATE_LIMITS = {
    "off": "\n[rate_limit]\nenabled = false\n",
    "replica": f"\n[rate_limit]\n{_NEVER}",
    "shared": f"\n[rate_limit]\nshared = true\n{_NEVER}",
}
TICK = os.sysconf("SC_CLK_TCK")


# -- the fast client ---------------------------------------------------------------
class Http11:
    """A minimal HTTP/1.1 client on one keep-alive connection: each request leaves in one ``send``.

    ``http.client`` sends a request's headers and its body in two writes
    (two segments for the broker to read) and parses each response's
    headers with the ``email`` package; on this shared machine that was a
    fifth of the clients' CPU. The broker answers with ``Content-Length``
    (never chunked), which is all this reads.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = f"{host}:{port}"
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", *(f"{k}: {v}" for k, v in headers.items())]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        status_line, *lines = self.buf[:end].decode("latin-1").split("\r\n")
        self.buf = self.buf[end + 4 :]
        fields = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "transfer-encoding" in fields:
            raise RuntimeError(f"{method} {path}: a chunked response (this client reads Content-Length only)")
        size = int(fields.get("content-length", "0"))
        while len(self.buf) < size:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        return int(status_line.split(" ", 2)[1]), fields, data

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        self.buf += chunk


class FastClient:
    """One attested session over one keep-alive connection (not thread-safe)."""

    def __init__(self, url: str, attester: SoftwareAttester) -> None:
        parts = urlsplit(url)
        self.conn = Http11(parts.hostname or "127.0.0.1", parts.port or 80)
        self.attester = attester
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cookie = ""

    def close(self) -> None:
        self.conn.close()

    def _call(self, method: str, path: str, body: object = None) -> tuple[dict[str, str], Any]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, fields, raw = self.conn.request(method, "/kbs/v0" + path, data, headers)
        doc = json.loads(raw)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {doc}")
        return fields, doc

    def attest(self) -> None:
        hs = ClientHandshake("software", TeeKey(self.key).public_jwk())
        fields, challenge = self._call("POST", "/auth", hs.request())
        self.cookie = fields.get("set-cookie", "").split(";", 1)[0]
        evidence = self.attester.collect_evidence(hs.challenge(challenge)).data
        hs.token(self._call("POST", "/attest", hs.attestation(evidence))[1])

    def get(self, path: str) -> bytes:
        return decrypt(self.key, self._call("GET", f"/resource/{path}")[1])


def decrypt(key: ec.EllipticCurvePrivateKey, jwe: dict[str, str]) -> bytes:
    """ECDH-ES+A256KW / A256GCM (RFC 7518 §4.6, §5.3): a third implementation, next to the broker's and jwcrypto."""
    header = json.loads(_unb64(jwe["protected"]))
    epk = header["epk"]
    x, y = (int.from_bytes(_unb64(epk[c])) for c in ("x", "y"))
    shared = key.exchange(ec.ECDH(), ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key())
    alg = b"ECDH-ES+A256KW"
    other = len(alg).to_bytes(4) + alg + bytes(8) + (256).to_bytes(4)  # AlgorithmID, empty PartyU/VInfo, 256 bits
    kek = ConcatKDFHash(algorithm=hashes.SHA256(), length=32, otherinfo=other).derive(shared)
    cek = aes_key_unwrap(kek, _unb64(jwe["encrypted_key"]))
    sealed = _unb64(jwe["ciphertext"]) + _unb64(jwe["tag"])
    return AESGCM(cek).decrypt(_unb64(jwe["iv"]), sealed, jwe["protected"].encode("ascii"))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def workloads(url: str, attester: SoftwareAttester, client: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """(one attest-and-fetch round trip, one GET on a session that the first call's result holds)."""
    if client == "library":

        def library_round_trip() -> KbsClient:
            c = KbsClient(url, attester, tee_key=TeeKey.generate())
            c.attest()
            assert c.get_resource(PATH) == SECRET
            return c

        return library_round_trip, lambda c: _check(c.get_resource(PATH))

    def fast_round_trip() -> FastClient:
        c = FastClient(url, attester)
        c.attest()
        assert c.get(PATH) == SECRET
        return c

    return fast_round_trip, lambda c: _check(c.get(PATH))


def _check(value: bytes) -> None:
    assert value == SECRET


# -- load processes ------------------------------------------------------------------
def load_process(
    url: str, world: World, client: str, kind: str, threads: int, seconds: float, go: Any, out: Any
) -> None:
    """Warm up (say so on ``out``), run ``threads`` clients from the moment ``go`` is set for ``seconds``,
    then put (latencies, CPU seconds) on ``out``."""
    round_trip, fetch = workloads(url, SoftwareAttester(world.identity, world.host_key), client)
    sessions = [round_trip() for _ in range(threads)]  # warm-up, and the GET table's attested sessions
    if kind == "round_trips":
        for s in sessions:
            s.close()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(session: Any) -> None:
        mine, failed = [], []
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                if kind == "round_trips":
                    round_trip().close()
                else:
                    fetch(session)
            except Exception as exc:  # counted and shown, never hidden in the rate
                failed.append(str(exc)[:120])
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    pool = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    out.put("ready")
    go.wait()
    cpu0 = time.process_time()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((latencies, time.process_time() - cpu0, errors))


def run(kbs: KbsProcess, world: World, client: str, kind: str, concurrency: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("fork")  # the world's keys are inherited, not pickled
    nproc = max(1, min(concurrency, os.cpu_count() or 1))
    shares = [concurrency // nproc + (i < concurrency % nproc) for i in range(nproc)]
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=load_process, args=(kbs.url, world, client, kind, n, seconds, go, out)) for n in shares]
    for p in procs:
        p.start()
    for _ in procs:
        assert out.get(timeout=60) == "ready"
    server0, t0 = tree_cpu(kbs.proc.pid), time.perf_counter()
    go.set()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    elapsed, server = time.perf_counter() - t0, tree_cpu(kbs.proc.pid) - server0
    for p in procs:
        p.join()
    latencies = [x for lat, _, _ in results for x in lat]
    client_cpu = sum(cpu for _, cpu, _ in results)
    errors = [e for _, _, errs in results for e in errs]
    n = max(1, len(latencies))
    return {
        "concurrency": concurrency,
        "count": n,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "per_second": n / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "server_cpu_ms": server / n * 1000,
        "client_cpu_ms": client_cpu / n * 1000,
        "server_util": server / elapsed,
        "client_util": client_cpu / elapsed,
    }


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant (the broker's worker processes)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples) or [float("nan")]
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- brokers -------------------------------------------------------------------------
def start(world: World, name: str, pg: PostgresServer | None, src: str | None, limits: str, workers: int) -> KbsProcess:
    """A broker from this tree, or from ``src`` (its own database either way)."""
    env, storage = {}, ""
    if pg is not None:
        env["KBS_BENCH_DSN"] = pg.create_database(name)
        storage = '[storage]\ntype = "postgres"\ndsn_env = "KBS_BENCH_DSN"'
    kek, args, python = True, ["--workers", str(workers)], sys.executable
    if src is not None:
        env["PYTHONPATH"] = os.path.abspath(src)
        kek = os.path.isdir(os.path.join(src, "inclavare", "kbs", "atrest"))  # before encryption at rest: no KEK
        python = baseline_python(src)
        if not _has_workers(src, python):
            args = []
    config = world.config(name, storage=storage, extra=limits, kek=kek)
    kbs = KbsProcess(config, env=env, log_level="warning", args=args, python=python)
    with KbsAdmin(kbs.url, world.admin_key) as admin:
        admin.set_resource(PATH, SECRET)
        admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        admin.add_from_enclave(world.manifest, world.sig, world.rootfs)
    return kbs


def baseline_python(src: str) -> str:
    """The baseline checkout's own interpreter (``<checkout>/.venv``), so it runs with *its* dependencies
    (e.g. uvicorn without httptools/uvloop, as main installs it); this one if it has none."""
    own = Path(src).resolve().parent / ".venv" / "bin" / "python"
    return str(own) if own.exists() else sys.executable


def _has_workers(src: str, python: str) -> bool:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    cmd = [python, "-m", "inclavare.cli.tool._main", "kbs", "serve", "--help"]
    return "--workers" in subprocess.run(cmd, capture_output=True, text=True, env=env).stdout


def bench(brokers: dict[str, KbsProcess], world: World, args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "storage": args.storage,
        "client": args.client,
        "workers": args.workers,
        "brokers": list(brokers),
    }
    for kind in ("round_trips", "fetch_only"):
        table: dict[str, list[dict[str, Any]]] = {name: [] for name in brokers}
        for c in args.concurrency:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in brokers}
            for _ in range(args.rounds if len(brokers) > 1 else 1):
                for name, kbs in brokers.items():
                    runs[name].append(run(kbs, world, args.client, kind, c, args.seconds))
            for name in brokers:
                table[name].append(merge(runs[name]))
        out[kind] = table
    return out


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs at one level as one: rates and CPU averaged, counts added, the slowest run's percentiles."""
    worst = max(runs, key=lambda r: r["p50_ms"])
    mean = {k: statistics.fmean(r[k] for r in runs) for k in ("per_second", "server_cpu_ms", "client_cpu_ms")}
    mean |= {k: statistics.fmean(r[k] for r in runs) for k in ("server_util", "client_util")}
    counts = {k: sum(r[k] for r in runs) for k in ("count", "errors")}
    return {**worst, **mean, **counts, "runs": len(runs)}


def show(results: dict[str, Any]) -> None:
    print(
        f"# KBS bench: {results['machine']}; storage {results['storage']}; client {results['client']}; "
        f"this tree with --workers {results['workers']}; load average {os.getloadavg()[0]:.1f} at the end"
    )
    for title, key in (
        ("full round trips (connect + auth + attest + get + decrypt)", "round_trips"),
        ("GET /resource on an attested session", "fetch_only"),
    ):
        print(
            f"\n{title}\n| broker | concurrency | per second | p50 ms | p99 ms | server CPU ms/op (util) "
            "| client CPU ms/op (util) | n | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, rows in results[key].items():
            for r in rows:
                print(
                    f"| {name} | {r['concurrency']} | {r['per_second']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                    f"| {r['server_cpu_ms']:.2f} ({r['server_util']:.0%}) "
                    f"| {r['client_cpu_ms']:.2f} ({r['client_util']:.0%}) | {r['count']} | {r['errors']} |"
                )
                if r["errors"]:
                    print(f"|   | first error: {r['first_error']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="this tree's worker processes")
    parser.add_argument("--storage", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--client", choices=("fast", "library"), default="fast")
    parser.add_argument("--baseline", metavar="SRC", help="also run a broker from this src directory, alternating")
    parser.add_argument("--rate-limit", nargs="+", choices=RATE_LIMITS, default=["off"], help="one broker per mode")
    parser.add_argument("--rounds", type=int, default=1, help="with several brokers: alternations per level")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    world = World.create(tempfile.mkdtemp(prefix="kbs-bench-"))
    pg = PostgresServer() if args.storage == "postgres" else None
    brokers: dict[str, KbsProcess] = {}
    try:
        if args.baseline:
            brokers["baseline"] = start(world, "baseline", pg, args.baseline, RATE_LIMITS["off"], args.workers)
        for mode in args.rate_limit:
            name = "this tree" if args.rate_limit == ["off"] else f"rate limit {mode}"
            brokers[name] = start(world, f"current-{mode}", pg, None, RATE_LIMITS[mode], args.workers)
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


if __name__ == "__main__":
    sys.exit(main())
