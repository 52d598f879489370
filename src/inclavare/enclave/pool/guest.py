"""The guest: a pooled instance inside its container, serving init as its enclave runtime.

Forked by the instance (:mod:`.instance`) in the container's pid namespace,
it becomes what the unpooled init-runelet's runtime is, in this order:

1. takes init's stdio as its own (it lives and dies with the container's pid
   namespace, not with the instance that forked it: a service manager that
   stops epm's cgroup kills the instance, never a running container);
2. takes init's process attributes, cgroups, namespaces and root (:mod:`.joins`),
   and from then on imports nothing (the mount namespace is the image's);
3. joins the container's session keyring (runc: one per container);
4. ``adopt``: verifies the container's rootfs exactly as init would and refuses
   an enclave that is not the one it was prepared for (runtimes/_base.py);
5. becomes the process spec's identity with the same code as `rune exec`
   (rlimits, no_new_privs, capabilities and user, umask, cwd) and loads the
   container's seccomp filter, compiled by `rune create`;
6. answers ``adopted`` and serves calls until ``destroy`` or init's end.

Each call arrives as ``{"op": "call", "name": ...}`` with a reply socket as its
first fd (stdio after it for ``create_process``) and runs in a thread of its
own, so a ``wait`` never holds up a ``kill`` (enclave/interface.py, Threading).
"""

from __future__ import annotations

import importlib.machinery
import os
import socket
import sys
import threading

from ..._sys.seccomp import Program
from ...runtime import privileges
from ...runtime.process import workload
from ...seccomp import Filter
from ...spec.load import build
from ...spec.model import Process
from ..runtimes._base import block_async_signals
from . import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ..._sys import Syscalls
    from ..interface import EnclaveRuntime
    from ..runtimes._base import RuntimeBase
    from .joins import Joins


def run(sc: Syscalls, rt: RuntimeBase, sock: socket.socket, msg: dict[str, object], stdio: list[int],
        joins: Joins) -> NoReturn:  # fmt: skip
    try:
        sc.set_name("rune:[POOLED]")
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
            os.close(fd)
        joins.enter(sc)
        _lock_imports()
        if keyring := msg.get("keyring"):
            _join_keyring(sc, str(keyring))
        rt.adopt(wire.string(msg, "args"), wire.string(msg, "log_level"))
        _become(sc, msg)
        wire.send(sock, {"op": "adopted", "caps": dict(rt.probe())})
    except BaseException as exc:
        try:
            wire.send(sock, wire.error_message(exc))
        finally:
            os._exit(1)
    os._exit(Server(rt, sock).serve())


def _lock_imports() -> None:
    """From here on the mount namespace is the container's: an import would run the image's
    code (its /usr/lib/python3*), as root, beside the host key. Everything the guest runs was
    imported in the instance; only built-in and frozen modules may still load."""
    sys.meta_path[:] = [f for f in sys.meta_path if f in (importlib.machinery.BuiltinImporter,
                                                        importlib.machinery.FrozenImporter)]  # fmt: skip
    sys.path_importer_cache.clear()
    sys.path[:] = []


def _join_keyring(sc: Syscalls, name: str) -> None:
    from ...errors import SyscallError

    try:
        sc.join_session_keyring(name)
    except SyscallError as exc:
        if exc.errno not in (38, 13, 1):  # ENOSYS, EACCES, EPERM: as init (runtime/process/init.py)
            raise


def _become(sc: Syscalls, msg: dict[str, object]) -> None:
    """The process spec's identity, then the container's seccomp filter (as init, enclave_executor.py)."""
    process = build(Process, msg.get("process"), "process", "config.json")
    assert isinstance(process, Process)
    code, flags = wire.hexbytes(msg, "seccomp"), msg.get("seccomp_flags")
    flt = Filter(Program(code, flags)) if code and isinstance(flags, int) else None
    workload.prepare_process(sc, process, resolve=False, seccomp=flt is not None)
    sc.close_range_cloexec(3)
    if flt is not None:
        flt.load()
        caps = process.capabilities
        if caps is None:
            sc.capset(0, 0, 0)
        else:
            sc.capset(privileges.cap_mask(caps.effective), privileges.cap_mask(caps.permitted),
                      privileges.cap_mask(caps.inheritable))  # fmt: skip


