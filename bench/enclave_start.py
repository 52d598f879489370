"""`make bench`: start-up of a wasm enclave container, cold and with the
compiled-module cache, against a plain container — ratios from one run.

Each sample is a full `rune run` (create, start, the workload to its exit,
delete) of the sample WASI module, timed from outside. "cold" is
``cache=off`` (the module is compiled by Cranelift in `rune create`),
"cached" reuses the on-disk compiled module.

    python bench/enclave_start.py [-n N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

from inclavare.testing.bundles import base_config, build_rootfs, make_bundle  # noqa: E402
from inclavare.testing.enclaves import set_enclave, wasm_bundle  # noqa: E402

RUNE = os.path.join(ROOT, "build", "rune")


def timed_runs(state: str, bundle: str, n: int) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        proc = subprocess.run([RUNE, "--root", state, "run", "--bundle", bundle, f"b{os.getpid()}-{i}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        samples.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0:
            raise SystemExit(f"rune run failed: {proc.stderr.decode()}")
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rune-bench-") as tmp:
        state, cache = os.path.join(tmp, "state"), build_rootfs(os.path.join(tmp, "rootfs"))
        plain = make_bundle(os.path.join(tmp, "plain"), base_config(["true"]), cache)
        wasm, _ = wasm_bundle(os.path.join(tmp, "wasm"), ed25519.Ed25519PrivateKey.generate(), cache)
        set_enclave(wasm, args=["/app/hello.wasm", "exit=0"])
        cold, _ = wasm_bundle(os.path.join(tmp, "cold"), ed25519.Ed25519PrivateKey.generate(), cache)
        set_enclave(cold, "cache=off", args=["/app/hello.wasm", "exit=0"])
        timed_runs(state, wasm, 1)  # fill the module cache
        results = {}
        for _round in range(2):  # interleaved, so load drifts hit all three alike
            for name, bundle in (("plain", plain), ("wasm cached", wasm), ("wasm cold", cold)):
                results.setdefault(name, []).extend(timed_runs(state, bundle, args.n))
    med = {name: statistics.median(v) for name, v in results.items()}
    for name, value in med.items():
        print(f"{name:<12} median {value:7.1f} ms  p90 {sorted(results[name])[int(len(results[name]) * 0.9)]:7.1f} ms")
    print(f"wasm cached / plain: {med['wasm cached'] / med['plain']:.2f}")
    print(f"wasm cold / plain:   {med['wasm cold'] / med['plain']:.2f}")
    print(f"wasm cold / cached:  {med['wasm cold'] / med['wasm cached']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
