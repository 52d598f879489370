"""A fake kubelet: the device manager's side of the device plugin API v1beta1, as kubelet speaks it.

It serves ``Registration`` on ``<dir>/kubelet.sock`` and checks what
kubelet checks (the API version, an extended resource name, a socket name
inside the directory). For every registration it dials the plugin's socket
as kubelet's device manager does: ``GetDevicePluginOptions``, then one
``ListAndWatch`` stream kept open, whose answers it records. Tests call
Allocate and GetPreferredAllocation through :meth:`FakeKubelet.client`.
:meth:`FakeKubelet.restart` does what a kubelet restart does to the
directory: its socket goes, every other socket in the directory is removed
(pkg/kubelet/cm/devicemanager ``Start``), and a new kubelet.sock appears.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures

import grpc

from inclavare._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2 as pb
from inclavare._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2_grpc as pb_grpc


class Registration:
    def __init__(self, at: float, request: pb.RegisterRequest) -> None:
        self.at = at  # time.monotonic() when kubelet got it
        self.request = request
        self.options: pb.DevicePluginOptions | None = None


class FakeKubelet(pb_grpc.RegistrationServicer):
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.socket = os.path.join(directory, "kubelet.sock")
        self.registrations: list[Registration] = []
        self.refuse: str | None = None  # set: Register fails with this (an old kubelet, say)
        self.lists: dict[str, list[list[tuple[str, str]]]] = {}  # resource -> every ListAndWatch answer
        self._cond = threading.Condition()
        self._server: grpc.Server | None = None
        self._channels: list[grpc.Channel] = []

    # -- kubelet's Registration service ----------------------------------------------------

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        if self.refuse is not None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, self.refuse)
        if request.version != "v1beta1":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported API version {request.version}")
        domain, slash, name = request.resource_name.partition("/")
        if not slash or not domain or not name or domain.endswith("kubernetes.io"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid resource name {request.resource_name}")
        if "/" in request.endpoint or not os.path.exists(os.path.join(self.directory, request.endpoint)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no plugin socket {request.endpoint}")
        registration = Registration(time.monotonic(), request)
        with self._cond:
            self.registrations.append(registration)
            self._cond.notify_all()
        threading.Thread(target=self._watch, args=(registration,), daemon=True).start()
        return pb.Empty()

    def _watch(self, registration: Registration) -> None:
        """The device manager's endpoint: options, then the ListAndWatch stream until it ends."""
        stub = self.client(registration.request.resource_name)
        try:
            registration.options = stub.GetDevicePluginOptions(pb.Empty(), timeout=5)
            for answer in stub.ListAndWatch(pb.Empty()):
                with self._cond:
                    devices = [(d.ID, d.health) for d in answer.devices]
                    self.lists.setdefault(registration.request.resource_name, []).append(devices)
                    self._cond.notify_all()
        except (grpc.RpcError, ValueError):
            # the plugin stopped or restarted (kubelet waits for the next registration), or this fake
            # kubelet stopped and closed the channel under the call (ValueError: closed channel)
            pass

    # -- for the tests ---------------------------------------------------------------------

    def start(self) -> FakeKubelet:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_RegistrationServicer_to_server(self, server)
        server.add_insecure_port(f"unix:{self.socket}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(0).wait()
            self._server = None
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        for path in (self.socket,):
            if os.path.exists(path):
                os.unlink(path)

    def restart(self) -> float:
        """Stop, empty the directory of sockets as kubelet's device manager does, start; returns when."""
        self.stop()
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if not os.path.isdir(path):
                os.unlink(path)
        started = time.monotonic()
        self.start()
        return started

    def client(self, resource: str) -> pb_grpc.DevicePluginStub:
        """A stub on the socket `resource` registered last."""
        endpoint = self.registered(resource).request.endpoint
        channel = grpc.insecure_channel(f"unix:{os.path.join(self.directory, endpoint)}")
        self._channels.append(channel)
        return pb_grpc.DevicePluginStub(channel)

    def registered(self, resource: str, after: float = 0.0, timeout: float = 5.0) -> Registration:
        """The latest registration of `resource` at or after `after` (time.monotonic()), waiting for it."""
        with self._cond:
            found = self._cond.wait_for(lambda: self._latest(resource, after), timeout)
        if not found:
            raise AssertionError(f"{resource} did not register within {timeout} s: {self.registrations}")
        return found

    def _latest(self, resource: str, after: float) -> Registration | None:
        mine = [r for r in self.registrations if r.request.resource_name == resource and r.at >= after]
        return mine[-1] if mine else None

    def wait_list(self, resource: str, predicate, timeout: float = 5.0) -> list[tuple[str, str]]:
        """The first ListAndWatch answer for `resource` (the latest first) that satisfies `predicate`."""

        def match() -> list[tuple[str, str]] | None:
            answers = self.lists.get(resource, [])
            return answers[-1] if answers and predicate(answers[-1]) else None

        with self._cond:
            found = self._cond.wait_for(match, timeout)
        if found is None:
            raise AssertionError(f"no ListAndWatch answer for {resource} as expected: {self.lists.get(resource)}")
        return found

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
