"""The Kubernetes path end to end: containerd's CRI plugin -> runc shim -> rune.

The tests play kubelet's part over the CRI (crikit.client) against a private
containerd whose `rune` runtime handler runs build/rune (see conftest.py).
That rune really ran a container is checked in rune's own state root (the
handler's `Root`), never taken from containerd's word.
"""

from __future__ import annotations

import json
import os
import re
import time

import grpc
import pytest
from crikit import host
from crikit.client import cri as api
from crikit.daemon import HANDLER, HANDLER_REQUIRED
from crikit.fixtures import check_against_saved, save_if_asked
from crikit.images import BUSYBOX_IMAGE, HELLO_WASM_IMAGE, PAUSE_IMAGE

from inclavare.testing.containers import wait_for

pytestmark = pytest.mark.root

# CRI container log line: "<RFC 3339 nano time> <stream> <tag> <message>" (kubelet's
# pkg/kubelet/kuberuntime/logs; tag F = full line, P = partial).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(?:Z|[+-]\d\d:\d\d) (stdout|stderr) ([FP]) (.*)$")


def log_entries(pod, name: str) -> list[tuple[str, str, str]]:
    try:
        text = pod.log(name)
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m[1], m[2], m[3]))
    return out


def test_version_and_images(cri):
    v = cri.version()
    assert (v.runtime_name, v.runtime_api_version) == ("containerd", "v1")
    tags = {t for image in cri.list_images() for t in image.repo_tags}
    assert {PAUSE_IMAGE, BUSYBOX_IMAGE} <= tags
    image = cri.image_status(BUSYBOX_IMAGE)
    assert list(image.repo_tags) == [BUSYBOX_IMAGE]
    assert image.id.startswith("sha256:")
    assert image.size > 0
    assert cri.image_status("localhost/inclavare-test/absent:latest") is None


def test_pod_and_container_run_through_rune(containerd, cri, pods):
    pod = pods("through-rune")
    status = cri.pod_status(pod.id).status
    assert status.state == api.SANDBOX_READY
    assert status.runtime_handler == HANDLER
    assert status.linux.namespaces.options.network == api.NODE
    sandbox = containerd.rune_state(pod.id)
    assert sandbox["status"] == "running"
    with open(f"/proc/{sandbox['pid']}/cmdline", "rb") as f:
        assert f.read() == b"/pause\0"

    cid = pod.start("sleeper", ["sleep", "300"])
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    state = containerd.rune_state(cid)
    assert state["status"] == "running"
    assert {pod.id, cid} <= set(containerd.rune_containers())
    # containerd's own record of the task: the same process, started by our binary
    info = json.loads(cri.container_status(cid, verbose=True).info["info"])
    assert info["pid"] == state["pid"]
    assert info["runtimeType"] == "io.containerd.runc.v2"
    assert info["runtimeOptions"]["binary_name"] == containerd.rune_bin
    # host network (NODE), but a PID namespace of its own (kubelet's default)
    assert os.readlink(f"/proc/{state['pid']}/ns/net") == os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{state['pid']}/ns/pid") != os.readlink("/proc/self/ns/pid")
    listed = {c.id: c for c in cri.list_containers(pod_sandbox_id=pod.id)}
    assert listed[cid].state == api.CONTAINER_RUNNING
    assert [p.id for p in cri.list_pods(id=pod.id)] == [pod.id]


