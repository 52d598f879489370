"""Secret provisioning at container start: the tunnel (TLS ends in the container,
rune relays bytes) against the relay it replaced (rune create spoke HTTPS to the
broker itself), in one run.

Each sample is a full `rune run` (create, start, the workload to its exit,
delete) of the sample wasm enclave, timed from outside, against one KBS over
TLS: "plain" runs it without secrets, "provisioned" attests and fetches one
secret first, which the workload prints. The attest-and-fetch cost of a start
is provisioned minus plain, for each rune. The rune before the tunnel is
checked out from git (``--before REV``; default: the commit before
enclave/provision/tunnel.py appeared) into a temporary worktree and run with
the same interpreter; its bundle is the same enclave without the ``[kbs]``
table (which it does not know) and with the broker's CA given on the host.

    python bench/provision.py [-n N] [--before REV]

Rounds run one sample of each of the four in turn, and the attest-and-fetch
cost is the median of per-round differences, so that the load of a shared
machine, which drifts over seconds, cancels out as far as it can.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

from inclavare.enclave.identity import HostKey  # noqa: E402
from inclavare.kbs.admin_client import KbsAdmin  # noqa: E402
from inclavare.testing import kbs as kbs_testing  # noqa: E402
from inclavare.testing.bundles import build_rootfs  # noqa: E402
from inclavare.testing.enclaves import pin_broker, set_enclave, wasm_bundle  # noqa: E402
from inclavare.testing.pki import CertificateAuthority  # noqa: E402

RUNE = os.path.join(ROOT, "build", "rune")
SECRET = b"a provisioned secret"
READ = ["/app/hello.wasm", "read=/run/secrets/greeting"]


def before_rune(tmp: str, rev: str) -> tuple[str, str]:
    """(launcher, worktree) of rune at `rev`, as tools/mklauncher.py writes build/rune."""
    tree = os.path.join(tmp, "before")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", tree, rev], check=True)
    launcher = os.path.join(tmp, "rune-before")
    with open(launcher, "w") as f:
        f.write(f"#!{sys.executable} -IS\nimport sys\n"
                f"sys.path += [{os.path.join(tree, 'src')!r}, {sysconfig.get_paths()['purelib']!r}]\n"
                "from inclavare.cli.rune._main import main\nsys.exit(main())\n")  # fmt: skip
    os.chmod(launcher, 0o755)
    return launcher, tree


def default_before() -> str:
    tunnel = "src/inclavare/enclave/provision/tunnel.py"
    log = ["git", "-C", ROOT, "log", "--diff-filter=A", "--format=%H", "--", tunnel]
    commits = subprocess.run(log, capture_output=True, text=True, check=True).stdout.split()
    if not commits:
        raise SystemExit("no commit adds enclave/provision/tunnel.py: give --before REV")
    return commits[-1] + "^"


def broker(tmp: str) -> tuple[kbs_testing.World, kbs_testing.KbsProcess, str, CertificateAuthority, str]:
    world = kbs_testing.World.create(os.path.join(tmp, "kbs"))
    ca = CertificateAuthority("bench CA")
    cert, key = ca.write_server(world.root, "127.0.0.1")
    ca_file = os.path.join(world.root, "ca.pem")
    with open(ca_file, "wb") as f:
        f.write(ca.pem)
    with open(f"{world.root}/machine.pub.pem", "wb") as f:
        f.write(HostKey.load_or_create().public_pem)
    config = world.config("bench", extra="\n[rate_limit]\nenabled = false\n")
    with open(config) as f:
        text = f.read().replace(f"{world.root}/host-key.pub.pem", f"{world.root}/machine.pub.pem")
    with open(config, "w") as f:
        f.write(text.replace("[http]\n", f'[http]\ntls_cert = "{cert}"\ntls_key = "{key}"\n', 1))
    process = kbs_testing.KbsProcess(config, log_level="warning")
    url = process.url.replace("http://", "https://")
    with KbsAdmin(url, world.admin_key, verify=ca_file) as admin:
        admin.set_resource("default/secret/greeting", SECRET)
        admin.set_resource_policy(builtin="approved-executables", scope="default/*")
    return world, process, url, ca, ca_file


def approve(world: kbs_testing.World, url: str, ca_file: str, bundle: str) -> None:
    manifest = os.path.join(bundle, "rootfs/app/hello-wasm.toml")
    with KbsAdmin(url, world.admin_key, verify=ca_file) as admin:
        admin.add_from_enclave(manifest, manifest + ".sig", os.path.join(bundle, "rootfs"))


def timed_runs(rune: str, state: str, bundle: str, n: int, want: bytes) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        proc = subprocess.run([rune, "--root", state, "run", "--bundle", bundle, f"p{os.getpid()}-{i}"],
                              capture_output=True)  # fmt: skip
        samples.append((time.perf_counter() - t0) * 1000)
        if proc.returncode != 0 or want not in proc.stdout:
            raise SystemExit(f"{rune} run failed: {proc.stderr.decode()}")
    return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="rounds")
    ap.add_argument("--before", help="the git revision of the rune to compare with")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rune-bench-provision-") as tmp:
        old, tree = before_rune(tmp, args.before or default_before())
        world, process, url, ca, ca_file = broker(tmp)
        try:
            return bench(tmp, args.n, old, world, url, ca, ca_file)
        finally:
            process.stop()
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], check=False)


def bench(tmp: str, n: int, old: str, world: kbs_testing.World, url: str, ca: CertificateAuthority,
          ca_file: str) -> int:  # fmt: skip
    cache = build_rootfs(os.path.join(tmp, "rootfs"))
    key = ed25519.Ed25519PrivateKey.generate()
    plain, _ = wasm_bundle(os.path.join(tmp, "plain"), key, cache)
    set_enclave(plain, args=[*READ[:1], "exit=0"])
    tunnel, _ = wasm_bundle(os.path.join(tmp, "tunnel"), key, cache)
    pin_broker(tunnel, key, [url], ca.pem)
    approve(world, url, ca_file, tunnel)
    set_enclave(tunnel, "preopen=/run/secrets", {"enclave.kbs.url": url,
                "enclave.kbs.resources": "default/secret/greeting"}, READ)  # fmt: skip
    relayed, _ = wasm_bundle(os.path.join(tmp, "relayed"), key, cache)  # no [kbs]: the old rune refuses the key
    approve(world, url, ca_file, relayed)
    set_enclave(relayed, "preopen=/run/secrets", {"enclave.kbs.url": url, "enclave.kbs.cacert": ca_file,
                "enclave.kbs.resources": "default/secret/greeting"}, READ)  # fmt: skip
    state = os.path.join(tmp, "state")
    runs = {
        "before, plain": (old, plain, b"exit=0"),
        "before, provisioned": (old, relayed, SECRET),
        "tunnel, plain": (RUNE, plain, b"exit=0"),
        "tunnel, provisioned": (RUNE, tunnel, SECRET),
    }
    for rune, bundle, want in runs.values():
        timed_runs(rune, state, bundle, 1, want)  # warm the module cache and the page cache
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(n):  # one of each per round: the shared machine's load drifts hit all four alike
        for name, (rune, bundle, want) in runs.items():
            results[name] += timed_runs(rune, state, bundle, 1, want)
    for name, v in results.items():
        print(f"{name:<20} median {statistics.median(v):7.1f} ms  p90 {sorted(v)[int(len(v) * 0.9)]:7.1f} ms")
    # Paired by round: provisioned minus plain of the same rune, a few seconds apart.
    cost = {who: [p - q for p, q in zip(results[f"{who}, provisioned"], results[f"{who}, plain"], strict=True)]
            for who in ("before", "tunnel")}  # fmt: skip
    before, after = statistics.median(cost["before"]), statistics.median(cost["tunnel"])
    print(
        f"attest-and-fetch per start (median of paired differences): before {before:.1f} ms, "
        f"tunnel {after:.1f} ms ({after / before:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
