"""`make bench`: a carrier build with a bundle-cache hit, against a miss and a plain container start.

One run, interleaved rounds, medians and ratios. The carrier turns the
sample WASI module's plain bundle into a signed enclave bundle, as
containerd-shim-rune-v2 does at Create, signed by a real `inclavare
signing-server` (loopback, plain HTTP and no auth: the original's set-up;
TLS would only make a miss dearer) with its MRSIGNER pinned, and with the
bundle caches of a real `inclavare epm serve` (its own process):

  hit     the second pod of the image: LoadCache x2, verification against the
          rootfs, the files written; no generation, measurement or signing
  miss    the cache emptied first (DeleteCache of cache0, outside the timing):
          lookups, generation, measurement, the signing server, SaveCache x3
  plain   `rune run` of a plain container running `true`, timed from outside

The carrier is timed in this process (the shim's case: the carrier library
is loaded once per shim), and as `inclavare carrier prepare` (a process per
build, interpreter and imports included).

    python bench/carrier.py [-n N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from inclavare.carrier import prepare  # noqa: E402
from inclavare.carrier.flow import OPTION_CONFIG  # noqa: E402
from inclavare.epm.client import EpmClient  # noqa: E402
from inclavare.testing.bundles import base_config, build_rootfs, make_bundle  # noqa: E402

RUNE = os.path.join(ROOT, "build", "rune")
INCLAVARE = [sys.executable, "-m", "inclavare.cli.tool._main"]
WASM = os.path.join(ROOT, "samples", "build", "hello.wasm")


def wait_for(what: str, ready, proc: subprocess.Popen) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)


def services(tmp: str) -> tuple[str, str, list[subprocess.Popen]]:
    """A signing server and an epm; the carrier config.toml naming both, and epm's socket."""
    key = os.path.join(tmp, "signer.pem")
    out = subprocess.run([*INCLAVARE, "signing-server", "keygen", "--algorithm", "ed25519", key], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    mrsigner = out.rsplit("MRSIGNER ", 1)[1].strip()
    ready = os.path.join(tmp, "signer.ready")
    signer = subprocess.Popen([*INCLAVARE, "signing-server", "serve", "--key", key, "--listen", "127.0.0.1:0",
                               "--insecure-http", "--no-auth", "--audit-log", os.path.join(tmp, "audit.jsonl"),
                               "--ready-file", ready], stderr=subprocess.DEVNULL)  # fmt: skip
    wait_for("the signing server", lambda: os.path.exists(ready) and os.path.getsize(ready) > 0, signer)
    with open(ready) as f:
        url = "http://" + f.read().strip()
    run = tempfile.mkdtemp(prefix="epm-", dir="/tmp")
    socket = os.path.join(run, "run", "epm.sock")
    epm_config = os.path.join(tmp, "epm.toml")
    with open(epm_config, "w") as f:
        f.write(f'root = "{tmp}/epm-root"\n[grpc]\naddress = "{socket}"\n')
    epm = subprocess.Popen([*INCLAVARE, "epm", "serve", "--config", epm_config], stderr=subprocess.DEVNULL)
    wait_for("epm", lambda: os.path.exists(socket), epm)
    config = os.path.join(tmp, "carrier.toml")
    with open(config, "w") as f:
        f.write(f'[signature]\nserver_address = "{url}"\nexpected_signer = "{mrsigner}"\n'
                f'[epm]\nsocket = "{socket}"\n')  # fmt: skip
    return config, socket, [signer, epm]


def carrier_bundle(directory: str, cache: str) -> str:
    cfg = base_config(["/app/hello.wasm", "exit=0"])
    cfg["process"]["env"].append("RUNE_CARRIER=wasm")
    bundle = make_bundle(directory, cfg, cache)
    os.makedirs(os.path.join(bundle, "rootfs", "app"), exist_ok=True)
    shutil.copy(WASM, os.path.join(bundle, "rootfs", "app", "hello.wasm"))
    with open(os.path.join(bundle, "config.json")) as f:
        pristine = f.read()
    with open(os.path.join(bundle, "config.json.pristine"), "w") as f:
        f.write(pristine)
    return bundle


def reset(bundle: str) -> None:
    """The bundle as containerd made it (config.json without the carrier's settings)."""
    shutil.copy(os.path.join(bundle, "config.json.pristine"), os.path.join(bundle, "config.json"))


def empty_cache(socket: str) -> None:
    with EpmClient(socket) as c:
        for entry in c.list("bundle-cache.wasm.cache0"):
            c.delete((entry.type, entry.subType, entry.ID))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15)
    args = ap.parse_args()
    if not os.path.exists(WASM):
        subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "samples")], check=True)
    with tempfile.TemporaryDirectory(prefix="carrier-bench-") as tmp:
        config, socket, procs = services(tmp)
        try:
            results = run(tmp, config, socket, args.n)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
    med = {name: statistics.median(v) for name, v in results.items()}
    for name, value in med.items():
        p90 = sorted(results[name])[int(len(results[name]) * 0.9)]
        print(f"{name:<22} median {value:7.1f} ms  p90 {p90:7.1f} ms")
    print(f"hit / plain start:        {med['carrier hit'] / med['plain rune run']:.2f}  (target <= 1.2)")
    print(f"miss / hit:               {med['carrier miss'] / med['carrier hit']:.2f}")
    print(f"process hit / plain:      {med['prepare process hit'] / med['plain rune run']:.2f}")
    print(f"process miss / hit:       {med['prepare process miss'] / med['prepare process hit']:.2f}")
    print(json.dumps({k: round(v, 2) for k, v in med.items()}))
    return 0


def run(tmp: str, config: str, socket: str, n: int) -> dict[str, list[float]]:
    cache = build_rootfs(os.path.join(tmp, "rootfs"))
    plain = make_bundle(os.path.join(tmp, "plain"), base_config(["true"]), cache)
    bundle = carrier_bundle(os.path.join(tmp, "carried"), cache)
    state = os.path.join(tmp, "state")
    options = {OPTION_CONFIG: config}
    counter = iter(range(1 << 30))

    def plain_run() -> None:
        proc = subprocess.run([RUNE, "--root", state, "run", "--bundle", plain, f"p{next(counter)}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"rune run failed: {proc.stderr.decode()}")

    def in_process() -> None:
        prepare(bundle, options=options)

    def a_process() -> None:
        proc = subprocess.run([*INCLAVARE, "carrier", "prepare", "--config", config, bundle],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"inclavare carrier prepare failed: {proc.stderr.decode()}")

    def sample(name: str, fn, miss: bool, results: dict[str, list[float]]) -> None:  # type: ignore[no-untyped-def]
        for _ in range(n):
            reset(bundle)
            if miss:
                empty_cache(socket)
            t0 = time.perf_counter()
            fn()
            results.setdefault(name, []).append((time.perf_counter() - t0) * 1000)

    reset(bundle)
    in_process()  # warm: imports, the node's caches, the first save
    results: dict[str, list[float]] = {}
    for _round in range(2):  # interleaved, so load drifts hit all alike
        sample("plain rune run", plain_run, False, results)
        sample("carrier miss", in_process, True, results)
        in_process()  # refill
        sample("carrier hit", in_process, False, results)
        sample("prepare process miss", a_process, True, results)
        a_process()
        sample("prepare process hit", a_process, False, results)
    return results


if __name__ == "__main__":
    sys.exit(main())
