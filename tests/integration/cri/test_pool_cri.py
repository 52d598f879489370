"""Kubernetes through containerd's CRI, with the runc shim (handler rune-pooled): a pod's
enclave container takes a warm instance from a real epm (`inclavare epm serve` with a
pool of the image's own enclave) and behaves as without it — exit code, CRI log,
ExecSync, StopContainer's SIGTERM — and falls back when the pool is empty."""

from __future__ import annotations

import pytest
from crikit.client import cri as api
from crikit.daemon import HANDLER_POOLED
from crikit.images import HELLO_WASM_IMAGE

from inclavare.testing.epm import PoolServer

pytestmark = pytest.mark.root
ENCLAVE_POD = {
    "enclave.type": "software",
    "enclave.runtime.path": "wasm",
    "enclave.runtime.args": "manifest=/app/hello-wasm.toml",
}


@pytest.fixture
def pool(containerd):
    server = PoolServer(containerd.hello_bundle, containerd.epm_run, size=2).start()
    assert server.socket == containerd.pool_socket
    yield server
    server.stop()


def test_a_pod_takes_warm_enclaves_and_falls_back(containerd, cri, pods, pool):
    pod = pods("pooled", annotations=ENCLAVE_POD, handler=HANDLER_POOLED)
    assert "enclave" not in containerd.rune_state(pod.id)  # the pause container: plain, never pooled
    done = pod.start("done", ["/app/hello.wasm", "exit=3"], image=HELLO_WASM_IMAGE)
    assert cri.wait_container(done, api.CONTAINER_EXITED).exit_code == 3
    assert pool.metric("epm_pool_hits_total") == 1  # (the shim deleted its rune state already)
    assert "argv[1]=exit=3" in pod.log("done")

    cid = pod.start("sleeper", ["/app/hello.wasm", "sleep=300"], image=HELLO_WASM_IMAGE)
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    assert containerd.rune_state(cid)["enclave"]["pool"] == "hit"
    reply = cri.exec_sync(cid, ["/app/hello.wasm", "exec", "exit=5"])
    assert reply.exit_code == 5
    assert b"argv[1]=exec" in reply.stdout
    cri.stop_container(cid, timeout=10)
    assert cri.wait_container(cid, api.CONTAINER_EXITED).exit_code == 128 + 15

    pool.stop()  # epm is down: the next container starts the unpooled way
    third = pod.start("third", ["/app/hello.wasm", "sleep=300"], image=HELLO_WASM_IMAGE)
    cri.wait_container(third, api.CONTAINER_RUNNING)
    assert containerd.rune_state(third)["enclave"]["pool"] == "miss"
