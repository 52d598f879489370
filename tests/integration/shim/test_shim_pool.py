"""Kubernetes through containerd-shim-rune-v2 (handler rune-shim-pooled), with a real epm's
warm pool: a pod's enclave container takes a pre-initialised instance and behaves as
without it — exit code, ExecSync, StopContainer's SIGTERM — and falls back once epm is down."""

from __future__ import annotations

import os

import pytest
from crikit.client import cri as api
from crikit.daemon import SHIM_HANDLER_POOLED
from crikit.images import HELLO_WASM_IMAGE

from inclavare.testing.epm import PoolServer

pytestmark = pytest.mark.root
ENCLAVE_POD = {
    "enclave.type": "software",
    "enclave.runtime.path": "wasm",
    "enclave.runtime.args": "manifest=/app/hello-wasm.toml",
}


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def pool(shim_containerd):
    server = PoolServer(shim_containerd.hello_bundle, shim_containerd.epm_run, size=2).start()
    assert server.socket == shim_containerd.pool_socket
    yield server
    server.stop()


def test_a_pod_takes_warm_enclaves_through_shim_rune(shim_containerd, pods, pool):
    daemon, cri = shim_containerd, shim_containerd.cri
    pod = pods("pooled", handler=SHIM_HANDLER_POOLED, annotations=ENCLAVE_POD)
    done = pod.start("done", ["/app/hello.wasm", "exit=3"], image=HELLO_WASM_IMAGE)
    assert cri.wait_container(done, api.CONTAINER_EXITED).exit_code == 3
    assert pool.metric("epm_pool_hits_total") == 1
    with open(os.path.join(pod.log_dir, "done.log")) as f:
        assert "argv[1]=exit=3" in f.read()

    cid = pod.start("sleeper", ["/app/hello.wasm", "sleep=300"], image=HELLO_WASM_IMAGE)
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    state = daemon.rune_state(cid)
    assert state["enclave"]["pool"] == "hit"
    assert parent_of(state["pid"]) == parent_of(daemon.rune_state(pod.id)["pid"])  # the shim reaps init, as ever
    reply = cri.exec_sync(cid, ["/app/hello.wasm", "exec", "exit=5"])
    assert reply.exit_code == 5
    cri.stop_container(cid, timeout=10)
    assert cri.wait_container(cid, api.CONTAINER_EXITED).exit_code == 128 + 15

    pool.stop()
    third = pod.start("third", ["/app/hello.wasm", "sleep=300"], image=HELLO_WASM_IMAGE)
    cri.wait_container(third, api.CONTAINER_RUNNING)
    assert daemon.rune_state(third)["enclave"]["pool"] == "miss"
