"""The ``native`` enclave runtime: an unmodified Linux program as a software enclave.

``enclave.runtime.path=native``, ``enclave.type=software``; in the spirit of
``gramine-direct`` (the same manifest would run in SGX elsewhere), without a
library OS. ``init`` verifies the manifest's signature and every trusted
file's SHA-256 (:mod:`._base`), copies the entrypoint into a sealed,
execute-only memfd and hashes the *copy* against the signed manifest, so
the program that runs is byte for byte the measured one. Each
``create_process`` forks and execs that copy under the sandbox of
:mod:`._native_exec` (no_new_privs, seccomp, RLIMIT_AS from the manifest's
``memory_limit``, non-dumpable, argv/env by the manifest's policy).
``wait`` reaps through a pidfd (no pid reuse races), ``kill`` signals
through it (pidfd_send_signal(2)).

What this is not (docs/builtin-runtimes.md): there is no library OS
between the program and the kernel, so trusted files other than the
entrypoint (the dynamic loader, libraries, configuration) are checked in
``init`` but read by the program later, from the rootfs, unchecked —
prefer static entrypoints; ``allowed_files`` is not enforced; signals reach
the runtime's processes, not processes they fork.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import threading
from collections.abc import Callable

from ... import _sys
from ..errors import EnclaveError
from ..identity import HostKey, Manifest, ManifestError
from ..identity.rootfs import RootfsError, read_in_root
from . import _base, _options
from ._native_exec import Child, elf_interpreter, sandbox_filter, sealed_exec_only, spawn, trampoline_fd

_MAX_ENTRYPOINT = 1 << 30


class NativeProcess:
    """A payload process, known by its pidfd."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.handle = pid
        self.pidfd = pidfd
        self._lock = threading.Lock()
        self._status: int | None = None

    def wait_status(self, timeout: float | None = None) -> int | None:
        # A pidfd polls readable once the process has exited (pidfd_open(2)),
        # so waiters block in poll, without the lock and without the GIL.
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        if not poller.poll(None if timeout is None else int(timeout * 1000)):
            return None
        with self._lock:
            if self._status is None:
                result = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
                assert result is not None
                killed = result.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
                self._status = 128 + result.si_status if killed else result.si_status
            return self._status

    def send(self, sig: int) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass  # it has exited; not yet waited for, as kill(2) on a zombie

    def terminate(self) -> None:
        self.send(signal.SIGKILL)


class NativeRuntime(_base.RuntimeBase):
    """Registered as ``native`` in ``inclavare.enclave_runtimes``."""

    name = "native"
    OPTIONS = frozenset({"manifest", "sig", "signer", "memory"})

    def __init__(self, *, tee: str, log: Callable[[str], None] | None = None, rootfs: str = "/",
                 host_key: HostKey | None = None) -> None:  # fmt: skip
        super().__init__(tee=tee, log=log, rootfs=rootfs, host_key=host_key)
        # Before pivot_root: libseccomp is a host library; and before the
        # privileges drop: the trampoline's copy must belong to root.
        self._sc = _sys.default()
        self._filter = sandbox_filter()
        self._dmz_fd = trampoline_fd()
        self._exec_fd = -1
        self._static = True
        self._memory = 0
        self._all: list[NativeProcess] = []  # every process ever started: their pidfds, closed in destroy

    def _program(self, manifest: Manifest) -> str:
        assert manifest.entrypoint is not None
        return manifest.entrypoint

    def _prepare(self, opts: _options.Options, manifest: Manifest) -> None:
        entrypoint = self._program(manifest)
        memory = _options.tighten("memory=", opts.memory, manifest.memory_limit, " bytes")
        self._memory = memory if memory is not None else manifest.memory_limit
        index, pinned = next((i, t.sha256) for i, t in enumerate(manifest.trusted_files) if t.path == entrypoint)
        data = self._read(entrypoint)
        if self._exec_fd >= 0:  # adopt(): the template's sealed copy gives way to the container's
            os.close(self._exec_fd)
            self._exec_fd = -1
        try:
            interpreter = elf_interpreter(data)  # scripts are refused: the copy is execute-only
        except EnclaveError as exc:
            raise EnclaveError(f"enclave runtime native: entrypoint {entrypoint}: {exc}") from None
        self._static = interpreter is None
        memfd = sealed_exec_only(os.path.basename(entrypoint), data)
        try:
            if _digest(memfd) != pinned:  # the sealed copy, i.e. what will run
                raise ManifestError(manifest.file, f"trusted_files[{index}].sha256", f"mismatch for {entrypoint}")
            self._exec_fd = os.open(f"/proc/self/fd/{memfd}", os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            raise EnclaveError(
                "enclave runtime native: /proc is not mounted; the sealed entrypoint runs as /proc/self/fd/N"
            ) from None
        finally:
            os.close(memfd)
        kind = "static" if interpreter is None else f"dynamic ({interpreter.decode(errors='replace')}, via rune-dmz)"
        self._log(f"native: {entrypoint} sealed ({len(data)} bytes, {kind}), RLIMIT_AS {self._memory}")

    def _read(self, path: str) -> bytes:
        try:
            return read_in_root(self.rootfs, path, _MAX_ENTRYPOINT, self._sc)
        except RootfsError as exc:
            raise EnclaveError(f"enclave runtime native: entrypoint {exc}") from None

    def _spawn(self, argv: list[str], env: list[str], stdio: tuple[int, int, int]) -> _base.Process:
        dmz_fd = None if self._static else self._dmz_fd
        child = Child(dmz_fd, self._exec_fd, argv, env, stdio, self._memory, self._filter)
        with self._lock:  # kill(PID_ALL) cannot miss a process between fork and registration
            self._ensure_open()
            pid, pidfd = spawn(child)
            proc = NativeProcess(pid, pidfd)
            self._all.append(proc)
            self._register(proc)
        return proc

    def _release(self) -> None:
        for proc in self._all:
            os.close(proc.pidfd)
        self._all.clear()
        for fd in (self._dmz_fd, self._exec_fd):
            if fd >= 0:
                os.close(fd)
        self._dmz_fd = self._exec_fd = -1


def _digest(fd: int) -> bytes:
    """SHA-256 of a file through an fd we hold (a 0111 file cannot be reopened for reading)."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.digest()
