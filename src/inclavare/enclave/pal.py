"""A PAL shared library as an :class:`~inclavare.enclave.interface.EnclaveRuntime`.

Ref: docs/pal-abi.md (PAL API v1-v3). ``PalRuntime(path)`` dlopens the library,
negotiates the API version and checks the symbols that version requires;
the calls then map onto the PAL as the interface table says. Unlike the
original loader (``rune/libenclave/internal/runtime/pal``), nothing here is global, nothing
exits the process, and every failure is one line naming library and call:
``enclave runtime liberpal-x.so: pal_init failed: -22 (Invalid argument)``.

PAL API v1 has a single ``pal_exec`` that runs a program to its end, so
``create_process`` only records the request and returns a handle; the program
runs when ``wait(handle)`` calls ``pal_exec``. v1 also has no environment
parameter: the PAL's programs see the caller's own environment, as they did
in the original init-runelet (whose environment was the container's).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from .._sys import consts as c
from .._sys import pal as abi
from ..attestation import REPORT_DATA_SIZE  # sgx_report_data_t
from ..errors import EnclaveError
from .errors import (
    EnclaveConfigError,
    EnclaveNotSupported,
    EnclaveStateError,
    PalCallFailed,
    PalLoadError,
    PalSymbolMissing,
    PalVersionUnsupported,
)
from .interface import PID_CURRENT, TEE_KINDS, Capabilities, Lifecycle

VERSION_MAX = 3
REQUIRED = {
    1: ("pal_init", "pal_exec", "pal_destroy"),
    2: ("pal_init", "pal_create_process", "pal_exec", "pal_destroy"),
    3: ("pal_init", "pal_create_process", "pal_exec", "pal_destroy"),
}

# Blocked around PAL calls made from worker threads. cgo PALs ran under Go,
# whose signal handlers use SA_RESTART, so C PALs rarely retry on EINTR;
# Python's handlers do not restart. With these blocked in the worker, the
# kernel delivers process signals to the main thread, which handles them.
# Fault signals stay unblocked (blocking them is undefined, sigprocmask(2)).
_ASYNC_SIGNALS = signal.valid_signals() - {
    signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS,
    signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS,
}  # fmt: skip

_T = TypeVar("_T")


def _quiet(_msg: str) -> None:
    """The default debug sink: drop the line."""


class PalRuntime:
    """One loaded PAL library: the enclave it creates and its processes."""

    def __init__(self, path: str, *, tee: str = "intelSgx", log: Callable[[str], None] | None = None,
                 fd: int = -1) -> None:  # fmt: skip
        if tee not in TEE_KINDS:
            raise EnclaveConfigError(
                "enclave.type", f"unsupported enclave type {tee!r} (supported: intelSgx, software)"
            )
        self.path = path
        self.name = os.path.basename(path)
        self.tee = tee
        self._log = log or _quiet
        self._lib = _open(path, fd)
        self.api_version = self._negotiate()
        self._lib.bind(self.api_version)
        for symbol in REQUIRED[self.api_version]:
            if not self._lib.bound(symbol):
                raise PalSymbolMissing(self.name, symbol, self.api_version)
        self._life = Lifecycle(self.name)
        self._lock = threading.Lock()
        self._pids: set[int] = set()  # created and not yet claimed by a wait
        self._v1_pending: dict[int, tuple[str, list[str], tuple[int, int, int]]] = {}
        self._v1_next = 1
        self._latest = 0  # the pid created last, until its wait has reaped it (kill(PID_CURRENT))

    def _negotiate(self) -> int:
        """pal_get_version if exported, else 1; only 1 to 3 are known (docs/pal-abi.md, "Symbols")."""
        if not self._lib.has("pal_get_version"):
            self._log(f"{self.name}: no pal_get_version, assuming pal api version 1")
            return 1
        version = self._lib.get_version()
        self._log(f"{self.name}: pal_get_version() = {version}")
        if not 1 <= version <= VERSION_MAX:
            raise PalVersionUnsupported(self.name, version)
        return version

    def probe(self) -> Capabilities:
        return {
            "name": self.name,
            "kind": "pal",
            "source": self.path,
            "api_version": self.api_version,
            "tee": self.tee,
            "can_kill": self._lib.bound("pal_kill"),
            "can_report": self._lib.bound("pal_get_local_report"),
        }

    # -- lifecycle -------------------------------------------------------
    def init(self, args: str, log_level: str, pooled: tuple[int, int] | None = None) -> None:
        self._life.begin_init(log_level)
        # Commas separate options as spaces do: rune replaced them (docs/pal-abi.md, "Calls").
        args = args.replace(",", " ")
        if self.api_version >= 3:
            fd, addr = pooled if pooled is not None else (-1, 0)  # -1/0: no pooled enclave (pal_attr_v3_t)
            ret = self._call("pal_init", self._lib.init_v3, args, log_level, fd, addr)
        elif pooled is not None:
            raise EnclaveNotSupported(self._needs_v3("pooled enclaves"))
        else:
            ret = self._call("pal_init", self._lib.init_v1, args, log_level)
        self._check("pal_init", ret)
        self._life.initialized()

    def destroy(self) -> None:
        """pal_destroy; without a successful init there is nothing to destroy."""
        if self._life.destroy():
            self._check("pal_destroy", self._call("pal_destroy", self._lib.destroy))

    # -- processes -------------------------------------------------------
    def create_process(self, path: str, argv: Sequence[str], env: Sequence[str], stdio: tuple[int, int, int]) -> int:
        self._require_ready("create_process")
        argv, env = list(argv), list(env)
        _check_strings(self.name, [path, *argv, *env])
        if not argv:
            raise EnclaveError(f"enclave runtime {self.name}: create_process needs argv[0]")
        if self.api_version == 1:
            return self._defer_v1(path, argv, stdio)
        ret, pid = self._call("pal_create_process", self._lib.create_process, path, argv, _Redacted(env), stdio)
        self._check("pal_create_process", ret)
        if pid <= 0:
            raise PalCallFailed(self.name, "pal_create_process", ret, f"returned pid {pid}")
        with self._lock:
            self._pids.add(pid)
            self._latest = pid
        return pid

    def _defer_v1(self, path: str, argv: list[str], stdio: tuple[int, int, int]) -> int:
        with self._lock:
            handle, self._v1_next = self._v1_next, self._v1_next + 1
            self._v1_pending[handle] = (path, argv, stdio)
            self._pids.add(handle)
        self._log(f"{self.name}: pal api v1: {path} runs when waited for (pal_exec), without env")
        return handle

    def wait(self, pid: int) -> int:
        self._require_ready("wait")
        with self._lock:
            if pid not in self._pids:
                raise EnclaveStateError(f"enclave runtime {self.name}: no process {pid} to wait for")
            self._pids.discard(pid)
            pending = self._v1_pending.pop(pid, None)
        if pending is not None:
            ret, status = self._call("pal_exec", self._lib.exec_v1, *pending)
        else:
            ret, status = self._call("pal_exec", self._lib.exec, pid)
        self._check("pal_exec", ret)
        with self._lock:
            if self._latest == pid:
                self._latest = 0
        return status

    def kill(self, pid: int, sig: int) -> None:
        self._require_ready("kill")
        if not self._lib.bound("pal_kill"):
            why = "pal api version 1 has no pal_kill" if self.api_version == 1 else "it does not export pal_kill"
            raise EnclaveNotSupported(f"enclave runtime {self.name}: kill is not supported by this PAL ({why})")
        if not 0 <= sig <= c.SIGRTMAX:
            raise EnclaveError(f"enclave runtime {self.name}: invalid signal {sig}")
        if pid == PID_CURRENT:
            # Resolved from what this loader created: a PAL may fall back to
            # *all* processes once the latest was reaped (the fixture PALs'
            # pt_kill does), signalling processes the caller did not mean.
            with self._lock:
                pid = self._latest
            if not pid:
                raise EnclaveStateError(f"enclave runtime {self.name}: no process {PID_CURRENT} to signal")
        self._check("pal_kill", self._call("pal_kill", self._lib.kill, pid, sig))

    # -- attestation -----------------------------------------------------
    def local_report(self, target_info: bytes, report_data: bytes) -> bytes:
        self._require_ready("local_report")
        if not self._lib.bound("pal_get_local_report"):
            if self.api_version < 3:
                raise EnclaveNotSupported(self._needs_v3("local reports"))
            raise EnclaveNotSupported(f"enclave runtime {self.name}: it does not export pal_get_local_report")
        if len(target_info) != abi.TARGETINFO_SIZE:
            raise EnclaveError(
                f"enclave runtime {self.name}: target info must be {abi.TARGETINFO_SIZE} bytes, got {len(target_info)}"
            )
        if len(report_data) > REPORT_DATA_SIZE:  # bad input, whatever the PAL can do
            raise EnclaveError(
                f"enclave runtime {self.name}: report data is {len(report_data)} bytes, at most {REPORT_DATA_SIZE}"
            )
        if any(report_data):
            # pal_get_local_report has no report_data parameter (docs/pal-abi.md): the
            # skeleton's EREPORT always uses 64 zero bytes.
            raise EnclaveNotSupported(
                f"enclave runtime {self.name}: pal_get_local_report cannot bind report data (it is always zero)"
            )
        ret, length, report = self._call("pal_get_local_report", self._lib.get_local_report, target_info)
        if ret != 0:  # the one call where rune requires exactly 0 (docs/pal-abi.md, "Calls")
            raise PalCallFailed(self.name, "pal_get_local_report", ret, abi.errno_text(ret))
        if length != abi.REPORT_SIZE:
            reason = f"returned a {length}-byte report, expected {abi.REPORT_SIZE}"
            raise PalCallFailed(self.name, "pal_get_local_report", ret, reason)
        return report

    # -- helpers ---------------------------------------------------------
    def _call(self, call: str, fn: Callable[..., _T], *args: object) -> _T:
        """One PAL call, with a debug line, signals routed away from workers."""
        self._log(f"{self.name}: {call}{_shown(args)}")
        if threading.current_thread() is threading.main_thread():
            result = fn(*args)
        else:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS)
            try:
                result = fn(*args)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        self._log(f"{self.name}: {call} -> {_shown(result) if isinstance(result, tuple) else result}")
        return result

    def _check(self, call: str, ret: int) -> None:
        """PALs fail with ret < 0 (docs/pal-abi.md, "Calls")."""
        if ret < 0:
            raise PalCallFailed(self.name, call, ret, abi.errno_text(ret))

    def _require_ready(self, call: str) -> None:
        self._life.require(call)

    def _needs_v3(self, what: str) -> str:
        return f"enclave runtime {self.name}: {what} need pal api version 3, this PAL has {self.api_version}"


def _open(path: str, fd: int = -1) -> abi.PalLibrary:
    """dlopen the PAL, turning every way that fails into one clear line.

    With `fd` (opened and checked by registry.select in `rune create`), the
    library is loaded through /proc/self/fd: the file that was checked, even
    if its path now names another one.
    """
    if fd >= 0:
        try:
            return abi.PalLibrary(f"/proc/self/fd/{fd}")
        except OSError as exc:
            reason = str(exc).removeprefix(f"/proc/self/fd/{fd}: ")
            raise PalLoadError(f"enclave runtime {path}: cannot load: {reason}") from None
    if not os.path.isabs(path):
        raise PalLoadError(f"enclave runtime {path}: not an absolute path")
    if not os.path.exists(path):
        raise PalLoadError(f"enclave runtime {path}: no such file")
    try:
        return abi.PalLibrary(path)
    except OSError as exc:
        reason = str(exc).removeprefix(f"{path}: ")  # dlerror() repeats the path
        raise PalLoadError(f"enclave runtime {path}: cannot load: {reason}") from None


def _check_strings(name: str, items: list[str]) -> None:
    """C strings end at NUL: refuse what the PAL would silently truncate."""
    for item in items:
        if "\0" in item:
            raise EnclaveError(f"enclave runtime {name}: {item!r} contains a NUL byte")


class _Redacted(list[str]):
    """The workload's environment: passed to the PAL, but in debug lines
    only counted (it often carries credentials)."""

    def __repr__(self) -> str:
        return f"<{len(self)} env entries>"


def _shown(values: tuple[object, ...]) -> str:
    """Arguments or results for a debug line, with buffers as their size."""
    return "(" + ", ".join(f"<{len(v)} bytes>" if isinstance(v, bytes) else repr(v) for v in values) + ")"
