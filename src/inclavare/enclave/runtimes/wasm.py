"""The ``wasm`` enclave runtime: a signed WASI preview-1 module run by wasmtime.

``enclave.runtime.path=wasm``, ``enclave.type=software``. ``init`` verifies
the manifest (:mod:`._base`), reads the module once through the rootfs fd,
checks its SHA-256 against the signed manifest (so what is compiled is what
was measured, whatever happens to the file later) and compiles it — or
loads the compiled code from the cache (:mod:`._wasm_cache`). Each
``create_process`` then instantiates it in a fresh engine and store
(:mod:`._wasm_process`) and runs ``_start`` in a thread of its own; ``wait``
joins it, ``kill`` advances that engine's epoch.

Limits (all from the signed manifest, lowered by options, :mod:`._options`):
linear memory through the store's limits (``memory.grow`` fails beyond it),
instructions through fuel (``Config.consume_fuel``), wall-clock time through
a deadline: one ticker thread ends a process when its deadline passes, by
the same epoch increment a kill uses. A manifest's ``epoch_deadline`` is in
ticks of :data:`EPOCH_TICK` seconds.

What the module sees: argv and environment by the manifest's policy, the
exact stdio fds of the caller (:mod:`._wasi_io`), the manifest's preopened
directories plus ``preopen=`` options (none by default), and — when the
process's working directory lies inside one of them — that directory as
``.``, with the same access, so relative paths work as they would natively.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable

import wasmtime

from ...errors import EnclaveError
from ..identity import HostKey, Manifest, ManifestError
from ..identity.rootfs import RootfsError, read_in_root
from . import _base, _options
from ._wasm_cache import ModuleCache
from ._wasm_process import LIMIT_STATUS, WASI, Settings, WasmProcess, cause, engine_config

EPOCH_TICK = 0.01  # seconds per manifest epoch_deadline tick
_MAX_MODULE = 256 << 20


class WasmRuntime(_base.RuntimeBase):
    """Registered as ``wasm`` in ``inclavare.enclave_runtimes``."""

    name = "wasm"
    OPTIONS = frozenset({"manifest", "sig", "signer", "memory", "fuel", "timeout", "preopen", "cache"})

    def __init__(self, *, tee: str, log: Callable[[str], None] | None = None, rootfs: str = "/",
                 host_key: HostKey | None = None, cache_dir: str | None = None) -> None:  # fmt: skip
        super().__init__(tee=tee, log=log, rootfs=rootfs, host_key=host_key)
        # Before pivot_root: the cache directory and the package metadata are host files.
        self._cache = ModuleCache(cache_dir, self._log)
        self._version = _wasmtime_version()
        self._settings: Settings | None = None
        self._preopen_paths: list[tuple[str, bool]] = []  # (rootfs path, read_only), for the cwd
        self._timeout: float | None = None
        self._handles = itertools.count(1)
        self._ticker = _Ticker()
        self.cache_hit = False  # for tests and logs: init loaded compiled code instead of compiling
        self._compiled: tuple[tuple[bytes, bool], bytes] | None = None  # ((module digest, fuel), code)

    def _program(self, manifest: Manifest) -> str:
        assert manifest.wasm is not None
        return manifest.wasm.module

    def _prepare(self, opts: _options.Options, manifest: Manifest) -> None:
        w = manifest.wasm
        assert w is not None
        assert w.module_sha256 is not None
        pages = _options.tighten("memory=", _pages(opts.memory), w.max_memory_pages, " pages") or w.max_memory_pages
        fuel = _options.tighten("fuel=", opts.fuel, w.fuel)
        signed_timeout = w.epoch_deadline * EPOCH_TICK if w.epoch_deadline is not None else None
        self._timeout = _options.tighten("timeout=", opts.timeout, signed_timeout)
        preopens = [(d.path, d.guest, d.read_only) for d in w.preopened_dirs]
        for path, read_only in opts.preopens:
            if path in {g for _, g, _ in preopens}:
                raise _options.option_error(f"preopen={path}", "the manifest already preopens this directory")
            self._log(f"wasm: preopen={path} ({'ro' if read_only else 'rw'}) is not part of the measured identity")
            preopens.append((path, path, read_only))
        for path, guest, _ in preopens:
            if not self.for_template and not os.path.isdir(self.host_path(path)):
                raise EnclaveError(f"enclave runtime wasm: preopened directory {guest}: {path} is not a directory")
        data = self._read_module(w.module)
        if hashlib.sha256(data).digest() != w.module_sha256:  # the file changed after verification
            raise ManifestError(manifest.file, "wasm.module_sha256", f"mismatch for {w.module}")
        serialized = self._compile(data, w.module_sha256, fuel is not None, opts.cache, w.module)
        host_preopens = [(self.host_path(path), guest, ro) for path, guest, ro in preopens]
        self._preopen_paths = [(path, ro) for path, _, ro in preopens]
        self._settings = Settings(w.module, serialized, pages * _options.PAGE, fuel, host_preopens)

    def _read_module(self, module: str) -> bytes:
        try:
            return read_in_root(self.rootfs, module, _MAX_MODULE)
        except RootfsError as exc:
            raise EnclaveError(f"enclave runtime wasm: module {exc}") from None

    def _compile(self, data: bytes, digest: bytes, fuel: bool, use_cache: bool, module_path: str) -> bytes:
        """Compiled code for `data`: what this runtime compiled before for the same
        verified digest (a pooled instance, :meth:`adopt`), else the cache, else
        Cranelift (then cached)."""
        if self._compiled is not None and self._compiled[0] == (digest, fuel):
            return self._compiled[1]
        serialized = self._compile_anew(data, digest, fuel, use_cache, module_path)
        self._compiled = ((digest, fuel), serialized)
        return serialized

    def _compile_anew(self, data: bytes, digest: bytes, fuel: bool, use_cache: bool, module_path: str) -> bytes:
        engine = wasmtime.Engine(engine_config(fuel))
        name = ModuleCache.key(digest, f"epoch=1,fuel={int(fuel)}", self._version)
        cached = self._cache.load(name) if use_cache else None
        module = None
        if cached is not None:
            try:
                module = wasmtime.Module.deserialize(engine, cached)
                self.cache_hit = True
                self._log(f"wasm: {module_path}: compiled-module cache hit")
            except wasmtime.WasmtimeError as exc:  # another wasmtime build wrote it
                self._log(f"wasm: cache entry {name} not usable: {cause(exc)}")
        if module is None:
            started = time.monotonic()
            try:
                module = wasmtime.Module(engine, data)
            except wasmtime.WasmtimeError as exc:
                raise EnclaveError(f"enclave runtime wasm: module {module_path}: {cause(exc)}") from None
            self._log(f"wasm: compiled {module_path} in {time.monotonic() - started:.3f} s")
        _check_command(module, module_path)
        if self.cache_hit:
            assert cached is not None
            return cached
        serialized = bytes(module.serialize())
        if use_cache:
            self._cache.store(name, serialized)
        return serialized

    def _spawn(self, argv: list[str], env: list[str], stdio: tuple[int, int, int]) -> _base.Process:
        assert self._settings is not None
        handle = next(self._handles)
        proc = WasmProcess(handle, self._settings, argv, env, stdio, self._cwd_preopen(), self._log)
        with self._lock:
            self._register(proc)  # from here kill(PID_ALL) reaches it, also during instantiation
        try:
            proc.instantiate()
        except EnclaveError:
            with self._lock:
                self._procs.pop(handle, None)
            raise
        if self._timeout is not None:
            self._ticker.add(proc, self._timeout)
        proc.start()
        return proc

    def _cwd_preopen(self) -> tuple[str, bool] | None:
        """The working directory as ``.``, if a preopened directory contains it."""
        cwd = os.getcwd()
        if self.rootfs != "/":
            if os.path.commonpath([cwd, self.rootfs]) != self.rootfs:
                return None
            cwd = "/" + os.path.relpath(cwd, self.rootfs).removeprefix(".")
        for path, read_only in self._preopen_paths:
            if os.path.commonpath([cwd, path]) == path:
                return self.host_path(cwd), read_only
        return None

    def _release(self) -> None:
        self._ticker.close()
        self._cache.close()


def _pages(memory: int | None) -> int | None:
    if memory is None:
        return None
    if memory < _options.PAGE:
        raise _options.option_error(f"memory={memory}", "is less than one 64 KiB wasm page")
    return memory // _options.PAGE


def _check_command(module: wasmtime.Module, path: str) -> None:
    """A WASI command: exports ``_start``, imports only WASI preview 1."""
    if not any(e.name == "_start" and isinstance(e.type, wasmtime.FuncType) for e in module.exports):
        raise EnclaveError(f"enclave runtime wasm: module {path}: not a WASI command (no _start export)")
    foreign = sorted({i.module for i in module.imports} - {WASI})
    if foreign:
        raise EnclaveError(f"enclave runtime wasm: module {path}: imports from {', '.join(foreign)}; only {WASI}")


class _Ticker:
    """The deadline thread: ends each process whose wall-clock deadline has passed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, WasmProcess]] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, proc: WasmProcess, seconds: float) -> None:
        with self._cond:
            if len(self._heap) > 64:  # forget processes that ended long before their deadline
                self._heap = [entry for entry in self._heap if not entry[2].done()]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (time.monotonic() + seconds, proc.handle, proc))
            if self._thread is None:
                self._thread = _base.start_thread(self._run, "wasm-ticker")
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                due = self._heap[0][0] - time.monotonic()
                if due > 0:
                    self._cond.wait(due)
                    continue
                _, _, proc = heapq.heappop(self._heap)
                proc.stop(LIMIT_STATUS)  # a no-op if it already ended

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()


def _wasmtime_version() -> str:
    """wasmtime-py's version, for the cache key, from its dist-info directory name:
    importlib.metadata would scan every installed distribution (~50 ms of an
    enclave container's start). wasmtime also refuses to deserialize a module
    compiled by another version, so this only keeps stale entries apart."""
    site = os.path.dirname(os.path.dirname(wasmtime.__file__))
    try:
        names = os.listdir(site)
    except OSError:
        names = []
    found = sorted(n[len("wasmtime-") : -len(".dist-info")] for n in names
                   if n.startswith("wasmtime-") and n.endswith(".dist-info"))  # fmt: skip
    return "wasmtime-py " + (found[-1] if found else "unknown")
