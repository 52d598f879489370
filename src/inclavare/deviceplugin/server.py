"""One resource's DevicePlugin gRPC service, on its own unix socket in kubelet's directory.

kubelet dials the socket a plugin registered, calls GetDevicePluginOptions,
then keeps one ListAndWatch stream open: the full device list at once, and
again after every change (:meth:`ResourceServer.update`). Allocate and
GetPreferredAllocation answer from the :class:`~.resources.Resource` in
force; a request for a device we do not have healthy fails the call with
INVALID_ARGUMENT / FAILED_PRECONDITION and one line (kubelet then fails the
container with it). The socket is 0600: kubelet, as root, is its only
client (the directory, /var/lib/kubelet/device-plugins, is root's too).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any, NoReturn

import grpc

from .._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2 as pb
from .._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2_grpc as pb_grpc
from .errors import AllocationError
from .resources import Grant, Resource

log = logging.getLogger("inclavare.deviceplugin")
OPTIONS = pb.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True)
_WORKERS = 8  # one per open ListAndWatch stream (kubelet keeps one) plus the unary calls


class ResourceServer(pb_grpc.DevicePluginServicer):
    """Serves one resource; thread-safe: gRPC's workers read what :meth:`update` swaps in."""

    def __init__(self, directory: str, resource: Resource) -> None:
        self.directory = directory
        self.path = os.path.join(directory, resource.endpoint)
        self._resource = resource
        self._version = 0
        self._changed = threading.Condition()
        self._stopping = False
        self._server: grpc.Server | None = None

    @property
    def resource(self) -> Resource:
        with self._changed:
            return self._resource

    def start(self) -> None:
        """Listen on the socket (a stale one from an earlier run is replaced)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="deviceplugin"))
        pb_grpc.add_DevicePluginServicer_to_server(self, server)
        old = os.umask(0o177)  # the socket is 0600 from bind(2) on, not after a chmod
        try:
            server.add_insecure_port(f"unix:{self.path}")
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        with self._changed:
            self._stopping = False
        server.start()
        self._server = server

    def stop(self, grace: float = 0.5) -> None:
        """End the streams and the server, and remove the socket."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def socket_alive(self) -> bool:
        """Our socket is still where kubelet dials it (kubelet empties the directory when it starts)."""
        return self._server is not None and os.path.exists(self.path)

    def update(self, resource: Resource) -> bool:
        """Serve `resource` from now on; streams are sent the new list if it differs. True if it did."""
        with self._changed:
            changed = resource.device_list() != self._resource.device_list()
            self._resource = resource
            if changed:
                self._version += 1
                self._changed.notify_all()
        return changed

    # -- the DevicePlugin service ------------------------------------------------------------

    def GetDevicePluginOptions(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.DevicePluginOptions:
        return OPTIONS

    def ListAndWatch(self, request: pb.Empty, context: grpc.ServicerContext) -> Iterator[pb.ListAndWatchResponse]:
        context.add_callback(self._wake)  # the client went away: stop waiting
        seen = -1
        while context.is_active():
            with self._changed:
                while self._version == seen and not self._stopping and context.is_active():
                    self._changed.wait()
                if self._stopping or not context.is_active():
                    return
                seen, resource = self._version, self._resource
            yield pb.ListAndWatchResponse(
                devices=[pb.Device(ID=i, health=h) for i, h in resource.device_list()],
            )

    def GetPreferredAllocation(self, request: pb.PreferredAllocationRequest,
                               context: grpc.ServicerContext) -> pb.PreferredAllocationResponse:  # fmt: skip
        resource = self.resource
        answers = []
        for req in request.container_requests:
            try:
                chosen = resource.preferred(list(req.available_deviceIDs), list(req.must_include_deviceIDs),
                                            req.allocation_size)  # fmt: skip
            except AllocationError as exc:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc)
            answers.append(pb.ContainerPreferredAllocationResponse(deviceIDs=chosen))
        return pb.PreferredAllocationResponse(container_responses=answers)

    def Allocate(self, request: pb.AllocateRequest, context: grpc.ServicerContext) -> pb.AllocateResponse:
        resource = self.resource
        answers = []
        for req in request.container_requests:
            try:
                grant = resource.allocate(list(req.devices_ids))
            except AllocationError as exc:
                unhealthy = not resource.healthy
                _abort(
                    context, grpc.StatusCode.FAILED_PRECONDITION if unhealthy else grpc.StatusCode.INVALID_ARGUMENT, exc
                )
            answers.append(_response(grant))
        sizes = ", ".join(str(len(r.devices_ids)) for r in request.container_requests)
        log.info("%s: allocated %s device(s) to %d container(s)", resource.name, sizes, len(answers))
        return pb.AllocateResponse(container_responses=answers)

    def PreStartContainer(self, request: pb.PreStartContainerRequest,
                          context: grpc.ServicerContext) -> pb.PreStartContainerResponse:  # fmt: skip
        return pb.PreStartContainerResponse()  # not asked for (OPTIONS.pre_start_required is false)

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


def _response(grant: Grant) -> Any:
    return pb.ContainerAllocateResponse(
        envs=dict(grant.envs),
        mounts=[pb.Mount(container_path=m.container_path, host_path=m.host_path, read_only=m.read_only)
                for m in grant.mounts],
        devices=[pb.DeviceSpec(container_path=d.container_path, host_path=d.host_path, permissions=d.permissions)
                 for d in grant.devices],
    )  # fmt: skip


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, exc: AllocationError) -> NoReturn:
    log.warning("%s", exc)
    context.abort(code, str(exc))  # raises: the call ends with this status
    raise AssertionError("grpc's abort returned")
