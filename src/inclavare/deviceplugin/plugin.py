"""The plugin's loop: scan the node, serve each resource, register with kubelet, and again when it restarts.

Every ``interval`` (0.5 s by default) one :meth:`DevicePlugin.step`:

1. re-reads the settings file if it changed (:mod:`.config`);
2. scans the node (:mod:`.node`) and works out the resources
   (:func:`.resources.inventory`); one that disappeared stays, unhealthy;
3. rewrites the NFD feature file if the labels changed (:mod:`.features`);
4. hands each server its resource: a changed device list (health, capacity)
   goes down every ListAndWatch stream; a new resource gets a server and is
   registered;
5. watches kubelet: a restarted kubelet recreates ``kubelet.sock`` (another
   inode) and removes every other socket in the directory
   (pkg/kubelet/cm/devicemanager, ``Start``), so when the socket's identity
   changes, or one of ours is gone, every server is restarted on a fresh
   socket and registered again — within one interval of kubelet's return.

The protocol order is kubelet's (the device plugin KEP, "Registration"):
serve first, then ``Register`` (version ``v1beta1``, our socket's name, the
resource name, the options); kubelet then dials the socket.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading

import grpc

from .._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2 as pb
from .._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2_grpc as pb_grpc
from . import features
from .config import SettingsFile
from .errors import DevicePluginError
from .node import Probe
from .resources import Resource, Settings, carry_over, inventory
from .server import OPTIONS, ResourceServer

log = logging.getLogger("inclavare.deviceplugin")
KUBELET_DIR = "/var/lib/kubelet/device-plugins"
KUBELET_SOCKET = "kubelet.sock"
API_VERSION = "v1beta1"


@dataclasses.dataclass(frozen=True)
class Options:
    directory: str = KUBELET_DIR  # kubelet's device-plugins directory: its socket and ours
    root: str = "/"  # where the host's files are (the host's / mounted into the plugin's container)
    rune: str = "/usr/local/bin/rune"  # enclave memory is healthy while this is installed
    feature_file: str | None = features.FEATURE_FILE  # None: no NFD labels
    config: str | None = None  # the settings file, re-read when it changes
    settings: Settings = dataclasses.field(default_factory=Settings)  # the flags (the file's keys override them)
    interval: float = 0.5  # seconds between two steps
    register_timeout: float = 5.0


class DevicePlugin:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.kubelet = os.path.join(options.directory, KUBELET_SOCKET)
        self.probe = Probe(options.root, options.rune)
        self.settings = SettingsFile(options.config, options.settings)  # a bad file is an error at start
        self.servers: dict[str, ResourceServer] = {}
        self.registered_with: tuple[int, int] | None = None  # kubelet.sock's (dev, ino) we registered with
        self.registrations = 0  # successful Register calls, for logs and tests
        self._last_error = ""

    def run(self, stop: threading.Event) -> None:
        """Step until `stop` is set, then stop serving and take the labels back."""
        if not os.path.isdir(self.options.directory):
            raise DevicePluginError(self.options.directory, "no such directory (kubelet's device-plugins directory)")
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.options.interval)
        finally:
            self.shutdown()

    def step(self) -> None:
        try:
            if self.settings.reload():
                log.info("settings changed: %s", self.settings.settings)
        except DevicePluginError as exc:
            self._report(f"{exc} (keeping the settings in force)")
        scan = self.probe.scan()
        resources = carry_over({n: s.resource for n, s in self.servers.items()},
                               inventory(scan, self.settings.settings))  # fmt: skip
        if self.options.feature_file and features.write(
            self.options.feature_file, features.render(features.labels(scan, self.settings.settings))
        ):
            log.info("node labels written to %s", self.options.feature_file)
        fresh = []
        for name, resource in resources.items():
            if name in self.servers:
                if self.servers[name].update(resource):
                    log.info("%s: %s", name, _describe(resource))
            else:
                self.servers[name] = ResourceServer(self.options.directory, resource)
                fresh.append(name)
        self._keep_registered(fresh)

    def shutdown(self) -> None:
        for server in self.servers.values():
            server.stop()
        if self.options.feature_file:
            features.remove(self.options.feature_file)

    def _keep_registered(self, fresh: list[str]) -> None:
        try:
            st = os.stat(self.kubelet)
            kubelet = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            self.registered_with = None  # kubelet is not (yet, or any more) there
            return
        everything = kubelet != self.registered_with or any(not s.socket_alive() for s in self.servers.values())
        names = list(self.servers) if everything else fresh
        if everything and self.registered_with is not None:
            log.info("kubelet restarted (%s was recreated): registering again", self.kubelet)
        try:
            for name in names:
                server = self.servers[name]
                server.stop(grace=0)
                server.start()
                self._register(server.resource)
        except (DevicePluginError, OSError, RuntimeError) as exc:
            self.registered_with = None  # try everything again at the next step
            self._report(str(exc))
            return
        self.registered_with = kubelet

    def _register(self, resource: Resource) -> None:
        request = pb.RegisterRequest(version=API_VERSION, endpoint=resource.endpoint, resource_name=resource.name,
                                     options=OPTIONS)  # fmt: skip
        with grpc.insecure_channel(f"unix:{self.kubelet}") as channel:
            try:
                pb_grpc.RegistrationStub(channel).Register(request, timeout=self.options.register_timeout)
            except grpc.RpcError as exc:
                raise DevicePluginError(self.kubelet, f"Register {resource.name}: {_status(exc)}") from None
        self.registrations += 1
        self._last_error = ""
        log.info("registered %s (%s) with kubelet: %s", resource.name, resource.endpoint, _describe(resource))

    def _report(self, message: str) -> None:
        """Log an error once, not at every step while it lasts."""
        if message != self._last_error:
            log.error("%s", message)
            self._last_error = message


def _describe(resource: Resource) -> str:
    return f"{resource.count} device(s), {'healthy' if resource.healthy else 'UNHEALTHY'}"


def _status(exc: grpc.RpcError) -> str:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    return f"{code.name if code is not None else 'error'}: {details}"