def test_exit_code_and_cri_log(cri, pods):
    pod = pods("logs")
    cid = pod.start("talker", ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"])
    status = cri.wait_container(cid, api.CONTAINER_EXITED)
    assert status.exit_code == 7
    assert status.reason == "Error"
    # both set; not ordered: the CRI stamps started_at when the start call returns,
    # finished_at is the shim's reap time, and `exit 7` can beat the former
    assert status.started_at > 0
    assert status.finished_at > 0
    assert status.log_path == os.path.join(pod.log_dir, "talker.log")
    want = {("stdout", "F", "to-stdout"), ("stderr", "F", "to-stderr")}
    assert set(wait_for(lambda: len(e := log_entries(pod, "talker")) >= 2 and e, "both log lines")) == want

    ok = pod.start("quiet", ["true"])
    status = cri.wait_container(ok, api.CONTAINER_EXITED)
    assert (status.exit_code, status.reason) == (0, "Completed")


def test_exec_sync(cri, pods):
    pod = pods("exec")
    cid = pod.start("target", ["sleep", "300"])
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    r = cri.exec_sync(cid, ["sh", "-c", "echo out-$((6*7)); echo err >&2; exit 5"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"out-42\n", b"err\n", 5)
    # joined the container's PID namespace: its PID 1 is the container's process
    assert cri.exec_sync(cid, ["cat", "/proc/1/cmdline"]).stdout == b"sleep\x00300\x00"

    # past its timeout the exec'd process is killed and the call fails
    with pytest.raises(grpc.RpcError) as err:
        cri.exec_sync(cid, ["sleep", "31"], timeout=1)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    ps = cri.exec_sync(cid, ["ps", "-o", "args"]).stdout.decode().splitlines()
    assert "sleep 31" not in ps, ps


def test_stop_container_delivers_sigterm_to_the_trap(cri, pods):
    pod = pods("stop")
    script = 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done'
    cid = pod.start("trapper", ["sh", "-c", script])
    wait_for(lambda: ("stdout", "F", "ready") in log_entries(pod, "trapper"), "the trap to be set")
    started = time.monotonic()
    cri.stop_container(cid, timeout=30)
    elapsed = time.monotonic() - started
    status = cri.container_status(cid).status
    assert status.state == api.CONTAINER_EXITED
    assert status.exit_code == 42, (status.exit_code, status.reason)
    assert elapsed < 15, f"StopContainer took {elapsed:.1f}s: SIGTERM did not end it, the grace period did"


def test_remove_pod_leaves_no_state_mounts_or_cgroups(containerd, cri, pods):
    pod = pods("removed")
    cid = pod.start("victim", ["sleep", "300"])
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    ids = [pod.id, cid]
    pids = [containerd.rune_state(i)["pid"] for i in ids]
    cgroups = [containerd.config_json(i)["linux"]["cgroupsPath"] for i in ids]
    assert all(cg.startswith(pod.cgroup_parent + "/") for cg in cgroups)

    def traces() -> dict[str, list]:
        return {
            "rune state": sorted(set(ids) & set(containerd.rune_containers())),
            "mounts": [m for m in host.mount_points() if any(i in m for i in ids)],
            "cgroups": [d for cg in cgroups for d in host.cgroup_dirs(cg)],
            "processes": [p for p in pids if host.alive(p)],
            "bundles": [i for i in ids if os.path.exists(containerd.bundle(i))],
        }

    before = traces()
    assert all(before.values()), before  # each check can see what it looks for
    cri.stop_pod(pod.id)
    cri.remove_pod(pod.id)
    assert pod.id not in {p.id for p in cri.list_pods()}
    assert not cri.list_containers(pod_sandbox_id=pod.id)
    assert traces() == {k: [] for k in before}


def cgroup_file(cgroups_path: str, controller: str, name: str) -> str:
    for root in host.cgroup_roots():
        path = os.path.join(root, cgroups_path.strip("/"), name)
        if os.path.basename(root) in (controller, "unified", "cgroup") and os.path.exists(path):
            with open(path) as f:
                return f.read().strip()
    raise AssertionError(f"no {name} for {cgroups_path} in any {controller} hierarchy")


def test_update_container_resources(containerd, cri, pods):
    pod = pods("update")
    cid = pod.start("resized", ["sleep", "300"])
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    cg = containerd.config_json(cid)["linux"]["cgroupsPath"]
    want = api.LinuxContainerResources(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                                       memory_limit_in_bytes=64 << 20)  # fmt: skip
    # containerd sends the container's whole linux.resources with every update,
    # its unchanged devices list included (runtime/cgroups/v1.py, _update).
    cri.update_resources(cid, want)
    assert cgroup_file(cg, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(cg, "cpu", "cpu.shares") == "512"
    assert cgroup_file(cg, "cpu", "cpu.cfs_quota_us") == "50000"
    got = cri.container_status(cid).status.resources.linux
    assert (got.cpu_shares, got.cpu_quota, got.memory_limit_in_bytes) == (512, 50000, 64 << 20)
    # the container lives on and is still rune's
    assert containerd.rune_state(cid)["status"] == "running"


# Pod annotations are the only channel a Pod spec has to the runtime (kubelet
# fills ContainerConfig.annotations itself), so `pod_annotations = ["enclave.*"]`
# is how a user asks for an enclave; containerd copies them into the sandbox's
# config.json too (test_config_json_annotations). rune runs the pause container
# as a plain process (runtime/enclave_setup.py, is_sandbox) and the pod's
# containers as enclaves.
ENCLAVE_POD = {
    "enclave.type": "software",
    "enclave.runtime.path": "wasm",
    "enclave.runtime.args": "manifest=/app/hello-wasm.toml",
}


def test_config_json_annotations(containerd, cri, pods):
    pod = pods("annotated", annotations={
        **ENCLAVE_POD,
        "enclave.runtime/with-slash": "not passed",
        "other.example/ignored": "not passed",
    })  # fmt: skip
    cid = pod.start("annotated", ["/app/hello.wasm", "sleep=300"], image=HELLO_WASM_IMAGE, annotations={
        "enclave.runtime.loglevel": "debug",
        "other.example/ignored": "not passed",
    })  # fmt: skip
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    sandbox, container = containerd.config_json(pod.id), containerd.config_json(cid)
    s_ann, c_ann = sandbox["annotations"], container["annotations"]
    assert s_ann["io.kubernetes.cri.container-type"] == "sandbox"
    assert c_ann["io.kubernetes.cri.container-type"] == "container"
    assert s_ann["io.kubernetes.cri.sandbox-id"] == c_ann["io.kubernetes.cri.sandbox-id"] == pod.id
    assert c_ann["io.kubernetes.cri.container-name"] == "annotated"
    assert c_ann["io.kubernetes.cri.image-name"] == HELLO_WASM_IMAGE
    # pod_annotations = ["enclave.*"] reaches both; container_annotations the container only
    assert {k: s_ann[k] for k in ENCLAVE_POD} == {k: c_ann[k] for k in ENCLAVE_POD} == ENCLAVE_POD
    assert c_ann["enclave.runtime.loglevel"] == "debug"
    assert "enclave.runtime.loglevel" not in s_ann
    # containerd matches the patterns with Go's filepath.Match, whose "*" stops at "/"
    passed = {k for k in {**s_ann, **c_ann} if not k.startswith("io.kubernetes.cri.")}
    assert passed == {*ENCLAVE_POD, "enclave.runtime.loglevel"}
    # rune was handed exactly these
    assert containerd.rune_state(cid)["annotations"] == c_ann
    assert containerd.rune_state(pod.id)["annotations"] == s_ann
    assert sandbox["process"]["args"] == ["/pause"]
    assert container["process"]["args"] == ["/app/hello.wasm", "sleep=300"]
    save_if_asked(containerd, pod, cid, sandbox, container)
    check_against_saved(sandbox, container)


def assert_plain_pause(containerd, pod) -> None:
    sandbox = containerd.rune_state(pod.id)
    assert sandbox["status"] == "running"
    assert "enclave" not in sandbox
    with open(f"/proc/{sandbox['pid']}/cmdline", "rb") as f:
        assert f.read() == b"/pause\0"


@pytest.mark.parametrize("handler", [HANDLER, HANDLER_REQUIRED])
def test_enclave_pod_runs_pause_plainly_and_its_containers_as_enclaves(containerd, pods, cri, handler):
    pod = pods("enclave-pod", annotations=ENCLAVE_POD, handler=handler)
    assert_plain_pause(containerd, pod)
    cid = pod.start("hello", ["/app/hello.wasm", "sleep=300"], image=HELLO_WASM_IMAGE)
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    enclave = containerd.rune_state(cid)["enclave"]
    assert (enclave["type"], enclave["path"]) == ("software", "wasm")
    assert enclave["sources"]["type"] == "annotations.enclave.type"
    done = pod.start("done", ["/app/hello.wasm", "exit=3"], image=HELLO_WASM_IMAGE)
    assert cri.wait_container(done, api.CONTAINER_EXITED).exit_code == 3
    assert "argv[0]=/app/hello.wasm" in pod.log("done")  # the module ran, in the wasm enclave


def test_a_confidential_runtime_class_refuses_a_plain_container_but_runs_its_sandbox(containerd, pods):
    pod = pods("plain-pod", handler=HANDLER_REQUIRED)
    assert_plain_pause(containerd, pod)
    with pytest.raises(grpc.RpcError) as err:
        pod.start("plain", ["sleep", "30"])
    assert "this runtime runs enclave containers only (rune --enclave-required)" in err.value.details()


def test_a_misspelt_enclave_annotation_fails_the_container_not_silently_plain(containerd, pods):
    pod = pods("typo-pod", annotations={"enclave.type": "software", "enclave.runtime.pth": "wasm"})
    assert_plain_pause(containerd, pod)
    with pytest.raises(grpc.RpcError) as err:
        pod.start("typo", ["/app/hello.wasm"], image=HELLO_WASM_IMAGE)
    assert "annotations.enclave.runtime.pth: unknown enclave setting (did you mean enclave.runtime.path?" in (
        err.value.details()
    )
