"""A private containerd 1.6 with the CRI plugin and a `rune` runtime handler.

Everything lives under one directory (root, state, sockets, log, config,
rune's state root, pod logs); the machine's own containerd, if any, is not
touched. The CRI plugin is on, and the runtime is chosen per pod by its
runtime handler, as kubelet's RuntimeClass does.

The `rune` handler is containerd's runc shim (io.containerd.runc.v2) with
BinaryName = build/rune and its own Root: the shim then runs
``rune --root <Root>/k8s.io …`` (the namespace is appended by the shim), so
that directory lists exactly the containers rune ran for the CRI.

Given a shim (build/containerd-shim-rune-v2), the daemon also has the
handlers `rune-shim`, `rune-shim-confidential` and `rune-shim-signed`: runtime_type
io.containerd.rune.v2, whose ``options`` table is the CRI's
runtimeoptions (``ConfigPath``), naming the shim's configuration file (rune
binary, the same Root, ``enclave_required`` for the confidential ones, the
carrier's configuration: the node key, or for rune-shim-signed a file the test writes);
containerd finds the shim on its $PATH, where build/ comes first.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from typing import Any

import grpc

from inclavare.testing.containers import wait_for

from . import host
from .client import CRI

HANDLER = "rune"
# A RuntimeClass that means "confidential": the same shim, but its BinaryName
# is a two-line wrapper adding `--enclave-required` (docs/architecture.md,
# "Enclave containers"); the runc shim has no option for extra flags.
HANDLER_REQUIRED = "rune-confidential"
# the same two through containerd-shim-rune-v2 (io.containerd.rune.v2)
SHIM_HANDLER = "rune-shim"
SHIM_HANDLER_REQUIRED = "rune-shim-confidential"
# Both shims again, with rune reading a node configuration that claims enclaves
# from epm's warm pool at Containerd.pool_socket (docs/epm.md, "The hand-over"):
# BinaryName / binary_name is a wrapper adding `--config`.
HANDLER_POOLED = "rune-pooled"
SHIM_HANDLER_POOLED = "rune-shim-pooled"
# ... and a confidential one whose carrier has a configuration of the test's own
# (Containerd.signed_carrier_config: a signing server, written by the test before its Create)
SHIM_HANDLER_SIGNED = "rune-shim-signed"
NAMESPACE = "k8s.io"
READY_TIMEOUT = 30.0

# TOML basic strings are written with json.dumps (the same escapes for the
# paths used here). `stream_server_port = "0"`: the CRI streaming server
# (exec/attach/port-forward URLs) binds an ephemeral port instead of the fixed
# 10010, so two daemons (two test runs on this shared machine) can coexist.
# `restrict_oom_score_adj`: the CRI gives every sandbox oom_score_adj -998,
# and lowering it needs CAP_SYS_RESOURCE, which this VM's bounding set lacks
# (harness README, pitfall 8): runc and rune both fail every pod then. With it,
# containerd clamps the value to its own (as for rootless nodes).
# The default runtime stays the host's runc, as on a node where only a
# RuntimeClass selects rune: a pod that reached rune got there by its handler.
CONFIG = """\
version = 2
root = {root}
state = {state}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = {sock}
[ttrpc]
  address = {ttrpc}
