"""Where one `rune run` spends its time (not a test; `make bench` prints it).

Three views of the same `run` of /bin/true on the harness's bench bundle:

1. wall time of the whole command, and of the bare interpreter (`-I -S -c pass`);
2. import time of rune's modules (``-X importtime``), summed;
3. the `rune run` process's own profile (cProfile; the forked container
   processes are not profiled, their work shows up as time spent waiting).

    python bench/profile_run.py [--bundle DIR] [--rune build/rune]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wall(cmd: list[str], n: int = 15) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def import_time(python: str, argv: list[str]) -> tuple[float, list[tuple[int, str]]]:
    code = (
        f"import sys; sys.path += [{os.path.join(ROOT, 'src')!r}]; "
        f"from inclavare.cli.rune._main import main; main({argv!r})"
    )
    out = subprocess.run([python, "-IS", "-X", "importtime", "-c", code], capture_output=True, text=True)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cum, name = line.replace("import time:", "").split("|")
        rows.append((int(self_us), name.strip()))
    return sum(us for us, _ in rows) / 1000, sorted(rows, reverse=True)[:10]


def profile(argv: list[str]) -> str:
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from inclavare.cli.rune._main import main

    prof = cProfile.Profile()
    prof.enable()
    main(argv)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="/var/tmp/oci-harness/bench/bundle")
    ap.add_argument("--rune", default=os.path.join(ROOT, "build", "rune"))
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.bundle, "config.json")):
        raise SystemExit(f"no bundle at {args.bundle}: run ../shared/harness/startup-bench.sh once first")
    state = tempfile.mkdtemp(prefix="rune-profile-")
    run = ["--root", state, "run", "--bundle", args.bundle]
    with open(args.rune) as f:
        python = f.readline()[2:].split()[0]  # the launcher's interpreter (its #! line)
    print(f"bare interpreter ({python} -I -S): {wall([python, '-IS', '-c', 'pass']):.1f} ms median")
    print(f"rune run /bin/true:            {wall([args.rune, *run, 'prof-wall']):.1f} ms median")
    total, top = import_time(python, [*run, "prof-import"])
    print(f"imports during a run:          {total:.1f} ms (self time, all modules); largest:")
    for us, name in top:
        print(f"    {us / 1000:6.2f} ms  {name}")
    print("profile of the rune process (children not included):")
    print(profile([*run, "prof-cprofile"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
