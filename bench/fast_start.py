"""`make bench`: the fast-start table (issue #12), every ratio measured in one run.

Three groups, sampled in the same interleaved rounds so that the load of a
shared machine drifts over all of them alike:

  enclave   a full `rune run` (create, start, the workload to its exit,
            delete), timed from outside, of: a plain container running
            `true`; the sample wasm and native enclaves warm (a pool hit:
            an instance epm prepared ahead, docs/epm.md "The warm pool"),
            cached (unpooled; wasm with its compiled-module cache, native
            has none) and cold (wasm with ``cache=off``: Cranelift in
            `rune create`)
  runc/crun rune, runc and crun through the harness's startup-bench.sh
            (../shared/harness), `run` and the full lifecycle, as
            bench/startup.py runs them: a call per runtime every four
            enclave iterations, in rotating order; a row's N is its calls
  carrier   a carrier build (bench/carrier.py's set-up: a real signing
            server and epm's bundle caches) with a cache hit and a miss,
            in this process as the shim runs it, against the plain start;
            and a hit as `inclavare carrier prepare` ("carrier hit proc":
            a process per build, interpreter and imports included)

Every rune of the enclave group runs with a node configuration (``rune
--config``) naming the pool's claim socket, as on a node with a pool; the
"cached" and "cold" bundles are signed by another key, so their claims miss.
Before each sample the pool is full again (refills are not timed and do not
compete with a timed start), and each warm sample must show as one more hit
in epm's metrics: a miss is counted and left out. The signing server's audit
log must not grow during a carrier hit.

    python bench/fast_start.py [-n N] [--rounds R] [--harness DIR] [--rune PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "src"), HERE]

import carrier as carrier_bench  # noqa: E402  (bench/carrier.py)
import startup  # noqa: E402  (bench/startup.py)
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

from inclavare.carrier import prepare  # noqa: E402
from inclavare.carrier.flow import OPTION_CONFIG  # noqa: E402
from inclavare.testing.bundles import base_config, build_rootfs, make_bundle  # noqa: E402
from inclavare.testing.enclaves import native_bundle, set_enclave, wasm_bundle  # noqa: E402
from inclavare.testing.epm import PoolServer  # noqa: E402

# (row, baseline row, target ratio or None): the targets.
TARGETS = [
    ("wasm warm", "plain", 1.3), ("wasm cached", "plain", 2.0), ("wasm cold", "plain", None),
    ("native warm", "plain", 1.3), ("native cached", "plain", 2.0),
    ("rune run", "runc run", 1.0), ("rune lifecycle", "runc lifecycle", 1.3), ("rune run", "crun run", 2.5),
    ("carrier hit", "plain", 1.2), ("carrier hit proc", "plain", None), ("carrier miss", "plain", None),
]  # fmt: skip
BASELINES = ("plain", "runc run", "runc lifecycle", "crun run", "crun lifecycle")
HARNESS_EVERY = 4  # enclave iterations between two startup-bench.sh calls per runtime
HARNESS_LINE = re.compile(r"^(run|lifecycle)\s+N=\d+\s+min\s+[\d.]+ ms\s+median\s+([\d.]+) ms\s+p90\s+([\d.]+) ms")


Samples = dict[str, list[float]]


class Rune:
    """`rune run` of one bundle, timed from outside; ids unique in the run."""

    def __init__(self, rune: str, config: str, state: str, env: dict[str, str]) -> None:
        self.cmd, self.state, self.env, self.count = [rune, "--config", config, "--root", state], state, env, 0

    def run(self, bundle: str) -> float:
        self.count += 1
        t0 = time.perf_counter()
        proc = subprocess.run([*self.cmd, "run", "--bundle", bundle, f"fs{os.getpid()}-{self.count}"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=self.env)  # fmt: skip
        elapsed = (time.perf_counter() - t0) * 1000
        if proc.returncode != 0:
            raise SystemExit(f"rune run --bundle {bundle} failed ({proc.returncode}): {proc.stderr.decode().strip()}")
        return elapsed

    def delete_all(self) -> None:
        """Containers an interrupted sample left behind."""
        if not os.path.isdir(self.state):
            return
        ids = subprocess.run([*self.cmd, "list", "-q"], capture_output=True, text=True).stdout.split()
        for cid in ids:
            subprocess.run([*self.cmd, "delete", "--force", cid], capture_output=True)


class Carrier:
    """bench/carrier.py's carrier bundle and services; a hit and a miss, in this process."""

    def __init__(self, tmp: str) -> None:
        self.tmp, self.audit = tmp, os.path.join(tmp, "audit.jsonl")
        self.config, self.socket, self.procs = carrier_bench.services(tmp)

    def setup(self, rootfs: str) -> None:
        self.bundle = carrier_bench.carrier_bundle(os.path.join(self.tmp, "carried"), rootfs)
        self.build()  # imports, the node's caches, the first save

    def build(self) -> float:
        carrier_bench.reset(self.bundle)
        t0 = time.perf_counter()
        prepare(self.bundle, options={OPTION_CONFIG: self.config})
        return (time.perf_counter() - t0) * 1000

    def build_process(self) -> float:
        """`inclavare carrier prepare`: a process per build, interpreter and imports included."""
        carrier_bench.reset(self.bundle)
        t0 = time.perf_counter()
        proc = subprocess.run([*carrier_bench.INCLAVARE, "carrier", "prepare", "--config", self.config, self.bundle],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"inclavare carrier prepare failed: {proc.stderr.decode().strip()}")
        return (time.perf_counter() - t0) * 1000

    def signatures(self) -> int:
        with open(self.audit) as f:
            return sum(1 for _ in f)

    def miss(self) -> float:
        carrier_bench.empty_cache(self.socket)
        return self.build()

    def hit(self, build) -> float | None:  # type: ignore[no-untyped-def]
        """A build from the cache (None: it went to the signing server after all)."""
        before = self.signatures()
        elapsed = build()
        return elapsed if self.signatures() == before else None

    def stop(self) -> None:
        stop_all(self.procs)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stop_children() -> None:
    """Whatever this process started and still runs (a set-up that failed half-way)."""
    pids = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            pids |= {int(p) for p in f.read().split()}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def harness_round(harness: str, runtimes: dict[str, str], n: int, samples: dict[str, list[float]]) -> None:
    """One startup-bench.sh call per runtime: its medians and p90s join the samples as round values."""
    for name, path in runtimes.items():
        out = subprocess.run(["./startup-bench.sh", path, str(n)], cwd=harness, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"startup-bench.sh {name} failed: {(out.stdout + out.stderr).strip()[-2000:]}")
        for line in out.stdout.splitlines():
            if m := HARNESS_LINE.match(line):
                samples.setdefault(f"{name} {m.group(1)}", []).append(float(m.group(2)))
                samples.setdefault(f"{name} {m.group(1)} p90", []).append(float(m.group(3)))


