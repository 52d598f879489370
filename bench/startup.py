"""`make bench`: rune's start-up latency against runc and crun, in one run.

Runs the harness's startup-bench.sh (../shared/harness) for rune, runc and
crun back to back, then prints each runtime's medians and rune's ratios to
runc and crun for `run` and for the full lifecycle (create, start, state
until stopped, delete). The machine is noisy (±15-20 % between runs, per
the harness's BASELINE.md): only ratios measured in the same run mean
anything.

    python bench/startup.py [--harness DIR] [--rune PATH] [-n N] [--rounds R] [--also NAME=PATH ...]

``--also base=/tmp/rune-base/build/rune`` adds another runtime to the same
interleaved rounds (an A/B of two rune builds against runc and crun).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

LINE = re.compile(r"^(run|lifecycle)\s+N=\d+\s+min\s+([\d.]+) ms\s+median\s+([\d.]+) ms")


def bench(harness: str, runtime: str, n: int) -> dict[str, float]:
    out = subprocess.run(["./startup-bench.sh", runtime, str(n)], cwd=harness, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"startup-bench.sh {runtime} failed")
    medians = {}
    for line in out.stdout.splitlines():
        m = LINE.match(line)
        if m:
            medians[m.group(1)] = float(m.group(3))
    return medians


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--harness", default=_default_harness(root))
    ap.add_argument("--rune", default=os.path.join(root, "build", "rune"))
    ap.add_argument("-n", type=int, default=10, help="timed iterations per mode and round (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="rune/runc/crun rounds, interleaved (default 3)")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH", help="another runtime in the rounds")
    args = ap.parse_args()
    if not os.path.isdir(args.harness):
        raise SystemExit(f"harness not found at {args.harness} (see README.md)")
    runtimes = {"rune": args.rune, "runc": shutil.which("runc") or "runc", "crun": shutil.which("crun") or "crun"}
    for extra in args.also:
        name, sep, path = extra.partition("=")
        if not sep or not name or not path or name in runtimes:
            raise SystemExit(f"--also {extra!r}: want a new NAME=PATH")
        runtimes[name] = path
    samples: dict[str, dict[str, list[float]]] = {name: {"run": [], "lifecycle": []} for name in runtimes}
    for _ in range(args.rounds):
        for name, path in runtimes.items():
            for mode, value in bench(args.harness, path, args.n).items():
                samples[name][mode].append(value)
    print(f"{'runtime':<8}{'run median ms':>16}{'lifecycle median ms':>22}")
    med = {name: {m: statistics.median(v) for m, v in modes.items()} for name, modes in samples.items()}
    for name, modes in med.items():
        print(f"{name:<8}{modes['run']:>16.1f}{modes['lifecycle']:>22.1f}")
    for name in [n for n in runtimes if n not in ("runc", "crun")]:
        for other in ("runc", "crun"):
            for mode in ("run", "lifecycle"):
                print(f"{name}/{other} {mode}: {med[name][mode] / med[other][mode]:.2f}")
    return 0


def _default_harness(root: str) -> str:
    """../shared/harness of the checkout; of the main checkout for a git worktree
    (whose .git is a file naming the main repository's .git/worktrees/<name>)."""
    here = os.path.join(root, "..", "shared", "harness")
    git = os.path.join(root, ".git")
    if os.path.isdir(here) or not os.path.isfile(git):
        return here
    with open(git) as f:
        gitdir = f.read().partition("gitdir:")[2].strip()
    main = os.path.dirname(os.path.dirname(os.path.dirname(gitdir)))  # <main>/.git/worktrees/<name>
    return os.path.join(main, "..", "shared", "harness")


if __name__ == "__main__":
    sys.exit(main())