[debug]
  address = {debug}
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox_image}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {runc_root}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
"""


# A runtime handler served by containerd's runc shim with rune (or a wrapper of it) as its binary.
RUNC_SHIM_HANDLER = """
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["enclave.*"]
      container_annotations = ["enclave.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}.options]
        BinaryName = {rune}
        Root = {rune_root}
        SystemdCgroup = false
"""


# Runtime handlers served by containerd-shim-rune-v2: the CRI gives a runtime type of
# its own a runtimeoptions.v1.Options built from `options` (ConfigPath), pkg/cri/config.
SHIM_HANDLERS = """
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}]
      runtime_type = "io.containerd.rune.v2"
      pod_annotations = ["enclave.*"]
      container_annotations = ["enclave.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}.options]
        ConfigPath = {config}
"""
SHIM_CONFIG = """binary_name = {rune}
root = {root}
enclave_required = {required}
carrier_config = {carrier}
"""
# The carrier's config.toml: no signing server, so the node's own key signs (mock signing).
CARRIER_CONFIG = """[signature]
node_key = {node_key}
"""


class DaemonError(Exception):
    pass


class Containerd:
    """One private containerd; `start()`, then `stop()` (always: it cleans up)."""

    def __init__(self, base: str, rune: str, sandbox_image: str, shim: str | None = None) -> None:
        self.base = os.path.realpath(base)
        self.rune_bin = rune
        self.shim = shim
        self.sandbox_image = sandbox_image
        self.sock = os.path.join(self.base, "containerd.sock")
        self.log = os.path.join(self.base, "containerd.log")
        self.config = os.path.join(self.base, "config.toml")
        self.rune_root = os.path.join(self.base, "rune-root")
        # kubelet's part with the cgroupfs driver: every pod's cgroup_parent
        # lives under this one (unique per daemon), removed at stop().
        self.cgroup_parent = f"/inclavare-cri-{secrets.token_hex(4)}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cri: CRI | None = None
        self.hello_bundle = ""  # the hello-wasm image's bundle (its conftest sets it): a pool template

    # -- paths and views ---------------------------------------------------------------
    @property
    def ctr(self) -> list[str]:
        return ["ctr", "--address", self.sock]

    @property
    def rune_state_root(self) -> str:
        """The --root the shim passes to rune: <Root>/<containerd namespace>."""
        return os.path.join(self.rune_root, NAMESPACE)

    def rune_containers(self) -> list[str]:
        """Container IDs in rune's own state root (what `rune list` would show)."""
        root = self.rune_state_root
        return sorted(os.listdir(root)) if os.path.isdir(root) else []

    def rune(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.rune_bin, "--root", self.rune_state_root, *args], capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    def rune_state(self, cid: str) -> dict[str, Any]:
        proc = self.rune("state", cid)
        if proc.returncode != 0:
            raise AssertionError(f"rune state {cid} exited {proc.returncode}: {proc.stderr.strip()}")
        return dict(json.loads(proc.stdout))

    def bundle(self, cid: str) -> str:
        """The OCI bundle the runc shim made for a container or sandbox."""
        return os.path.join(self.base, "state", "io.containerd.runtime.v2.task", NAMESPACE, cid)

    def config_json(self, cid: str) -> dict[str, Any]:
        with open(os.path.join(self.bundle(cid), "config.json")) as f:
            return dict(json.load(f))

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- lifecycle -----------------------------------------------------------------------
    def write_config(self) -> None:
        q = json.dumps
        for d in ("root", "state", "opt", "cni/bin", "cni/net.d", "rune-root", "pods"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        text = CONFIG.format(
            root=q(f"{self.base}/root"), state=q(f"{self.base}/state"), sock=q(self.sock),
            ttrpc=q(self.sock + ".ttrpc"), debug=q(f"{self.base}/debug.sock"), opt=q(f"{self.base}/opt"),
            sandbox_image=q(self.sandbox_image), runc_root=q(f"{self.base}/runc-root"),
            cni_bin=q(f"{self.base}/cni/bin"), cni_conf=q(f"{self.base}/cni/net.d"),
        )  # fmt: skip
        pooled = self.write_pooled_wrapper()
        for handler, rune in ((HANDLER, self.rune_bin), (HANDLER_REQUIRED, self.write_required_wrapper()),
                              (HANDLER_POOLED, pooled)):  # fmt: skip
            text += RUNC_SHIM_HANDLER.format(handler=handler, rune=q(rune), rune_root=q(self.rune_root))
        if self.shim:
            for handler, required, carrier, rune in (
                (SHIM_HANDLER, False, self.carrier_config, self.rune_bin),
                (SHIM_HANDLER_REQUIRED, True, self.carrier_config, self.rune_bin),
                (SHIM_HANDLER_SIGNED, True, self.signed_carrier_config, self.rune_bin),
                (SHIM_HANDLER_POOLED, False, self.carrier_config, pooled),
            ):
                config = self.write_shim_config(handler, required, carrier, rune)
                text += SHIM_HANDLERS.format(handler=handler, config=q(config))
        with open(self.config, "w") as f:
            f.write(text)

    def write_shim_config(self, handler: str, required: bool, carrier: str, rune: str) -> str:
        """The shim's configuration file for one handler (root-owned, 0644: the shim checks)."""
        path = os.path.join(self.base, f"{handler}.toml")
        with open(path, "w") as f:
            f.write(SHIM_CONFIG.format(rune=json.dumps(rune), root=json.dumps(self.rune_root),
                                       required=str(required).lower(),
                                       carrier=json.dumps(carrier)))  # fmt: skip
        os.chmod(path, 0o644)
        return path

    @property
    def carrier_config(self) -> str:
        """The carrier's configuration the shim handlers name (written once, root's, 0644)."""
        path = os.path.join(self.base, "carrier.toml")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(CARRIER_CONFIG.format(node_key=json.dumps(self.carrier_key)))
            os.chmod(path, 0o644)
        return path

    @property
    def signed_carrier_config(self) -> str:
        """The carrier configuration of SHIM_HANDLER_SIGNED: not written here (the carrier reads it at
        each Create, so a test writes it, root's and 0644, before creating a container)."""
        return os.path.join(self.base, "carrier-signed.toml")

    @property
    def carrier_key(self) -> str:
        """The node key the carrier signs with (created by the carrier on first use)."""
        return os.path.join(self.base, "carrier-key.pem")

    def write_required_wrapper(self) -> str:
        path = os.path.join(self.base, "rune-confidential")
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\nexec {self.rune_bin} --enclave-required "$@"\n')
        os.chmod(path, 0o755)
        return path

    @property
    def epm_run(self) -> str:
        """Where a test's epm (inclavare.testing.epm.PoolServer) keeps its sockets and log."""
        return os.path.join(self.base, "epm")

    @property
    def pool_socket(self) -> str:
        """The claim socket the pooled handlers' rune asks (PoolServer(..., epm_run).socket)."""
        return os.path.join(self.epm_run, "pool", "pool.sock")

    def write_pooled_wrapper(self) -> str:
        conf = os.path.join(self.base, "rune-pooled.toml")
        with open(conf, "w") as f:
            f.write(f"[enclave]\npool_socket = {json.dumps(self.pool_socket)}\n")
        os.chmod(conf, 0o644)
        path = os.path.join(self.base, "rune-pooled")
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\nexec {self.rune_bin} --config {conf} "$@"\n')
        os.chmod(path, 0o755)
        return path

    def start(self) -> None:
        self.write_config()
        env = None
        if self.shim:  # containerd finds containerd-shim-rune-v2 (and rune) on its $PATH
            env = dict(os.environ, PATH=f"{os.path.dirname(self.shim)}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        with open(self.log, "ab") as log:
            # its own session: a ^C to pytest must not hit containerd before teardown does
            self.proc = subprocess.Popen(["containerd", "--config", self.config], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env=env)  # fmt: skip
        self.cri = CRI(self.sock)
        try:
            wait_for(self._answers, "containerd's CRI", READY_TIMEOUT, interval=0.1)
        except AssertionError:
            raise DaemonError(f"containerd's CRI did not answer in {READY_TIMEOUT}s:\n{self.log_tail()}") from None

    def _answers(self) -> bool:
        """Whether the CRI answers yet; DaemonError once it never will."""
        assert self.proc is not None
        assert self.cri is not None
        if self.proc.poll() is not None:
            raise DaemonError(f"containerd exited {self.proc.returncode} at start:\n{self.log_tail()}")
        if "failed to load plugin io.containerd.grpc.v1.cri" in self.log_tail(200):
            raise DaemonError(f"containerd did not load its CRI plugin:\n{self.log_tail()}")
        try:
            self.cri.version(timeout=1)
        except grpc.RpcError:
            return False
        return True

    def wait_image(self, ref: str, timeout: float = 30.0) -> None:
        """Wait until the CRI plugin has picked up an image imported with ctr."""
        cri = self.cri
        assert cri is not None
        try:
            wait_for(lambda: cri.image_status(ref) is not None, f"the CRI to list {ref}", timeout, interval=0.1)
        except AssertionError:
            raise DaemonError(f"the CRI does not list {ref} {timeout}s after its import:\n{self.log_tail()}") from None

    def stop(self) -> list[str]:
        """Stop everything this daemon started; returns what had to be forced (for the log)."""
        forced: list[str] = []
        self._remove_pods(forced)
        self._stop_daemon(forced)
        for cid in self.rune_containers():  # containers whose shim died with them still in rune's state
            forced.append(f"rune delete --force {cid}")
            self.rune("delete", "--force", cid)
        shims = host.pids_naming(self.sock)
        if shims:
            forced.append(f"killed shims {shims}")
            host.kill_and_wait(shims)
        host.unmount_below(self.base)
        left = host.remove_cgroup_tree(self.cgroup_parent)
        if left:
            forced.append(f"cgroups still busy: {left}")
        return forced

    def _remove_pods(self, forced: list[str]) -> None:
        if self.cri is None or self.proc is None or self.proc.poll() is not None:
            return
        try:
            for pod in self.cri.list_pods():
                forced.append(f"pod {pod.id} removed at teardown")
                self.cri.stop_pod(pod.id)
                self.cri.remove_pod(pod.id)
        except grpc.RpcError as exc:
            forced.append(f"CRI teardown failed: {exc.code().name} {exc.details()}")
        finally:
            self.cri.close()

    def _stop_daemon(self, forced: list[str]) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            forced.append("containerd did not exit on SIGTERM")
            self.proc.kill()
            self.proc.wait()


def tools_missing() -> list[str]:
    """The containerd binaries the kit needs that are not installed."""
    return [b for b in ("containerd", "ctr", "containerd-shim-runc-v2") if shutil.which(b) is None]
