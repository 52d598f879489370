"""Task events, published to containerd in the order they happened.

containerd 1.6's shims do not run the ``-publish-binary`` for each event:
they forward it over ttrpc to containerd's events service at $TTRPC_ADDRESS
(``containerd.services.events.ttrpc.v1.Events/Forward``, an Envelope of
timestamp, namespace, topic and the event as an Any; runtime/v2/shim/
publisher.go RemoteEventsPublisher). The shim does the same, from one thread
and a queue, so a slow containerd never blocks an RPC and TaskStart always
goes out before that task's TaskExit. A failed forward is retried on a new
connection up to 5 times, 1, 2, ... 5 s apart (upstream's maxRequeue), then
dropped with an error line. Without $TTRPC_ADDRESS (a shim run by hand, an
older daemon), each event goes through the publish binary instead:
``<containerd> --address <address> publish --topic T --namespace N`` with the
Any on stdin (cmd/containerd/command/publish.go).

The Any's type URL is the event's full protobuf name, with no
``type.googleapis.com/`` prefix: that is what containerd's typeurl v1.0.2
writes (proto.MessageName) and looks events up by.
"""

from __future__ import annotations

import os
import threading
import time
from _queue import SimpleQueue  # queue.SimpleQueue without the queue module's imports

from .client import CallError, Client
from .pb import events_svc, wkt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..log import Logger
    from .reaper import Reaper

# runtime/events.go
TOPICS = {
    "TaskCreate": "/tasks/create", "TaskStart": "/tasks/start", "TaskOOM": "/tasks/oom",
    "TaskExit": "/tasks/exit", "TaskDelete": "/tasks/delete", "TaskExecAdded": "/tasks/exec-added",
    "TaskExecStarted": "/tasks/exec-started", "TaskPaused": "/tasks/paused", "TaskResumed": "/tasks/resumed",
}  # fmt: skip
SERVICE = "containerd.services.events.ttrpc.v1.Events"
MAX_REQUEUE = 5


def pack(message: Any) -> Any:
    """``message`` as a google.protobuf.Any the way containerd's typeurl packs it."""
    return wkt.Any(type_url=message.DESCRIPTOR.full_name, value=message.SerializeToString())


def timestamp(seconds: float) -> Any:
    nanos = int(seconds * 1e9)
    return wkt.Timestamp(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


class Publisher:
    def __init__(self, namespace: str, ttrpc_address: str, log: Logger, publish_binary: str = "",
                 containerd_address: str = "", reaper: Reaper | None = None) -> None:  # fmt: skip
        self.namespace = namespace
        self.log = log
        self.client = Client(ttrpc_address, timeout=5.0) if ttrpc_address else None
        self.publish_binary = publish_binary
        self.containerd_address = containerd_address
        self.reaper = reaper
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def publish(self, event: Any) -> None:
        """Queue `event` (a containerd.events message) for containerd."""
        envelope = events_svc.Envelope(timestamp=timestamp(time.time()), namespace=self.namespace,
                                       topic=TOPICS[type(event).__name__], event=pack(event))  # fmt: skip
        self._queue.put(envelope)

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued (for up to `timeout` seconds); whether everything went out."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            envelope = self._queue.get()
            if envelope is None:
                if self.client is not None:
                    self.client.close()
                return
            for attempt in range(MAX_REQUEUE + 1):
                try:
                    self._forward(envelope)
                    break
                except Exception as exc:  # CallError, or a bug: the queue must go on either way
                    self.log.error(f"forward event {envelope.topic}: {exc}")
                    if attempt == MAX_REQUEUE:
                        self.log.error(f"evicting {envelope.topic} from queue because of retry count")
                    else:
                        time.sleep(attempt + 1)

    def _forward(self, envelope: Any) -> None:
        if self.client is not None:
            self.client.call(SERVICE, "Forward", events_svc.ForwardRequest(envelope=envelope), wkt.Empty)
            return
        self._publish_binary(envelope)

    def _publish_binary(self, envelope: Any) -> None:
        if self.reaper is None or not self.publish_binary:
            raise CallError(14, "no TTRPC_ADDRESS and no -publish-binary to publish events with")
        r, w = os.pipe()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            argv = [self.publish_binary, "--address", self.containerd_address, "publish", "--topic", envelope.topic,
                    "--namespace", self.namespace]  # fmt: skip
            pid = self.reaper.spawn(argv, r, null, null)
            os.close(r)
            r = -1
            os.write(w, envelope.event.SerializeToString())
            os.close(w)
            w = -1
            status = self.reaper.wait(pid, 30)
        finally:
            for fd in (r, w, null):
                if fd >= 0:
                    os.close(fd)
        if status != 0:
            raise CallError(14, f"{self.publish_binary} publish exited with status {status}")
