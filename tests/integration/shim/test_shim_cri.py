"""The Kubernetes path through containerd-shim-rune-v2: the CRI plugin with
``runtime_type = "io.containerd.rune.v2"`` (handlers rune-shim and
rune-shim-confidential, crikit.daemon), played by the tests in kubelet's part.

What rune really did is read from its own state root; that one shim serves
the pod, from the processes' parent (the shim is their subreaper).
"""

from __future__ import annotations

import os

import grpc
import pytest
from crikit import host
from crikit.client import cri as api
from crikit.daemon import SHIM_HANDLER, SHIM_HANDLER_REQUIRED
from crikit.images import HELLO_WASM_IMAGE, PLAIN_WASM_IMAGE

from inclavare.carrier import MANIFEST, SIGNATURE
from inclavare.enclave.identity import verify_signature
from inclavare.testing.containers import wait_for

pytestmark = pytest.mark.root
ENCLAVE_POD = {
    "enclave.type": "software",
    "enclave.runtime.path": "wasm",
    "enclave.runtime.args": "manifest=/app/hello-wasm.toml",
}


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def test_enclave_pod_end_to_end(shim_containerd, pods):
    """RunPodSandbox .. RemovePodSandbox with an enclave asked for by the pod's annotations."""
    daemon, cri = shim_containerd, shim_containerd.cri
    pod = pods("enclave-pod", annotations=ENCLAVE_POD)
    assert cri.pod_status(pod.id).status.runtime_handler == SHIM_HANDLER
    sandbox = daemon.rune_state(pod.id)
    assert "enclave" not in sandbox  # the pause container stays a plain process (rune's is_sandbox)
    shim_pid = parent_of(sandbox["pid"])  # the shim is the subreaper of what rune started
    assert "containerd-shim-rune-v2" in cmdline(shim_pid)

    cid = pod.start("hello", ["/app/hello.wasm", "sleep=300"], image=HELLO_WASM_IMAGE)
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    state = daemon.rune_state(cid)
    assert (state["enclave"]["type"], state["enclave"]["path"]) == ("software", "wasm")
    assert parent_of(state["pid"]) == shim_pid  # one shim per pod
    info = cri.container_status(cid, verbose=True).info["info"]
    assert '"runtimeType":"io.containerd.rune.v2"' in info.replace(" ", "")

    done = pod.start("done", ["/app/hello.wasm", "exit=3"], image=HELLO_WASM_IMAGE)
    assert cri.wait_container(done, api.CONTAINER_EXITED).exit_code == 3
    with open(os.path.join(pod.log_dir, "done.log")) as f:
        assert "argv[0]=/app/hello.wasm" in f.read()  # the module ran, its stdout through the shim's fifo

    stats = cri.container_stats(cid)
    assert stats.cpu.timestamp > 0
    assert stats.memory.working_set_bytes.value > 0

    cri.stop_container(cid, timeout=10)
    assert cri.container_status(cid).status.state == api.CONTAINER_EXITED
    cri.remove_container(cid)
    cri.remove_container(done)
    pod.remove()
    assert pod.id not in {p.id for p in cri.list_pods()}
    assert not ({pod.id, cid} & set(daemon.rune_containers()))
    wait_for(lambda: not host.alive(shim_pid), "the pod's shim to exit")


def test_exec_sync_stats_update_and_stop_of_a_plain_container(shim_containerd, pods):
    daemon, cri = shim_containerd, shim_containerd.cri
    pod = pods("plain-pod")
    cid = pod.start("target", ["sh", "-c", 'trap "exit 42" TERM; while :; do sleep 0.1; done'])
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    r = cri.exec_sync(cid, ["sh", "-c", "echo out-$((6*7)); echo err >&2; exit 5"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"out-42\n", b"err\n", 5)
    assert cri.exec_sync(cid, ["cat", "/proc/1/cmdline"]).stdout.startswith(b"sh\x00-c\x00")

    stats = cri.container_stats(cid)
    assert stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0

    want = api.LinuxContainerResources(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                                       memory_limit_in_bytes=64 << 20)  # fmt: skip
    cri.update_resources(cid, want)
    cgroups_path = daemon.config_json(cid)["linux"]["cgroupsPath"]
    memory = [d for d in host.cgroup_dirs(cgroups_path) if os.path.exists(os.path.join(d, "memory.limit_in_bytes"))]
    if memory:
        with open(os.path.join(memory[0], "memory.limit_in_bytes")) as f:
            assert f.read().strip() == str(64 << 20)
    got = cri.container_status(cid).status.resources.linux
    assert (got.cpu_shares, got.cpu_quota, got.memory_limit_in_bytes) == (512, 50000, 64 << 20)

    cri.stop_container(cid, timeout=30)
    status = cri.container_status(cid).status
    assert (status.state, status.exit_code) == (api.CONTAINER_EXITED, 42)


def test_the_confidential_handler_refuses_a_plain_container(shim_containerd, pods):
    pod = pods("confidential-pod", handler=SHIM_HANDLER_REQUIRED)
    assert "enclave" not in shim_containerd.rune_state(pod.id)  # its sandbox runs, plainly
    with pytest.raises(grpc.RpcError) as err:
        pod.start("plain", ["sleep", "30"])
    details = err.value.details()
    assert "OCI runtime create failed" in details
    assert "this runtime runs enclave containers only (rune --enclave-required)" in details
    assert "\n" not in details


def test_a_plain_image_made_a_signed_enclave_by_the_carrier_at_create(shim_containerd, pods):
    """shim-rune's carrier at Create: an unsigned image asking for the wasm carrier (a container
    annotation) is built, measured and signed on the node, and runs under the confidential handler."""
    daemon, cri = shim_containerd, shim_containerd.cri
    pod = pods("carried-pod", handler=SHIM_HANDLER_REQUIRED)
    carried = {"enclave.carrier": "wasm"}
    cid = pod.start("carried", ["/app/hello.wasm", "sleep=300"], image=PLAIN_WASM_IMAGE, annotations=carried)
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    enclave = daemon.rune_state(cid)["enclave"]
    assert (enclave["type"], enclave["path"]) == ("software", "wasm")
    rootfs = os.path.join(daemon.bundle(cid), "rootfs")
    identity = verify_signature(rootfs + MANIFEST, rootfs + SIGNATURE, rootfs)
    args = daemon.config_json(cid)["annotations"]["enclave.runtime.args"]
    assert args == f"manifest={MANIFEST},signer={identity.signer.hex()}"  # rune holds the enclave to this signer
    assert os.path.exists(daemon.carrier_key)  # signed by the node's key: the handler's carrier_config

    done = pod.start("carried-done", ["/app/hello.wasm", "exit=3"], image=PLAIN_WASM_IMAGE, annotations=carried)
    assert cri.wait_container(done, api.CONTAINER_EXITED).exit_code == 3
    with open(os.path.join(pod.log_dir, "carried-done.log")) as f:
        assert "argv[0]=/app/hello.wasm" in f.read()


def test_a_carrier_refusal_fails_create_in_one_line_and_leaves_nothing(shim_containerd, pods):
    daemon = shim_containerd
    pod = pods("refused-carrier-pod")
    before = daemon.rune_containers()
    with pytest.raises(grpc.RpcError) as err:
        pod.start("bad", ["/app/hello.wasm"], image=PLAIN_WASM_IMAGE, annotations={"enclave.carrier": "occlum"})
    details = err.value.details()
    assert "carrier: " in details
    assert "occlum" in details
    assert "\n" not in details
    assert daemon.rune_containers() == before  # rune create never ran
