"""`make bench`: what containerd-shim-rune-v2 costs, against containerd's runc shim, in one run.

A private containerd 1.6 (its own root, state and sockets under a temporary
directory; no CRI) runs ``ctr run --rm IMAGE ID /bin/true`` through:

* shim-rune + rune:  ``--runtime io.containerd.rune.v2`` (build/containerd-shim-rune-v2, build/rune);
* runc shim + rune:  ``--runtime io.containerd.runc.v2 --runc-binary build/rune``;
* runc shim + runc:  ``--runtime io.containerd.runc.v2`` (Debian's runc).

The three are interleaved, round after round, so that the machine's drift
(±15-20 % on this 2-core VM) hits all alike; each ``ctr run`` is timed from
its start to its exit (shim start, Create, Start, the exit, Delete, the
shim's shutdown and containerd's cleanup). It prints each median and the
ratios, as the median of each round's own ratio (robust to the drift) and as
the ratio of the medians; the target is shim-rune + rune within 15 % of runc
shim + rune.

    python bench/shim.py [-n ROUNDS] [--rune PATH] [--shim PATH] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "localhost/inclavare-bench/busybox:latest"
NS = "bench"
CONFIG = """version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = {sock}
[ttrpc]
  address = {ttrpc}
[debug]
  address = {debug}
  level = "info"
[metrics]
  address = ""
"""


def image_archive(work: str) -> str:
    """An OCI archive of the busybox root filesystem the tests use, named for ctr import."""
    import tarfile

    from inclavare.image.build import build_image, tar_directory
    from inclavare.image.layout import Layout
    from inclavare.testing.bundles import build_rootfs

    layout = os.path.join(work, "layout")
    rootfs = build_rootfs(os.path.join(work, "rootfs"))
    build_image(layout, IMAGE, [(tar_directory(rootfs), "gzip")], {"Cmd": ["sh"], "WorkingDir": "/"})
    index = Layout(layout).index()
    for m in index["manifests"]:
        m.setdefault("annotations", {})["io.containerd.image.name"] = IMAGE
        m["platform"] = {"architecture": "amd64", "os": "linux"}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    archive = os.path.join(work, "image.tar")
    with tarfile.open(archive, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(layout, name), name)
    return archive


class Daemon:
    def __init__(self, base: str, bindir: str) -> None:
        self.base = base
        self.sock = os.path.join(base, "containerd.sock")
        q = json.dumps
        config = os.path.join(base, "config.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(root=q(f"{base}/root"), state=q(f"{base}/state"), sock=q(self.sock),
                                  ttrpc=q(self.sock + ".ttrpc"), debug=q(f"{base}/debug.sock")))  # fmt: skip
        env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}")
        self.log = open(os.path.join(base, "containerd.log"), "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["containerd", "--config", config], stdout=self.log, stderr=self.log, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        for _ in range(100):
            if self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise SystemExit(f"containerd did not come up (log: {base}/containerd.log)")

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(["ctr", "--address", self.sock, "--namespace", NS, *args], capture_output=True,
                              timeout=120, check=False)  # fmt: skip
        if check and proc.returncode != 0:
            raise SystemExit(f"ctr {' '.join(args)}: exit {proc.returncode}: {proc.stderr.decode().strip()}")
        return proc

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="rounds, each timing all three once (default 20)")
    ap.add_argument("--rune", default=os.path.join(ROOT, "build", "rune"))
    ap.add_argument("--shim", default=os.path.join(ROOT, "build", "containerd-shim-rune-v2"))
    ap.add_argument("--keep", help="work in DIR and keep it (default: a temporary directory, removed)")
    args = ap.parse_args()
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "runc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (make setup installs containerd and runc)")
    if os.geteuid() != 0:
        raise SystemExit("bench/shim.py runs containers: run it as root")
    base = args.keep or tempfile.mkdtemp(prefix="bench-shim-", dir="/var/tmp")
    os.makedirs(base, exist_ok=True)
    bindir = os.path.join(base, "bin")
    os.makedirs(bindir, exist_ok=True)
    for path in (args.rune, args.shim):
        link = os.path.join(bindir, os.path.basename(path))
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.path.abspath(path), link)
    daemon = Daemon(base, bindir)
    try:
        daemon.ctr("images", "import", image_archive(os.path.join(base, "image")))
        return measure(daemon, args.n, os.path.abspath(args.rune))
    finally:
        daemon.stop()
        if not args.keep:
            subprocess.run(["umount", "-R", "-l", base], capture_output=True, check=False)
            shutil.rmtree(base, ignore_errors=True)


def measure(daemon: Daemon, rounds: int, rune: str) -> int:
    setups = {
        "shim-rune + rune": ["--runtime", "io.containerd.rune.v2"],
        "runc shim + rune": ["--runtime", "io.containerd.runc.v2", "--runc-binary", rune],
        "runc shim + runc": ["--runtime", "io.containerd.runc.v2"],
    }
    times: dict[str, list[float]] = {name: [] for name in setups}
    for i in range(rounds + 1):  # round 0 warms the caches and is not counted
        for j, (name, opts) in enumerate(setups.items()):
            start = time.perf_counter()
            daemon.ctr("run", "--rm", *opts, IMAGE, f"b{i}-{j}", "/bin/true")
            if i:
                times[name].append((time.perf_counter() - start) * 1000)
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"ctr run --rm /bin/true, {rounds} interleaved rounds (ms)")
    print(f"{'':<20}{'median':>9}{'min':>9}{'max':>9}")
    for name, values in times.items():
        print(f"{name:<20}{med[name]:>9.1f}{min(values):>9.1f}{max(values):>9.1f}")
    shim, runc_rune, runc = (times[n] for n in setups)
    # The VM drifts by tens of percent within a minute: each round's three runs are back to back,
    # so the median of the rounds' own ratios follows the drift better than a ratio of medians.
    for label, a, b in (("shim-rune+rune / runc-shim+rune", shim, runc_rune),
                        ("shim-rune+rune / runc-shim+runc", shim, runc),
                        ("runc-shim+rune / runc-shim+runc", runc_rune, runc)):  # fmt: skip
        paired = statistics.median(x / y for x, y in zip(a, b, strict=True))
        target = "  (target <= 1.15)" if a is shim and b is runc_rune else ""
        print(f"{label}: {paired:.3f} per round, {statistics.median(a) / statistics.median(b):.3f} of medians{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
