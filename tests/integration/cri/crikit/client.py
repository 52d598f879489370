"""A small CRI client (runtime.v1 over a unix-socket gRPC channel) and the
pod and container configs a kubelet would send for a host-network pod.

Each call has a deadline, so a wedged containerd fails the test that waits on
it instead of hanging the suite. Errors stay grpc.RpcError: its code() and
details() carry containerd's message (the runtime's log line included).
"""

from __future__ import annotations

from typing import Any

import grpc

from inclavare.testing.containers import wait_for

try:
    from inclavare._proto.k8s_io.cri_api.runtime.v1 import api_pb2 as cri
    from inclavare._proto.k8s_io.cri_api.runtime.v1 import api_pb2_grpc as cri_grpc
except ImportError as exc:  # generated at setup, not in git
    raise ImportError(f"the CRI stubs are not generated ({exc}): run `make protos` (part of `make setup`)") from None

__all__ = ["CRI", "ContainerStatus", "cri"]

ContainerStatus = Any  # cri.ContainerStatus (generated; untyped)


class CRI:
    """The RuntimeService and ImageService of one CRI endpoint."""

    def __init__(self, socket: str, timeout: float = 60.0) -> None:
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.runtime = cri_grpc.RuntimeServiceStub(self.channel)
        self.images = cri_grpc.ImageServiceStub(self.channel)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def _rt(self, method: str, request: Any, timeout: float | None = None) -> Any:
        return getattr(self.runtime, method)(request, timeout=timeout or self.timeout)

    # -- runtime -------------------------------------------------------------------------
    def version(self, timeout: float | None = None) -> Any:
        return self._rt("Version", cri.VersionRequest(version="v1"), timeout)

    def run_pod(self, config: Any, handler: str) -> str:
        return str(self._rt("RunPodSandbox", cri.RunPodSandboxRequest(config=config, runtime_handler=handler))
                   .pod_sandbox_id)  # fmt: skip

    def stop_pod(self, pod_id: str) -> None:
        self._rt("StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=pod_id))

    def remove_pod(self, pod_id: str) -> None:
        self._rt("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    def pod_status(self, pod_id: str, verbose: bool = False) -> Any:
        return self._rt("PodSandboxStatus", cri.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose))

    def list_pods(self, **filter_: Any) -> list[Any]:
        req = cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(**filter_) if filter_ else None)
        return list(self._rt("ListPodSandbox", req).items)

    def create_container(self, pod_id: str, config: Any, pod_config: Any) -> str:
        req = cri.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config)
        return str(self._rt("CreateContainer", req).container_id)

    def start_container(self, cid: str) -> None:
        self._rt("StartContainer", cri.StartContainerRequest(container_id=cid))

    def stop_container(self, cid: str, timeout: int) -> None:
        # the RPC itself may take the whole grace period, plus the kill
        self._rt("StopContainer", cri.StopContainerRequest(container_id=cid, timeout=timeout), self.timeout + timeout)

    def remove_container(self, cid: str) -> None:
        self._rt("RemoveContainer", cri.RemoveContainerRequest(container_id=cid))

    def container_status(self, cid: str, verbose: bool = False) -> Any:
        return self._rt("ContainerStatus", cri.ContainerStatusRequest(container_id=cid, verbose=verbose))

    def list_containers(self, **filter_: Any) -> list[Any]:
        req = cri.ListContainersRequest(filter=cri.ContainerFilter(**filter_) if filter_ else None)
        return list(self._rt("ListContainers", req).containers)

    def update_resources(self, cid: str, linux: Any) -> None:
        self._rt("UpdateContainerResources", cri.UpdateContainerResourcesRequest(container_id=cid, linux=linux))

    def exec_sync(self, cid: str, cmd: list[str], timeout: int = 30) -> Any:
        return self._rt(
            "ExecSync", cri.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout), self.timeout + timeout
        )

    def container_stats(self, cid: str) -> Any:
        return self._rt("ContainerStats", cri.ContainerStatsRequest(container_id=cid)).stats

    def wait_container(self, cid: str, state: int, timeout: float = 30.0) -> ContainerStatus:
        """Poll ContainerStatus until the container is in `state` (cri.CONTAINER_*)."""
        name = cri.ContainerState.Name
        seen: list[ContainerStatus] = []

        def reached() -> bool:
            seen.append(self.container_status(cid).status)
            return bool(seen[-1].state == state)

        try:
            wait_for(reached, f"container {cid} to be {name(state)}", timeout, interval=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (it is {name(seen[-1].state)})") from None
        return seen[-1]

    # -- images --------------------------------------------------------------------------
    def list_images(self) -> list[Any]:
        return list(self.images.ListImages(cri.ListImagesRequest(), timeout=self.timeout).images)

    def image_status(self, ref: str) -> Any:
        """The image, or None when the CRI does not know it (ImageStatusResponse.image unset)."""
        resp = self.images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref)), timeout=self.timeout)
        return resp.image if resp.HasField("image") else None


# -- what kubelet sends -----------------------------------------------------------------------
# kubelet's defaults for a container without procMount: Unmasked
# (k8s.io/kubernetes pkg/securitycontext/util.go, kept in sync with moby's
# oci/defaults.go). containerd 1.6 takes these lists from the CRI request and
# adds none of its own, so a client that sends none gets no masked paths.
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# a pod without seccompProfile, on a kubelet without SeccompDefault
UNCONFINED = cri.SecurityProfile(profile_type=cri.SecurityProfile.Unconfined)
# a BestEffort container (no requests or limits): minimum shares, first to be OOM-killed
BEST_EFFORT = cri.LinuxContainerResources(cpu_shares=2, oom_score_adj=1000)


def namespaces(share_pid: bool) -> Any:
    """hostNetwork: network NODE (no CNI call); IPC shared in the pod; a PID
    namespace per container unless the pod has shareProcessNamespace."""
    return cri.NamespaceOption(network=cri.NODE, pid=cri.POD if share_pid else cri.CONTAINER, ipc=cri.POD)


def host_network_pod(name: str, uid: str, log_dir: str, cgroup_parent: str,
                     annotations: dict[str, str] | None = None, share_pid: bool = False) -> Any:  # fmt: skip
    """A hostNetwork pod's PodSandboxConfig as kubelet (cgroupfs driver) builds it."""
    ns = namespaces(share_pid)
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0),
        log_directory=log_dir,
        labels={"io.kubernetes.pod.name": name, "app": "cri-kit"},
        annotations=annotations or {},
        linux=cri.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=cri.LinuxSandboxSecurityContext(namespace_options=ns, seccomp=UNCONFINED),
        ),
    )


def container(name: str, image: str, command: list[str], annotations: dict[str, str] | None = None,
              resources: Any = None, share_pid: bool = False, envs: dict[str, str] | None = None) -> Any:  # fmt: skip
    """A ContainerConfig with its CRI log at <pod log_directory>/<name>.log; `envs` is the pod spec's env."""
    ns = namespaces(share_pid)
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name, attempt=0),
        image=cri.ImageSpec(image=image),
        command=command,
        envs=[cri.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
        log_path=f"{name}.log",
        annotations=annotations or {},
        linux=cri.LinuxContainerConfig(
            resources=resources or BEST_EFFORT,
            security_context=cri.LinuxContainerSecurityContext(
                namespace_options=ns, seccomp=UNCONFINED, masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS
            ),
        ),
    )
