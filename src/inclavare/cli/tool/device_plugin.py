"""``inclavare device-plugin``: the Kubernetes device plugin for enclave memory and SGX devices.

    inclavare device-plugin [--enclave-memory-mib N] [--config FILE] [--kubelet-dir DIR]
                            [--host-root DIR] [--rune PATH] [--feature-file FILE | --no-feature-file]
                            [--sgx-enclave-limit N] [--sgx-provision-limit N] [--interval SECONDS]
                            [--log-level LEVEL]

Serves ``inclavare.io/enclave-memory-mib`` (N MiB, set by the operator) and,
on SGX nodes, ``sgx.intel.com/enclave`` and ``sgx.intel.com/provision``;
registers with kubelet and again whenever kubelet restarts; writes the
node's labels for NFD. Runs until SIGTERM or SIGINT, then removes its
sockets and labels. See src/inclavare/deviceplugin and docs/kubernetes.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from ._cli import Parser


def _parser() -> argparse.ArgumentParser:
    from ...deviceplugin import features, plugin, resources

    p = Parser(prog="inclavare device-plugin", description="the kubelet device plugin for enclave memory and SGX")
    p.add_argument("--enclave-memory-mib", type=int, default=0, metavar="N",
                   help=f"enclave memory for the built-in runtimes, in MiB: {resources.ENCLAVE_MEMORY} devices "
                        "(default 0)")  # fmt: skip
    p.add_argument("--config", metavar="FILE", help="settings file (TOML), re-read when it changes")
    p.add_argument("--kubelet-dir", default=plugin.KUBELET_DIR, metavar="DIR",
                   help=f"kubelet's device-plugins directory (default {plugin.KUBELET_DIR})")  # fmt: skip
    p.add_argument("--host-root", default="/", metavar="DIR",
                   help="where the host's / is (for /dev, /sys, /proc/cpuinfo and rune; default /)")  # fmt: skip
    p.add_argument("--rune", default=plugin.Options.rune, metavar="PATH",
                   help=f"rune on the host: enclave memory is healthy while it is there "
                        f"(default {plugin.Options.rune})")  # fmt: skip
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--feature-file", default=features.FEATURE_FILE, metavar="FILE",
                        help=f"NFD feature file for the node's labels (default {features.FEATURE_FILE})")  # fmt: skip
    labels.add_argument("--no-feature-file", action="store_true", help="write no node labels")
    p.add_argument("--sgx-enclave-limit", type=int, default=resources.DEFAULT_SGX_LIMIT, metavar="N",
                   help=f"{resources.SGX_ENCLAVE} shares (default {resources.DEFAULT_SGX_LIMIT})")  # fmt: skip
    p.add_argument("--sgx-provision-limit", type=int, default=resources.DEFAULT_SGX_LIMIT, metavar="N",
                   help=f"{resources.SGX_PROVISION} shares (default {resources.DEFAULT_SGX_LIMIT})")  # fmt: skip
    p.add_argument("--interval", type=float, default=plugin.Options.interval, metavar="SECONDS",
                   help="between two scans of the node and of kubelet's socket (default 0.5)")  # fmt: skip
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from ...deviceplugin.plugin import DevicePlugin, Options
    from ...deviceplugin.resources import Settings
    from ...errors import UsageError

    if not 0.01 <= args.interval <= 1.0:
        raise UsageError("--interval: must be between 0.01 and 1 second (kubelet restarts are noticed within it)")
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    settings = Settings(args.enclave_memory_mib, args.sgx_enclave_limit, args.sgx_provision_limit)
    options = Options(directory=args.kubelet_dir, root=args.host_root, rune=args.rune,
                      feature_file=None if args.no_feature_file else args.feature_file, config=args.config,
                      settings=settings, interval=args.interval)  # fmt: skip
    plugin = DevicePlugin(options)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    plugin.run(stop)
    return 0
