"""One wasm process: its own engine, store and thread; stopped by epoch interruption.

Why an engine per process: wasmtime's epoch is a counter of the *engine*
and a store traps once the epoch reaches its deadline (wasmtime docs,
``Config::epoch_interruption``, ``Store::set_epoch_deadline``). Stores of
one engine cannot be interrupted one at a time without an epoch-deadline
callback, which wasmtime-py does not offer. With an engine each, every
store's deadline is "one tick from now" and ending a process is one
``Engine.increment_epoch()``: the module traps at its next function entry
or loop back-edge, microseconds later. Engines are cheap (~40 µs) and the
compiled module is deserialized into each (~0.3 ms); the Cranelift compile
happens once, in ``init``.

Exit status, as a shell would report a process: ``proc_exit(n)`` -> n
(wasmtime refuses n >= 126, reported as 1 like the ``wasmtime`` CLI does for
errors), return from ``_start`` -> 0, stopped by a signal -> 128+signal
(whatever the module did after the stop), fuel exhausted or deadline passed
-> 128+SIGXCPU (as RLIMIT_CPU would, getrlimit(2)), any other trap -> 134
(128+SIGABRT, what the ``wasmtime`` CLI exits with on a trap).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import wasmtime

from ..errors import EnclaveError, EnclaveNotSupported
from . import _base
from ._wasi_io import Stdio

WASI = "wasi_snapshot_preview1"
TRAP_STATUS = 128 + signal.SIGABRT
LIMIT_STATUS = 128 + signal.SIGXCPU
# signal(7), "Standard signals": default action Ign (or Cont) and Stop.
IGNORED = frozenset({0, signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT})
STOPPING = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})


class Settings:
    """What every process of one enclave gets (fixed in init)."""

    __slots__ = ("fuel", "memory_bytes", "module", "preopens", "serialized")

    def __init__(self, module: str, serialized: bytes, memory_bytes: int, fuel: int | None,
                 preopens: list[tuple[str, str, bool]]) -> None:  # fmt: skip
        self.module = module  # rootfs path, for messages
        self.serialized = serialized  # Module.serialize() of the verified module
        self.memory_bytes = memory_bytes
        self.fuel = fuel
        self.preopens = preopens  # (host path, guest path, read_only)


def engine_config(fuel: bool) -> wasmtime.Config:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    return config


class WasmProcess:
    """Instantiated in the caller's thread (errors reach create_process), run in its own."""

    def __init__(
        self,
        handle: int,
        settings: Settings,
        argv: list[str],
        env: list[str],
        stdio: tuple[int, int, int],
        cwd: tuple[str, bool] | None,
        log: Callable[[str], None],
    ) -> None:
        self.handle = handle
        self._log = log
        self._engine = wasmtime.Engine(engine_config(settings.fuel is not None))
        self._store = wasmtime.Store(self._engine)
        self._stop_status: int | None = None
        self._ended = False  # under _stop_lock: the status is decided (output may still be draining)
        self._closed = False  # under _stop_lock: the stop fd is closed, stop() is a no-op
        self._stop_lock = threading.Lock()
        self._done = threading.Event()
        self._status: int | None = None
        self._stop_fd = os.eventfd(0, os.EFD_CLOEXEC)
        try:
            self._stdio = Stdio(stdio, self._stop_fd)
        except BaseException:
            os.close(self._stop_fd)
            raise
        self._settings = settings
        self._argv, self._env, self._cwd = argv, env, cwd
        self._instance: wasmtime.Instance | None = None

    def instantiate(self) -> None:
        s = self._settings
        try:
            module = wasmtime.Module.deserialize(self._engine, s.serialized)
            self._store.set_limits(memory_size=s.memory_bytes)
            if s.fuel is not None:
                self._store.set_fuel(s.fuel)
            self._store.set_epoch_deadline(1)  # one increment (a stop) traps
            wasi = wasmtime.WasiConfig()
            wasi.argv = self._argv
            wasi.env = [entry.split("=", 1) for entry in self._env]
            self._stdio.configure(wasi)
            for host, guest, read_only in s.preopens:
                wasi.preopen_dir(host, guest, not read_only)
            if self._cwd is not None:  # see WasmRuntime._cwd_preopen
                wasi.preopen_dir(self._cwd[0], ".", not self._cwd[1])
            self._stdio.clock_origin = time.monotonic_ns()
            self._store.set_wasi(wasi)
            linker = wasmtime.Linker(self._engine)
            linker.define_wasi()
            linker.allow_shadowing = True
            i32 = wasmtime.ValType.i32()
            poll_type = wasmtime.FuncType([i32, i32, i32, i32], [i32])
            linker.define_func(WASI, "poll_oneoff", poll_type, self._stdio.poll_oneoff, access_caller=True)
            self._instance = linker.instantiate(self._store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            if self._stop_status is not None:  # stopped while the start function ran
                self._finish(self._stop_status)
                return
            with self._stop_lock:
                self._ended = self._closed = True
                os.close(self._stop_fd)
            self._store.close()
            self._stdio.close()
            raise EnclaveError(f"enclave runtime wasm: cannot start {s.module}: {cause(exc)}") from None

    def start(self) -> None:
        if self._instance is not None:
            self._stdio.start()
            _base.start_thread(self._run, f"wasm-{self.handle}")

    def _run(self) -> None:
        assert self._instance is not None
        try:
            entry = self._instance.exports(self._store)["_start"]
            assert isinstance(entry, wasmtime.Func)
            entry(self._store)
            status = 0
        except wasmtime.ExitTrap as exc:
            status = exc.code
        except wasmtime.Trap as exc:
            if exc.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
                self._log(f"wasm: process {self.handle}: fuel exhausted")
                status = LIMIT_STATUS
            else:
                status = TRAP_STATUS
                if self._stop_status is None:
                    self._log(f"wasm: process {self.handle}: trap: {cause(exc)}")
        except wasmtime.WasmtimeError as exc:
            self._log(f"wasm: process {self.handle}: {cause(exc)}")
            status = 1
        except BaseException as exc:  # wasmtime-py re-raises host-function exceptions here
            self._log(f"wasm: process {self.handle}: {type(exc).__name__}")
            status = TRAP_STATUS
        self._finish(status)

    def _finish(self, status: int) -> None:
        with self._stop_lock:  # a stop that came first decides (a real kill would have)
            self._status = self._stop_status if self._stop_status is not None else status
            self._ended = True
        self._instance = None
        self._store.close()  # now, whatever still refers to it: frees the memory, closes wasmtime's pipe ends
        self._stdio.close()  # delivers what the module wrote, unless a stop comes first
        with self._stop_lock:
            self._closed = True
            os.close(self._stop_fd)
        self._done.set()

    # -- control (any thread) ------------------------------------------------
    def send(self, sig: int) -> None:
        if sig in IGNORED:
            return
        if sig in STOPPING:
            raise EnclaveNotSupported(f"enclave runtime wasm: signal {sig} would stop process {self.handle}: "
                                      "a wasm module cannot be stopped, only ended")  # fmt: skip
        self.stop(128 + sig)

    def stop(self, status: int) -> None:
        """End the process with `status` (first stop wins); returns at once.

        After the module ended by itself its status stands (kill(2) on a zombie),
        but the stop still cuts short the delivery of output nobody reads."""
        with self._stop_lock:
            if self._closed:
                return
            if self._stop_status is None and not self._ended:
                self._stop_status = status
                self._engine.increment_epoch()  # running wasm code traps at its next check
            os.eventfd_write(self._stop_fd, 1)  # host calls and the stdio pump in _wasi_io give up

    def terminate(self) -> None:
        self.stop(128 + signal.SIGKILL)

    def done(self) -> bool:
        return self._done.is_set()

    def wait_status(self, timeout: float | None = None) -> int | None:
        if not self._done.wait(timeout):
            return None
        return self._status


def cause(exc: BaseException) -> str:
    """The root cause of a wasmtime error in one line: its last line (after "Caused by:")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
