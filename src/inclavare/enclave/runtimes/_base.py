"""What the built-in runtimes share: lifecycle, verification, argv/env policy, processes, reports.

A subclass names itself (``name``, ``OPTIONS``) and supplies three steps:
``_prepare`` (in ``init``, after the manifest verified: load what will run),
``_spawn`` (start one process; it calls :meth:`RuntimeBase._register`) and
``_release`` (at ``destroy``). Everything the interface promises about
states, handles, concurrent ``wait``/``kill`` and reports is here, once.

Where things live: the runtime is constructed on the host, before
pivot_root, with ``rootfs="/"`` meaning "the container's root, once we are
in it" (:meth:`host_path` maps a rootfs path to a path this process can
open). Tests pass a directory instead; that directory is trusted.
"""

from __future__ import annotations

import abc
import hashlib
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from ...attestation import REPORT_DATA_SIZE
from ...attestation.software import sign_report
from ...errors import EnclaveError, one_line
from ..errors import EnclaveConfigError, EnclaveNotSupported, EnclaveStateError, EnclaveUnavailable
from ..identity import EnclaveIdentity, HostKey, Manifest, load_manifest, measurement_of, verify_signature
from ..identity.broker import BrokerPin
from ..identity.errors import IdentityError, ManifestError, SignatureError
from ..interface import INTERFACE_VERSION, PID_ALL, PID_CURRENT, TEE_KINDS, Capabilities, Lifecycle, split_args
from . import _options

TARGETINFO_SIZE = 512  # SGX TARGETINFO (Intel SDM Vol. 3D §38.16); accepted, not used

# Blocked in every thread these runtimes start, as PalRuntime blocks them
# around PAL calls: process signals then go to the init-runelet's main
# thread, which handles them (fault signals cannot be blocked usefully).
ASYNC_SIGNALS = signal.valid_signals() - {
    signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS,
    signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS,
}  # fmt: skip


def block_async_signals() -> None:
    """Call first thing in a thread this package starts."""
    signal.pthread_sigmask(signal.SIG_BLOCK, ASYNC_SIGNALS)


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    def run() -> None:
        block_async_signals()
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


class Process(Protocol):
    """One running program of a runtime, as the process table sees it."""

    handle: int

    def wait_status(self, timeout: float | None = None) -> int | None:
        """Exit code or 128+signal once ended (None if `timeout` passed); callable repeatedly."""
        ...

    def send(self, sig: int) -> None: ...

    def terminate(self) -> None:
        """End it now (destroy); like SIGKILL."""
        ...


def _quiet(_msg: str) -> None:
    """The default debug sink: drop the line."""