def enclave_bundles(tmp: str, rootfs: str) -> tuple[dict[str, str], dict[str, str]]:
    """The bundles of the enclave group, and the pool's templates (runtime -> template bundle)."""
    wasm_args, native_args = ["/app/hello.wasm", "exit=0"], ["/app/hello", "exit=0"]
    pooled, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    bundles = {"plain": make_bundle(os.path.join(tmp, "plain"), base_config(["true"]), rootfs)}
    templates = {"wasm": wasm_bundle(os.path.join(tmp, "tpl-wasm"), pooled, rootfs)[0],
                 "native": native_bundle(os.path.join(tmp, "tpl-native"), pooled, rootfs)[0]}  # fmt: skip
    for runtime, template in templates.items():  # the container's bundle: the template's image, another copy
        bundles[f"{runtime} warm"] = shutil.copytree(template, os.path.join(tmp, f"{runtime}-warm"), symlinks=True)
    bundles["wasm cached"] = wasm_bundle(os.path.join(tmp, "wasm-cached"), other, rootfs)[0]
    bundles["wasm cold"] = wasm_bundle(os.path.join(tmp, "wasm-cold"), other, rootfs)[0]
    set_enclave(bundles["wasm cold"], "cache=off")
    bundles["native cached"] = native_bundle(os.path.join(tmp, "native-cached"), other, rootfs)[0]
    for name, bundle in bundles.items():
        if name != "plain":
            _set_args(bundle, wasm_args if name.startswith("wasm") else native_args)
    return bundles, templates


def _set_args(bundle: str, args: list[str]) -> None:
    import json

    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = args
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def enclave_samples(pool: PoolServer, rune: Rune, bundles: dict[str, str], samples: Samples,
                    misses: dict[str, int]) -> None:  # fmt: skip
    """One `rune run` of each bundle, each from a full pool; a warm one that was not a hit is left out."""
    for name, bundle in bundles.items():
        pool.wait_ready(pool.full, 120)  # no refill runs during a timed start
        runtime = name.split()[0]
        hits = pool.metric("epm_pool_hits_total", runtime) if name.endswith("warm") else 0
        elapsed = rune.run(bundle)
        if name.endswith("warm") and pool.metric("epm_pool_hits_total", runtime) != hits + 1:
            misses[name] += 1
            continue
        samples.setdefault(name, []).append(elapsed)


def carrier_samples(carrier: Carrier, samples: Samples, misses: dict[str, int]) -> None:
    """A miss (which fills the cache again), then a hit in this process and one as a process."""
    samples.setdefault("carrier miss", []).append(carrier.miss())
    for name, build in (("carrier hit", carrier.build), ("carrier hit proc", carrier.build_process)):
        hit = carrier.hit(build)
        if hit is None:
            misses[name] += 1
        else:
            samples.setdefault(name, []).append(hit)


