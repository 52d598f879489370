"""Fixtures of the Kubernetes-path tests: one private containerd (CRI plugin,
`rune` runtime handler) per session, and pods that are always removed.

Start-up (images built and imported, daemon up) costs a few seconds, so the
daemon is shared by every test; each test makes its own pods, and the `pods`
fixture stops and removes them even when the test fails. The daemon's
teardown (crikit.daemon.Containerd.stop) then removes anything left: pods,
rune containers, shims, mounts under its directory and its cgroups.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from crikit import client, images
from crikit.daemon import HANDLER, Containerd, tools_missing

RUNE = os.path.join(images.ROOT, "build", "rune")


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    missing = tools_missing()
    if missing:
        pytest.skip(f"containerd is not installed (missing {', '.join(missing)}; `make setup` installs it)")
    if os.geteuid() != 0:
        pytest.skip("needs root (integration tier)")
    base = tmp_path_factory.mktemp("cri")
    archive = images.build_archive(str(tmp_path_factory.mktemp("cri-images")))
    daemon = Containerd(str(base), RUNE, images.PAUSE_IMAGE)
    try:
        daemon.start()
        daemon.hello_bundle = os.path.join(os.path.dirname(archive), "hello-wasm")  # the image's bundle, signed
        images.import_images(daemon.ctr, archive)
        for image in (images.PAUSE_IMAGE, images.BUSYBOX_IMAGE, images.HELLO_WASM_IMAGE):
            daemon.wait_image(image)
        yield daemon
    finally:
        forced = daemon.stop()
        if forced:
            print(f"cri teardown had to clean up: {forced}")


@pytest.fixture
def cri(containerd: Containerd) -> client.CRI:
    assert containerd.cri is not None
    return containerd.cri


@dataclass
class Pod:
    """A running pod sandbox and the config it was made with."""

    id: str
    config: Any
    log_dir: str
    cgroup_parent: str
    cri: client.CRI
    share_pid: bool = False
    containers: list[str] = field(default_factory=list)

    def create(self, name: str, command: list[str], image: str = images.BUSYBOX_IMAGE, **kw: Any) -> str:
        config = client.container(name, image, command, share_pid=self.share_pid, **kw)
        cid = self.cri.create_container(self.id, config, self.config)
        self.containers.append(cid)
        return cid

    def start(self, name: str, command: list[str], **kw: Any) -> str:
        """Create and start a busybox container; returns its ID."""
        cid = self.create(name, command, **kw)
        self.cri.start_container(cid)
        return cid

    def log(self, name: str) -> str:
        with open(os.path.join(self.log_dir, f"{name}.log")) as f:
            return f.read()


@pytest.fixture
def pods(containerd: Containerd, cri: client.CRI) -> Iterator[Any]:
    """pods(name, annotations=None, share_pid=False, handler="rune") -> Pod: a host-network pod on a rune handler."""
    made: list[Pod] = []

    def run(name: str, annotations: dict[str, str] | None = None, share_pid: bool = False,
            handler: str = HANDLER) -> Pod:  # fmt: skip
        uid = uuid.uuid4().hex
        log_dir = os.path.join(containerd.base, "pods", uid)
        os.makedirs(log_dir)
        parent = f"{containerd.cgroup_parent}/pod{uid}"
        config = client.host_network_pod(name, uid, log_dir, parent, annotations, share_pid)
        pod = Pod(cri.run_pod(config, handler), config, log_dir, parent, cri, share_pid)
        made.append(pod)
        # every pod of these tests must be rune's, not the default runtime's
        assert pod.id in containerd.rune_containers(), f"sandbox {pod.id} is not in rune's state root"
        return pod

    yield run
    for pod in made:
        try:
            cri.stop_pod(pod.id)
            cri.remove_pod(pod.id)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