class Server:
    """The calls of :class:`.proxy.PooledRuntime`, against the adopted runtime."""

    def __init__(self, rt: EnclaveRuntime, sock: socket.socket) -> None:
        self.rt = rt
        self.sock = sock
        self._stdio: dict[int, list[int]] = {}  # handle -> stdio fds, closed when its wait returns
        self._lock = threading.Lock()
        self._destroyed = threading.Event()

    def serve(self) -> int:
        while not self._destroyed.is_set():
            try:
                msg, fds = wire.recv(self.sock)
            except (wire.PoolProtocolError, OSError):
                break  # init is gone: so is the container
            if msg["op"] != "call" or not fds:
                for fd in fds:
                    os.close(fd)
                continue
            if msg.get("name") == "destroy":
                self._call(msg, fds)  # on this thread: nothing is served after it
                return 0
            threading.Thread(target=self._call, args=(msg, fds), daemon=True).start()
        self._destroy_quietly()
        return 0

    def _call(self, msg: dict[str, object], fds: list[int]) -> None:
        block_async_signals()
        name, extra = str(msg.get("name")), fds[1:]
        if name != "create_process":  # only its stdio are kept; stray fds of other calls are not
            for fd in extra:
                os.close(fd)
            extra = []
        try:
            reply = socket.socket(fileno=fds[0])
        except OSError:  # not a socket: nobody to answer
            os.close(fds[0])
            for fd in extra:
                os.close(fd)
            return
        try:
            answer: dict[str, object] = {"op": "result", **self._dispatch(name, msg, extra)}
        except Exception as exc:
            answer = wire.error_message(exc)
        try:
            wire.send(reply, answer)
        except OSError:
            pass
        finally:
            reply.close()

    def _dispatch(self, name: str, msg: dict[str, object], fds: list[int]) -> dict[str, object]:
        rt = self.rt
        if name == "create_process":
            return {"handle": self._create(msg, fds)}
        if name == "wait":
            handle = _int(msg, "pid")
            status = rt.wait(handle)  # a refused wait (a second one, say) leaves the process its stdio
            with self._lock:
                for fd in self._stdio.pop(handle, []):
                    os.close(fd)
            return {"status": status}
        if name == "kill":
            rt.kill(_int(msg, "pid"), _int(msg, "sig"))
            return {}
        if name == "local_report":
            return {"report": rt.local_report(wire.hexbytes(msg, "target"), wire.hexbytes(msg, "data")).hex()}
        if name == "trusted_broker":
            return {"broker": _broker(rt)}
        if name == "destroy":
            self._destroyed.set()
            rt.destroy()
            return {}
        raise wire.PoolProtocolError(f"enclave pool: no call {name[:40]!r}")

    def _create(self, msg: dict[str, object], fds: list[int]) -> int:
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise wire.PoolProtocolError("enclave pool: create_process carries three stdio fds")
        argv, env = msg.get("argv"), msg.get("env")
        if not (isinstance(argv, list) and isinstance(env, list) and all(isinstance(a, str) for a in argv + env)):
            raise wire.PoolProtocolError("enclave pool: create_process.argv and .env are lists of strings")
        try:
            handle = self.rt.create_process(wire.string(msg, "path"), argv, env, (fds[0], fds[1], fds[2]))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        with self._lock:
            self._stdio[handle] = fds
        return handle

    def _destroy_quietly(self) -> None:
        try:
            self.rt.destroy()
        except Exception:
            pass


def _int(msg: dict[str, object], name: str) -> int:
    value = msg.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise wire.PoolProtocolError(f"enclave pool: {msg.get('name')}.{name} is not an integer")
    return value


def _broker(rt: EnclaveRuntime) -> dict[str, object] | None:
    ask = getattr(rt, "trusted_broker", None)
    found = ask() if ask is not None else None
    if found is None:
        return None
    pin, ca = found
    return {"urls": list(pin.urls), "cacert": pin.cacert, "pins": [p.hex() for p in pin.pin_sha256],
            "ca": ca.hex() if ca is not None else None}  # fmt: skip
