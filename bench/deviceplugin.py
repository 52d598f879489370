"""`make bench`: how fast the device plugin answers kubelet, and how soon it is back after a kubelet restart.

The plugin (inclavare.deviceplugin, in a thread) registers with the fake
kubelet the unit tests use (tests/unit/deviceplugin/fakekubelet.py: a real
Registration gRPC server on a unix socket in a temporary directory), then:

* ``Allocate`` of 256 MiB for one container, over the plugin's own socket,
  timed N times: p50 and p99 (issue target: under 5 ms);
* kubelet restarted R times (its socket removed and made again, as kubelet
  does): the time until the plugin has registered again (target: under 1 s).

    python bench/deviceplugin.py [-n N] [--restarts R] [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "unit", "deviceplugin"))

from fakekubelet import FakeKubelet  # noqa: E402 - the tests' fake kubelet, found through the path above

from inclavare._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2 as pb  # noqa: E402
from inclavare.deviceplugin.plugin import DevicePlugin, Options  # noqa: E402
from inclavare.deviceplugin.resources import ENCLAVE_MEMORY, Settings  # noqa: E402


def host_root(base: str) -> str:
    """A host root where rune is installed (the plugin reports itself healthy only then)."""
    rune = os.path.join(base, "host", "usr", "local", "bin", "rune")
    os.makedirs(os.path.dirname(rune))
    with open(rune, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(rune, 0o755)
    return os.path.join(base, "host")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=500, help="Allocate calls (default 500)")
    parser.add_argument("--restarts", type=int, default=5, help="kubelet restarts (default 5)")
    parser.add_argument("--interval", type=float, default=0.5, help="the plugin's poll interval (its default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dp-") as base:
        directory = os.path.join(base, "dp")
        os.makedirs(directory)
        opts = Options(directory=directory, root=host_root(base), rune="/usr/local/bin/rune",
                       settings=Settings(1024), interval=args.interval,
                       feature_file=os.path.join(base, "features.d", "inclavare"))  # fmt: skip
        stop = threading.Event()
        with FakeKubelet(directory) as kubelet:
            thread = threading.Thread(target=DevicePlugin(opts).run, args=(stop,), daemon=True)
            thread.start()
            try:
                kubelet.registered(ENCLAVE_MEMORY)
                kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 1024)
                allocate(kubelet, args.n)
                reregister(kubelet, args.restarts)
            finally:
                stop.set()
                thread.join(10)
    return 0


def allocate(kubelet: FakeKubelet, n: int) -> None:
    plugin = kubelet.client(ENCLAVE_MEMORY)
    ids = [f"mib-{i}" for i in range(256)]
    request = pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)])
    plugin.Allocate(request)  # the channel connected
    times = []
    for _ in range(n):
        started = time.perf_counter()
        plugin.Allocate(request)
        times.append((time.perf_counter() - started) * 1000)
    print(f"Allocate (256 MiB, one container), {n} calls: p50 {statistics.median(times):.2f} ms, "
          f"p99 {percentile(times, 0.99):.2f} ms, max {max(times):.2f} ms (target < 5 ms)")  # fmt: skip


def reregister(kubelet: FakeKubelet, restarts: int) -> None:
    delays = []
    for _ in range(restarts):
        restarted = kubelet.restart()
        again = kubelet.registered(ENCLAVE_MEMORY, after=restarted)
        delays.append((again.at - restarted) * 1000)
    print(f"re-registration after a kubelet restart, {restarts} restarts: "
          f"{', '.join(f'{d:.0f}' for d in delays)} ms (target < 1000 ms)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