class RuntimeBase(abc.ABC):
    """The lifecycle and process table of a built-in runtime (see the module docstring)."""

    name = ""
    OPTIONS: frozenset[str] = frozenset()
    STOP_TIMEOUT = 2.0  # seconds destroy waits for each process after ending it

    def __init__(
        self,
        *,
        tee: str,
        log: Callable[[str], None] | None = None,
        rootfs: str = "/",
        host_key: HostKey | None = None,
    ) -> None:
        if tee not in TEE_KINDS:
            raise EnclaveConfigError(
                "enclave.type", f"unsupported enclave type {tee!r} (supported: intelSgx, software)"
            )
        if tee != "software":
            raise EnclaveUnavailable(
                f"enclave runtime {self.name}: enclave.type {tee} is not available: "
                "the built-in runtimes are software enclaves (enclave.type=software)"
            )
        self.tee = tee
        self.rootfs = os.path.abspath(rootfs)
        self._log = log or _quiet
        self._life = Lifecycle(self.name)
        self._lock = threading.Lock()
        self._procs: dict[int, Process] = {}
        self._claimed: set[int] = set()
        self._latest = 0
        self.manifest: Manifest | None = None
        self.identity: EnclaveIdentity | None = None
        self.for_template = False  # init_template: checks that need the container's rootfs are left to adopt
        # The key file is on the host: read it now, it is out of reach after pivot_root.
        self._host_key, self._host_key_error = host_key, ""
        if host_key is None:
            try:
                self._host_key = HostKey.load_or_create()
            except IdentityError as exc:
                self._host_key_error = str(exc)
                self._log(f"{self.name}: local reports unavailable: {exc}")

    def probe(self) -> Capabilities:
        return {
            "name": self.name,
            "kind": "python",
            "source": f"{type(self).__module__}:{type(self).__qualname__}",
            "api_version": INTERFACE_VERSION,
            "tee": self.tee,
            "can_kill": True,
            "can_report": True,
        }

    def host_path(self, path: str) -> str:
        """Where the rootfs path `path` is for this process."""
        return path if self.rootfs == "/" else os.path.join(self.rootfs, path.lstrip("/"))

    # -- lifecycle -------------------------------------------------------
    def init(self, args: str, log_level: str, pooled: tuple[int, int] | None = None) -> None:
        self._life.begin_init(log_level)
        if pooled is not None:
            raise EnclaveNotSupported(
                f"enclave runtime {self.name}: pooled enclaves are SGX enclaves; cannot adopt one"
            )
        opts = _options.parse(split_args(args), self.OPTIONS)
        manifest, identity = self._verify(opts)
        self._prepare(opts, manifest)
        self.manifest, self.identity = manifest, identity
        self._life.initialized()
        self._log(f"{self.name}: enclave {identity.measurement.hex()} signer {identity.signer.hex()} ready")

    def init_template(self, args: str) -> None:
        """``init`` against a template bundle, for the warm pool (enclave/pool/instance.py):
        everything but what only the container can answer — a preopened directory that
        a mount makes (the secrets' tmpfs) — which :meth:`adopt` checks there."""
        self.for_template = True
        try:
            self.init(args, "info")
        finally:
            self.for_template = False

    def adopt(self, args: str, log_level: str) -> None:
        """The warm pool's hand-over (enclave/pool/guest.py), in the container.

        This instance was initialised from a template bundle on the host; now,
        joined to a container, it verifies the container's own rootfs exactly as
        ``init`` does there, and goes on only if that is the same enclave —
        measurement and signer — it was prepared for. What ``_prepare`` made
        from identical verified bytes (wasm: the compiled module) is reused."""
        prepared = self.identity
        if prepared is None:
            raise EnclaveStateError(f"enclave runtime {self.name}: adopt called before init")
        self.rootfs, self.manifest, self.identity = "/", None, None
        self._life = Lifecycle(self.name)
        self.init(args, log_level)
        assert self.identity is not None
        if (self.identity.measurement, self.identity.signer) != (prepared.measurement, prepared.signer):
            raise EnclaveError(
                f"enclave runtime {self.name}: the container's enclave {self.identity.measurement.hex()[:16]}… "
                f"is not the one this pooled instance was prepared for ({prepared.measurement.hex()[:16]}…)"
            )

    def _verify(self, opts: _options.Options) -> tuple[Manifest, EnclaveIdentity]:
        """Signature, every trusted file and the module (identity layer), then the manifest we keep."""
        path = self.host_path(opts.manifest)
        identity = verify_signature(path, self.host_path(opts.sig), self.rootfs, expected_signer=opts.signer)
        # Parse again for our own use, and prove it is the manifest just verified:
        # a swap between the two reads changes the measurement.
        manifest = load_manifest(path)
        if manifest.runtime != self.name:
            raise ManifestError(path, "runtime", f'is "{manifest.runtime}": this is the {self.name} runtime')
        if manifest.is_template or measurement_of(manifest) != identity.measurement:
            raise SignatureError(path, "manifest", "changed while it was being verified")
        return manifest, identity

    def destroy(self) -> None:
        self._life.destroy()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            proc.terminate()
        for proc in procs:
            if proc.wait_status(self.STOP_TIMEOUT) is None:
                self._log(f"{self.name}: process {proc.handle} did not end within {self.STOP_TIMEOUT} s")
        self._release()

    # -- processes -------------------------------------------------------
    def create_process(self, path: str, argv: Sequence[str], env: Sequence[str], stdio: tuple[int, int, int]) -> int:
        manifest = self._require_ready("create_process")
        argv, env = list(argv), list(env)
        for item in (path, *argv, *env):
            if "\0" in item:
                raise EnclaveError(f"enclave runtime {self.name}: {one_line(item)!r} contains a NUL byte")
        if not argv:
            raise EnclaveError(f"enclave runtime {self.name}: create_process needs argv[0]")
        for fd in stdio:
            try:
                os.fstat(fd)
            except OSError as exc:
                raise EnclaveError(f"enclave runtime {self.name}: stdio fd {fd}: {exc.strerror}") from None
        program = self._program(manifest)
        if not path.startswith("/") or os.path.normpath(path) != program:
            raise EnclaveError(
                f"enclave runtime {self.name}: {one_line(path)} is not the enclave's program {program} "
                f"({manifest.file}); an enclave runs only what its manifest measured"
            )
        run_argv = list(manifest.argv) if manifest.argv_policy == "fixed" else argv
        run_env = self._env(manifest, env)
        self._log(f"{self.name}: create_process({path}, <{len(run_argv)} args>, <{len(run_env)} env entries>, {stdio})")
        return self._spawn(run_argv, run_env, stdio).handle

    @staticmethod
    def _env(manifest: Manifest, env: list[str]) -> list[str]:
        """The manifest's env policy: passthrough names from the container, then the fixed values."""
        allowed = set(manifest.env_passthrough)
        chosen = {k: e for e in env if (k := e.partition("=")[0]) in allowed and "=" in e}
        return [*chosen.values(), *(f"{k}={v}" for k, v in manifest.env_fixed)]

    def _ensure_open(self) -> None:
        """Under the lock, right before a process starts: destroy may have come in between."""
        if self._life.state != Lifecycle.READY:
            raise EnclaveStateError(f"enclave runtime {self.name}: create_process called after destroy")

    def _register(self, proc: Process) -> None:
        """Enter `proc` in the table (under the lock: kill(PID_ALL) sees it from now on)."""
        self._ensure_open()
        self._procs[proc.handle] = proc
        self._latest = proc.handle

    def wait(self, pid: int) -> int:
        # Refused after destroy, as by PalRuntime: destroy ended the process
        # and "later calls fail" (interface.py); a wait already in progress
        # still returns the status destroy gave it.
        self._require_ready("wait")
        with self._lock:
            proc = self._procs.get(pid)
            if proc is None or pid in self._claimed:
                raise EnclaveStateError(f"enclave runtime {self.name}: no process {pid} to wait for")
            self._claimed.add(pid)
        status = proc.wait_status()
        assert status is not None
        with self._lock:
            self._procs.pop(pid, None)
            self._claimed.discard(pid)
        self._log(f"{self.name}: process {pid} ended: {status}")
        return status

    def kill(self, pid: int, sig: int) -> None:
        self._require_ready("kill")
        if not 0 <= sig < signal.NSIG:
            raise EnclaveError(f"enclave runtime {self.name}: invalid signal {sig}")
        with self._lock:
            if pid == PID_ALL:
                targets = list(self._procs.values())
            elif pid == PID_CURRENT or pid > 0:
                proc = self._procs.get(self._latest if pid == PID_CURRENT else pid)
                if proc is None:
                    raise EnclaveStateError(f"enclave runtime {self.name}: no process {pid} to signal")
                targets = [proc]
            else:
                raise EnclaveError(f"enclave runtime {self.name}: invalid process {pid}")
        self._log(f"{self.name}: kill({pid}, {sig}) -> {len(targets)} process(es)")
        for proc in targets:
            proc.send(sig)

    # -- attestation -----------------------------------------------------
    def local_report(self, target_info: bytes, report_data: bytes) -> bytes:
        """Software evidence for the identity verified in init.

        Software reports are signed by the host key for any verifier, not MACed
        for one target enclave, so `target_info` is not used; it may be empty or
        an SGX TARGETINFO (512 bytes) from code written for SGX. `report_data`
        (up to 64 bytes) is zero-padded to SGX's 64-byte REPORTDATA.
        """
        self._require_ready("local_report")
        if len(target_info) not in (0, TARGETINFO_SIZE):
            raise EnclaveError(
                f"enclave runtime {self.name}: target info must be empty or {TARGETINFO_SIZE} bytes, "
                f"got {len(target_info)}"
            )
        if len(report_data) > REPORT_DATA_SIZE:
            raise EnclaveError(
                f"enclave runtime {self.name}: report data is {len(report_data)} bytes, at most {REPORT_DATA_SIZE}"
            )
        if self._host_key is None:
            raise EnclaveUnavailable(f"enclave runtime {self.name}: no software-TEE key: {self._host_key_error}")
        assert self.identity is not None
        return sign_report(self.identity, bytes(report_data).ljust(REPORT_DATA_SIZE, b"\0"), self._host_key)

    def trusted_broker(self) -> tuple[BrokerPin, bytes | None] | None:
        """The key brokers the verified manifest pins (``[kbs]``) and the bytes of its CA
        bundle, or None; secret provisioning (enclave/provision/) trusts nothing else.

        The CA file is read again here, so it is checked again against its measured hash:
        a file swapped since verification is refused, not trusted."""
        from ..identity.rootfs import RootfsError, read_in_root

        manifest = self._require_ready("trusted_broker")
        pin = manifest.kbs
        if pin is None or pin.cacert is None:
            return (pin, None) if pin is not None else None
        try:
            data = read_in_root(self.rootfs, pin.cacert, 1 << 20)
        except RootfsError as exc:
            raise ManifestError(manifest.file, "kbs.cacert", str(exc)) from None
        if hashlib.sha256(data).digest() not in {t.sha256 for t in manifest.trusted_files if t.path == pin.cacert}:
            raise ManifestError(manifest.file, "kbs.cacert", f"{pin.cacert} changed since the enclave was verified")
        return pin, data

    # -- helpers ---------------------------------------------------------
    def _require_ready(self, call: str) -> Manifest:
        self._life.require(call)
        assert self.manifest is not None  # set with the initialized state
        return self.manifest

    # -- for subclasses ----------------------------------------------------
    @abc.abstractmethod
    def _program(self, manifest: Manifest) -> str:
        """The rootfs path create_process must be asked to run."""

    @abc.abstractmethod
    def _prepare(self, opts: _options.Options, manifest: Manifest) -> None:
        """Load what will run (init, after verification)."""

    @abc.abstractmethod
    def _spawn(self, argv: list[str], env: list[str], stdio: tuple[int, int, int]) -> Process:
        """Start one process and enter it with :meth:`_register` (under ``self._lock``)."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Free what _prepare and __init__ hold (destroy)."""
