"""Driving containerd-shim-rune-v2 the way containerd does, without containerd.

``ShimUnderTest`` runs ``build/containerd-shim-rune-v2 ... start`` in a bundle
(flags, $TTRPC_ADDRESS and the options on stdin as runtime/v2/binary.go
passes them), connects to the address it prints and calls the Task service
over ttrpc; an ``EventSink`` stands in for containerd's ttrpc events service
and records every envelope the shim forwards. What containerd itself does
with the shim (fifos, the CRI) is tested through a real containerd in the
other files; here each RPC's answer, error code and event is checked
directly.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any

from inclavare.log import Logger
from inclavare.shim import pb
from inclavare.shim.client import Client
from inclavare.shim.server import Server
from inclavare.testing.containers import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHIM = os.path.join(ROOT, "build", "containerd-shim-rune-v2")
RUNE = os.path.join(ROOT, "build", "rune")
TASK = "containerd.task.v2.Task"
CTR_NAMESPACE = "shim-ctr"  # the containerd namespace of the ctr tests
RESPONSES = {"Create": "CreateTaskResponse", "State": "StateResponse", "Start": "StartResponse",
             "Delete": "DeleteResponse", "Pids": "PidsResponse", "Wait": "WaitResponse", "Stats": "StatsResponse",
             "Connect": "ConnectResponse"}  # fmt: skip
EVENTS = "containerd.services.events.ttrpc.v1.Events"


class EventSink:
    """containerd's ttrpc events service, recording (topic, event message) in arrival order."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "events.sock")
        self.events: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(16)
        self.server = Server({EVENTS: {"Forward": (pb.events_svc.ForwardRequest, self._forward)}},
                             Logger(os.path.join(directory, "sink.log")))  # fmt: skip
        self.server.serve(listener)
        self._listener = listener

    def _forward(self, req: Any) -> Any:
        env = req.envelope
        name = env.event.type_url.rpartition(".")[2]
        with self._lock:
            self.events.append((env.topic, getattr(pb.ev, name).FromString(env.event.value)))
        return pb.wkt.Empty()

    def topics(self, container_id: str | None = None) -> list[str]:
        with self._lock:
            return [t for t, e in self.events if container_id is None or e.container_id == container_id]

    def wait_topic(self, topic: str, container_id: str, timeout: float = 10.0) -> Any:
        def found() -> Any:
            with self._lock:
                return next((e for t, e in self.events if t == topic and e.container_id == container_id), None)

        return wait_for(found, f"event {topic} of {container_id}", timeout)

    def close(self) -> None:
        self.server.close()
        self._listener.close()


class ShimUnderTest:
    def __init__(self, state_dir: str, namespace: str, sink: EventSink, rune_root: str) -> None:
        self.state_dir = state_dir  # containerd's <state>/io.containerd.runtime.v2.task
        self.namespace = namespace
        self.sink = sink
        self.rune_root = rune_root
        self.containerd_address = os.path.join(state_dir, "containerd.sock")  # only a name here
        self.address = ""
        self.client: Client | None = None
        self.bundles: dict[str, str] = {}
        os.makedirs(state_dir, exist_ok=True)
        self.config = os.path.join(state_dir, "shim-rune.toml")
        with open(self.config, "w") as f:
            f.write(f'binary_name = "{RUNE}"\nroot = "{rune_root}"\n')

    def env(self) -> dict[str, str]:
        path = f"{os.path.dirname(RUNE)}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        return dict(os.environ, TTRPC_ADDRESS=self.sink.path, PATH=path)

    def options(self, config: str | None = None) -> Any:
        opts = pb.runtime_options.Options(config_path=config or self.config)
        return pb.wkt.Any(type_url="runtimeoptions.v1.Options", value=opts.SerializeToString())

    def start(self, cid: str, bundle: str, debug: bool = False) -> str:
        """`start` for the container whose bundle is `bundle` (it must be in state_dir/namespace/cid)."""
        args = [SHIM, "-namespace", self.namespace, "-address", self.containerd_address, "-publish-binary",
                "containerd", "-id", cid, *(["-debug"] if debug else []), "start"]  # fmt: skip
        if not os.path.exists(os.path.join(bundle, "log")):
            os.mkfifo(os.path.join(bundle, "log"))
        log_r = os.open(os.path.join(bundle, "log"), os.O_RDWR | os.O_NONBLOCK)  # as containerd holds it
        self._logs = [*getattr(self, "_logs", []), log_r]
        proc = subprocess.run(args, cwd=bundle, input=self.options().SerializeToString(), capture_output=True,
                              env=self.env(), timeout=60, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"start failed ({proc.returncode}): {proc.stdout!r} {proc.stderr!r}")
        address = proc.stdout.decode().strip()
        if self.client is None or address != self.address:
            self.address = address
            self.client = Client(address, timeout=60)
        self.bundles[cid] = bundle
        return address

    def shim_log(self) -> str:
        out = b""
        for fd in getattr(self, "_logs", []):
            try:
                out += os.read(fd, 1 << 20)
            except BlockingIOError:
                pass
        return out.decode(errors="replace")

    def call(self, method: str, request: Any) -> Any:
        assert self.client is not None
        name = RESPONSES.get(method)
        return self.client.call(TASK, method, request, getattr(pb.api, name) if name else pb.wkt.Empty)

    def create(self, cid: str, bundle: str, **io: Any) -> int:
        self.start(cid, bundle)
        req = pb.api.CreateTaskRequest(id=cid, bundle=bundle, options=self.options(), **io)
        return int(self.call("Create", req).pid)

    def shim_pid(self) -> int:
        return int(self.call("Connect", pb.api.ConnectRequest()).shim_pid)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for fd in getattr(self, "_logs", []):
            os.close(fd)


def bundle_dir(state_dir: str, namespace: str, cid: str) -> str:
    path = os.path.join(state_dir, namespace, cid)
    os.makedirs(path, exist_ok=True)
    return path


def fifos(directory: str, name: str) -> dict[str, str]:
    """stdin/stdout/stderr fifos as containerd's client makes them, its read ends open."""
    paths = {s: os.path.join(directory, f"{name}-{s}") for s in ("stdin", "stdout", "stderr")}
    for p in paths.values():
        os.mkfifo(p)
    return paths


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def short_tmp() -> str:
    """A short directory (unix socket paths must stay under 108 bytes)."""
    return tempfile.mkdtemp(prefix="shimt-", dir="/tmp")
