"""init's side of a pooled instance: an :class:`EnclaveRuntime` whose calls go to the guest.

The init-runelet (runtime/process/runelet.py) drives it as it drives an
in-process runtime — signals, `rune exec`, `rune attest`, secret
provisioning and the exit status all take the same path — while the enclave
lives in the guest (:mod:`.guest`), inside the same container. Each call is
one datagram on the control socket carrying a fresh reply socket, so calls
from different threads never wait for each other (a blocked ``wait`` and a
``kill``). If the guest goes away, every call fails with one line and the
runelet ends the container, as when an in-process runtime fails.
"""

from __future__ import annotations

import os
import signal
import socket

from ...errors import EnclaveError
from ..errors import EnclaveStateError
from ..interface import INTERFACE_VERSION, Capabilities
from . import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..identity.broker import BrokerPin


def capabilities(name: str) -> Capabilities:
    """What a pooled built-in runtime can do: the same before and after the handoff."""
    return {"name": name, "kind": "python", "source": "epm warm pool", "api_version": INTERFACE_VERSION,
            "tee": "software", "can_kill": True, "can_report": True}  # fmt: skip


class PooledRuntime:
    def __init__(self, sock: socket.socket, name: str) -> None:
        self.name = name
        self._sock = sock
        self._destroyed = False
        self._gone = False  # the guest went away under a wait (see wait)

    def probe(self) -> Capabilities:
        return capabilities(self.name)

    def handoff(self, handoff: dict[str, object]) -> None:
        """Send the guest into this container (init's pidfd and stdio) and wait until it
        has verified the container's rootfs and become the process spec's identity."""
        pidfd = os.pidfd_open(os.getpid())
        try:
            wire.send(self._sock, {"op": "handoff", **handoff}, [pidfd, 0, 1, 2])
            _, fds = wire.expect(self._sock, "adopted")
        except (OSError, wire.PoolProtocolError) as exc:
            raise gone(self.name, exc) from None
        finally:
            os.close(pidfd)
        for fd in fds:
            os.close(fd)

    def init(self, args: str, log_level: str, pooled: tuple[int, int] | None = None) -> None:
        raise EnclaveStateError(f"enclave runtime {self.name}: a pooled instance is initialised by its handoff")

    def create_process(self, path: str, argv: Sequence[str], env: Sequence[str], stdio: tuple[int, int, int]) -> int:
        for fd in stdio:  # checked here, as the runtime would: sending a closed fd fails less clearly
            try:
                os.fstat(fd)
            except OSError as exc:
                raise EnclaveError(f"enclave runtime {self.name}: stdio fd {fd}: {exc.strerror}") from None
        reply = self._call({"name": "create_process", "path": path, "argv": list(argv), "env": list(env)}, stdio)
        return _int(reply, "handle")

    def wait(self, pid: int) -> int:
        try:
            return _int(self._call({"name": "wait", "pid": pid}), "status")
        except InstanceGone:
            # The guest was killed (the OOM killer picks it: the enclave's memory is there), and
            # the process with it: reported as a process killed by SIGKILL is, 128+9.
            self._gone = True
            return 128 + signal.SIGKILL

    def kill(self, pid: int, sig: int) -> None:
        self._call({"name": "kill", "pid": pid, "sig": sig})

    def local_report(self, target_info: bytes, report_data: bytes) -> bytes:
        reply = self._call({"name": "local_report", "target": target_info.hex(), "data": report_data.hex()})
        return wire.hexbytes(reply, "report")

    def pins_broker(self) -> bool:
        """Whether the verified manifest pins a key broker ([kbs])."""
        return self._call({"name": "trusted_broker"}).get("broker") is not None

    def trusted_broker(self) -> tuple[BrokerPin, bytes | None] | None:
        found = self._call({"name": "trusted_broker"}).get("broker")
        if found is None:
            return None
        from ..identity.broker import BrokerPin

        if not isinstance(found, dict):
            raise wire.PoolProtocolError("enclave pool: trusted_broker answered nonsense")
        pin = BrokerPin(tuple(found["urls"]), found["cacert"], tuple(bytes.fromhex(p) for p in found["pins"]))
        return pin, bytes.fromhex(found["ca"]) if found["ca"] is not None else None

    def destroy(self) -> None:
        if self._destroyed:
            raise EnclaveStateError(f"enclave runtime {self.name}: destroy called twice")
        try:
            if not self._gone:  # an enclave already gone is destroyed
                self._call({"name": "destroy"})
        except InstanceGone:
            pass
        finally:
            self._destroyed = True
            self._sock.close()

    def _call(self, msg: dict[str, object], fds: tuple[int, ...] = ()) -> dict[str, object]:
        if self._destroyed:
            raise EnclaveStateError(f"enclave runtime {self.name}: {msg['name']} called after destroy")
        mine, theirs = wire.pair()
        with mine:
            try:
                wire.send(self._sock, {"op": "call", **msg}, [theirs.fileno(), *fds])
                theirs.close()
                reply, extra = wire.expect(mine, "result")
            except (OSError, wire.PoolProtocolError) as exc:
                raise gone(self.name, exc) from None
            finally:
                theirs.close()
        for fd in extra:
            os.close(fd)
        return reply


class InstanceGone(EnclaveError):
    """The guest is unreachable: killed, or never there."""


def gone(name: str, exc: BaseException) -> InstanceGone:
    """One line, whichever way the socket said so."""
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).removeprefix("enclave pool: ")
    return InstanceGone(f"enclave runtime {name}: enclave pool: the pooled enclave instance is gone ({why})")


def _int(msg: dict[str, object], name: str) -> int:
    value = msg.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise wire.PoolProtocolError(f"enclave pool: the answer's {name} is not an integer")
    return value