def measure(args: argparse.Namespace, tmp: str, cleanup: list[Callable[[], None]]) -> tuple[Samples, dict[str, int]]:
    rootfs = build_rootfs(os.path.join(tmp, "rootfs"))
    bundles, templates = enclave_bundles(tmp, rootfs)
    env = {**os.environ, "INCLAVARE_WASM_CACHE": os.path.join(tmp, "wasm-cache")}
    pool = PoolServer(list(templates.values()), os.path.join(tmp, "epm"), args.pool_size, env)
    cleanup.append(pool.stop)
    pool.start(120)
    carrier = Carrier(tmp)
    cleanup.append(carrier.stop)
    carrier.setup(rootfs)
    rune = Rune(args.rune, pool.node_config(os.path.join(tmp, "rune.toml")), os.path.join(tmp, "state"), env)
    cleanup.append(rune.delete_all)
    runtimes = {"rune": args.rune, "runc": shutil.which("runc") or "runc", "crun": shutil.which("crun") or "crun"}
    pool.wait_ready(pool.full, 120)
    for name in ("plain", "wasm cached", "native cached"):  # warm-up: page cache, the compiled module
        rune.run(bundles[name])
    samples: Samples = {}
    misses = dict.fromkeys(("wasm warm", "native warm", "carrier hit", "carrier hit proc"), 0)
    order, calls = list(runtimes.items()), 0
    for _round in range(args.rounds):
        for i in range(args.n):
            enclave_samples(pool, rune, bundles, samples, misses)
            carrier_samples(carrier, samples, misses)
            if (i + 1) % HARNESS_EVERY == 0 or i == args.n - 1:
                first = calls % len(order)  # rotated, so no runtime always follows the enclave samples
                harness_round(args.harness, dict(order[first:] + order[:first]), args.harness_n, samples)
                calls += 1
    return samples, misses


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def table(samples: dict[str, list[float]], misses: dict[str, int], heading: str) -> str:
    """Baselines first, then each target's row: median, p90, the ratio of medians, PASS/MISS."""
    med = {name: statistics.median(v) for name, v in samples.items() if not name.endswith(" p90")}

    def times(name: str) -> str:
        # a harness row's samples are round medians: its p90 is the worst round's own p90
        tail = max(samples[f"{name} p90"]) if f"{name} p90" in samples else p90(samples[name])
        return f"{name:<17}{len(samples[name]):>4}{med[name]:>11.1f}{tail:>9.1f}"

    rows = [heading, f"{'case':<17}{'N':>4}{'median ms':>11}{'p90 ms':>9}  {'vs':<15}{'ratio':>6}{'target':>8}  result"]
    rows += [times(name) for name in BASELINES if name in med]
    for name, base, target in TARGETS:
        if name not in med or base not in med:
            rows.append(f"{name:<17}   0  (no sample: {misses.get(name, 0)} missed)")
            continue
        ratio = med[name] / med[base]
        goal = "" if target is None else f"<= {target:.1f}"
        verdict = "" if target is None else ("PASS" if ratio <= target else "MISS")
        extra = f" ({misses[name]} not hits, left out)" if misses.get(name) else ""
        rows.append(f"{times(name)}  {base:<15}{ratio:>6.2f}{goal:>8}  {verdict}{extra}")
    rows.append("runc/crun/rune rows: N = startup-bench.sh calls, each the median of --harness-n runs")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=8, help="samples of each enclave case per round (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--harness", default=startup._default_harness(ROOT))
    ap.add_argument("--harness-n", type=int, default=10, help="startup-bench.sh iterations per call (default 10)")
    ap.add_argument("--rune", default=os.path.join(ROOT, "build", "rune"))
    ap.add_argument("--pool-size", type=int, default=2, help="instances per pool entry (default 2)")
    args = ap.parse_args()
    if not os.path.isdir(args.harness):
        raise SystemExit(f"harness not found at {args.harness} (see README.md)")
    if not os.path.exists(os.path.join(ROOT, "samples", "build", "hello-native")):
        subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "samples")], check=True)
    # SIGTERM unwinds like ^C, so the finally below stops epm and the containers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = os.getloadavg()
    cleanup: list[Callable[[], None]] = []
    tmp = tempfile.mkdtemp(prefix="fast-start-", dir="/tmp")  # 0700, root's: the node config's directory
    try:
        samples, misses = measure(args, tmp, cleanup)
    except KeyboardInterrupt:
        print("fast_start: interrupted; epm, its instances and the containers are stopped", file=sys.stderr)
        return 130
    finally:
        for step in reversed(cleanup):
            step()
        _stop_children()
        shutil.rmtree(tmp, ignore_errors=True)
    heading = (
        f"fast start: one run, {args.rounds} interleaved rounds; load average {load[0]:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end ({os.cpu_count()} CPUs)"
    )
    print(table(samples, misses, heading))
    return 0


if __name__ == "__main__":
    sys.exit(main())
