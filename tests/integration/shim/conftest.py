"""Fixtures of the shim tests: a shim driven over ttrpc (shimkit), and a private containerd with
shim-rune runtime handlers (crikit's daemon, from tests/integration/cri) and the pods a test runs on it.

Everything a test starts is stopped at its teardown: shims (found by the
socket path their command line names), rune containers in the test's own
rune root, mounts under the test's directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator

import grpc
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "cri"))

import shimkit
from crikit import host

pytestmark = pytest.mark.root


def _require() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (integration tier)")
    for path in (shimkit.SHIM, shimkit.RUNE):
        if not os.path.exists(path):
            pytest.skip(f"{path} is not built (make setup)")


class Env:
    """One test's shims, their event sink, bundles and rune root."""

    def __init__(self, base: str, rootfs_cache: str) -> None:
        self.base = base
        self.rootfs_cache = rootfs_cache
        self.sink = shimkit.EventSink(base)
        self.rune_root = os.path.join(base, "rune-root")
        self.shims: list[shimkit.ShimUnderTest] = []

    def shim(self, namespace: str = "ns") -> shimkit.ShimUnderTest:
        s = shimkit.ShimUnderTest(os.path.join(self.base, "state"), namespace, self.sink, self.rune_root)
        self.shims.append(s)
        return s

    def bundle(self, cid: str, args: list[str], namespace: str = "ns", **config: object) -> str:
        from inclavare.testing.bundles import base_config, make_bundle

        spec = base_config(args)
        spec.update(config)
        return make_bundle(shimkit.bundle_dir(os.path.join(self.base, "state"), namespace, cid), spec,
                           self.rootfs_cache)  # fmt: skip

    def rune(self, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([shimkit.RUNE, "--root", os.path.join(self.rune_root, namespace), *args],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    def cleanup(self) -> None:
        for s in self.shims:
            s.close()
        for pid in host.pids_naming(os.path.join(self.base, "state")):
            host.kill_and_wait([pid])
        for s in self.shims:  # a shim killed here leaves its socket in /run/containerd/s
            if s.address:
                try:
                    os.unlink(s.address.removeprefix("unix://"))
                except FileNotFoundError:
                    pass
        for ns in os.listdir(self.rune_root) if os.path.isdir(self.rune_root) else []:
            for cid in os.listdir(os.path.join(self.rune_root, ns)):
                self.rune(ns, "delete", "--force", cid)
        host.unmount_below(self.base)
        self.sink.close()


@pytest.fixture
def env(rootfs_cache: str) -> Iterator[Env]:
    _require()
    base = shimkit.short_tmp()
    e = Env(base, rootfs_cache)
    try:
        yield e
    finally:
        e.cleanup()
        shutil.rmtree(base, ignore_errors=True)


CTR_NAMESPACE = shimkit.CTR_NAMESPACE


@pytest.fixture(scope="session")
def shim_containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A private containerd (CRI on) with the rune-shim handlers, its images in k8s.io and in shim-ctr."""
    _require()
    from crikit import images
    from crikit.daemon import Containerd, tools_missing

    missing = tools_missing()
    if missing:
        pytest.skip(f"containerd is not installed (missing {', '.join(missing)})")
    base = tmp_path_factory.mktemp("shimcd")
    archive = images.build_archive(str(tmp_path_factory.mktemp("shim-images")))
    daemon = Containerd(str(base), shimkit.RUNE, images.PAUSE_IMAGE, shim=shimkit.SHIM)
    try:
        daemon.start()
        daemon.hello_bundle = os.path.join(os.path.dirname(archive), "hello-wasm")  # the image's bundle, signed
        images.import_images(daemon.ctr, archive)
        images.import_images(daemon.ctr, archive, CTR_NAMESPACE)
        for image in (images.PAUSE_IMAGE, images.BUSYBOX_IMAGE, images.HELLO_WASM_IMAGE, images.PLAIN_WASM_IMAGE):
            daemon.wait_image(image)
        yield daemon
    finally:
        for cid in _ctr_containers(daemon):
            subprocess.run([*daemon.ctr, "-n", CTR_NAMESPACE, "task", "kill", "-s", "SIGKILL", cid],
                           capture_output=True, timeout=30, check=False)  # fmt: skip
            subprocess.run([*daemon.ctr, "-n", CTR_NAMESPACE, "task", "delete", "-f", cid], capture_output=True,
                           timeout=30, check=False)  # fmt: skip
            subprocess.run([*daemon.ctr, "-n", CTR_NAMESPACE, "container", "delete", cid], capture_output=True,
                           timeout=30, check=False)  # fmt: skip
        forced = daemon.stop()
        shim_rune_root = os.path.join(daemon.rune_root, CTR_NAMESPACE)
        for cid in os.listdir(shim_rune_root) if os.path.isdir(shim_rune_root) else []:
            subprocess.run([shimkit.RUNE, "--root", shim_rune_root, "delete", "--force", cid], capture_output=True,
                           timeout=60, check=False)  # fmt: skip
        if forced:
            print(f"shim containerd teardown had to clean up: {forced}")


def _ctr_containers(daemon: object) -> list[str]:
    proc = subprocess.run([*daemon.ctr, "-n", CTR_NAMESPACE, "container", "ls", "-q"],  # type: ignore[attr-defined]
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    return proc.stdout.split()


class Pod:
    """A host-network pod run through the CRI with one runtime handler; its CRI logs in `log_dir`."""

    def __init__(self, daemon, name: str, handler: str, annotations: dict[str, str] | None = None) -> None:
        from crikit import client  # the CRI stubs: only the tests that run pods need them

        uid = uuid.uuid4().hex
        self.cri = daemon.cri
        self.log_dir = os.path.join(daemon.base, "pods", uid)
        os.makedirs(self.log_dir)
        self.config = client.host_network_pod(name, uid, self.log_dir, f"{daemon.cgroup_parent}/pod{uid}",
                                              annotations)  # fmt: skip
        self.id = self.cri.run_pod(self.config, handler)

    def start(self, name: str, command: list[str], image: str | None = None, **kw) -> str:
        """CreateContainer then StartContainer (kw: crikit.client.container's: annotations, envs...)."""
        from crikit import client
        from crikit.images import BUSYBOX_IMAGE

        config = client.container(name, image or BUSYBOX_IMAGE, command, **kw)
        cid = self.cri.create_container(self.id, config, self.config)
        self.cri.start_container(cid)
        return cid

    def remove(self) -> None:
        try:
            self.cri.stop_pod(self.id)
            self.cri.remove_pod(self.id)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise


@pytest.fixture
def pods(shim_containerd):
    """pods(name, handler=rune-shim, annotations) -> a Pod, stopped and removed at teardown."""
    from crikit.daemon import SHIM_HANDLER

    made: list[Pod] = []

    def make(name: str, handler: str = SHIM_HANDLER, annotations: dict[str, str] | None = None) -> Pod:
        made.append(Pod(shim_containerd, name, handler, annotations))
        return made[-1]

    yield make
    for pod in made:
        pod.remove()
