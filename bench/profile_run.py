"""Where one `rune run` spends its time (not a test; `make bench` prints it).

Three views of the same `run` of /bin/true on the harness's bench bundle:

1. wall time of the whole command, and of the bare interpreter (`-I -S -c pass`);
2. import time of rune's modules (``-X importtime``), summed;
3. the `rune run` process's own profile (cProfile; the forked container
   processes are not profiled, their work shows up as time spent waiting);
4. a timeline of the same run across its processes (main, intermediate,
   init): entry and exit of the spawn protocol's steps, in ms from the
   interpreter's start (its modules are imported before the clock's first
   mark here; view 2 has their cost).

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


# (module, function) pairs the timeline marks; a step that is not there is skipped.
STEPS = (
    ("inclavare.spec.load", "load_bundle"), ("inclavare.runtime.run", "create"), ("inclavare.runtime.run", "start"),
    ("inclavare.runtime.run", "_wait"), ("inclavare.runtime.run", "delete"), ("inclavare.runtime.create", "_cgroups"),
    ("inclavare.runtime.create", "_save"), ("inclavare.runtime.create", "build_plan"),
    ("inclavare.runtime.create", "_join_cgroups"), ("inclavare.runtime.create", "_handshake"),
    ("inclavare.runtime.process.init", "build_container"), ("inclavare.runtime.process.init", "_joined"),
    ("inclavare.runtime.process.workload", "prepare"), ("inclavare.runtime.process.workload", "wait_for_start"),
    ("inclavare.runtime.rootfs.mounts", "mount_all"), ("inclavare.runtime.rootfs.mounts", "pivot"),
    ("inclavare.runtime.start", "_await_exec"), ("inclavare.runtime.delete", "destroy"),
)  # fmt: skip

DRIVER = """
import importlib, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
def mark(what):
    os.write(fd, f"{time.perf_counter() * 1000:.3f} {os.getpid()} {what}\\n".encode())
mark("interpreter up")
sys.path.insert(0, sys.argv[2])
try:
    from inclavare.runtime.cgroups import warm
    warm.start()  # as the CLI does, before the imports
except ImportError:
    pass  # a build from before runtime/cgroups/warm.py
def wrap(mod, name):
    fn = getattr(mod, name)
    def marked(*args, **kw):
        mark(name + " >")
        try:
            return fn(*args, **kw)
        finally:
            mark(name + " <")
    setattr(mod, name, marked)
for modname, name in STEPS:
    mod = importlib.import_module(modname)
    if hasattr(mod, name):
        wrap(mod, name)
real_fork = os.fork
def fork():
    pid = real_fork()
    mark("forked" if pid == 0 else f"fork -> {pid}")
    return pid
os.fork = fork
from inclavare.cli.rune._main import main
mark("imported")
code = main(sys.argv[3:])
mark("returned")
os._exit(code)
"""


def timeline(python: str, argv: list[str]) -> list[str]:
    with tempfile.NamedTemporaryFile("r", prefix="rune-timeline-") as marks:
        code = f"STEPS = {STEPS!r}\n" + DRIVER
        t0 = time.perf_counter() * 1000
        subprocess.run([python, "-IS", "-c", code, marks.name, os.path.join(ROOT, "src"), *argv], check=False)
        end = time.perf_counter() * 1000 - t0
        rows, procs = [], {}
        for line in marks.read().splitlines():
            stamp, pid, what = line.split(" ", 2)
            depth = procs.setdefault(pid, len(procs))
            rows.append(f"{float(stamp) - t0:8.2f}  {'    ' * depth}{what}")
    return [*rows, f"{end:8.2f}  exited"]


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
    print("timeline (ms from spawn; indented: intermediate, then init):")
    print("\n".join(timeline(python, [*run, "prof-timeline"])))
    print("profile of the rune process (children not included):")
    print(profile([*run, "prof-cprofile"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
