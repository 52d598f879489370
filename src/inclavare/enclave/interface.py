"""The one interface every enclave runtime offers: C PALs and Python runtimes.

The init-runelet (a container's init for enclave containers, docs/architecture.md)
drives an :class:`EnclaveRuntime` and does not care whether a PAL shared
library (:class:`inclavare.enclave.pal.PalRuntime`) or a Python runtime
(``inclavare.enclave.runtimes``, third-party entry points) is behind it.
The calls mirror the PAL API v3 (docs/pal-abi.md), minus its C-isms:

=================  =========================================  ====================
call               PAL (v1 / v2+)                             who calls, when
=================  =========================================  ====================
factory(tee=...)   dlopen + pal_get_version                   main thread, before pivot_root
init               pal_init                                   main thread, once, in `rune create`
create_process     v1: deferred / v2+: pal_create_process     any thread, after init
wait               v1: pal_exec / v2+: pal_exec               a worker thread; blocks
kill               v1: unsupported / v2+: pal_kill            any thread, concurrently with wait
local_report       v3: pal_get_local_report                   any thread, after init
destroy            pal_destroy                                main thread, once, at the end
probe              (what was negotiated)                      anyone, any time
=================  =========================================  ====================

Lifetime: ``destroy`` may come before ``init``; after ``destroy`` every call
fails with :class:`~inclavare.enclave.errors.EnclaveStateError`; processes
that ``destroy`` ended report 128+SIGKILL. :data:`PID_CURRENT` names the
process created last until its ``wait`` has returned (then nothing).
``inclavare.testing.conformance`` checks every runtime against this contract.

Threading: the init-runelet's main thread handles signals and the agent
socket while worker threads sit in ``wait``; so ``wait`` must block without
holding the GIL (or any lock ``kill`` needs), and ``kill`` must return
promptly while a ``wait`` is in progress.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .config import LOG_LEVELS, TEE_KINDS
from .errors import EnclaveConfigError, EnclaveStateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, Protocol, TypedDict
else:  # the classes below are for the type checker; rune create imports this module, typing costs it ~1.5 ms
    Protocol, TypedDict = object, dict

__all__ = ["INTERFACE_VERSION", "LOG_LEVELS", "PID_ALL", "PID_CURRENT", "TEE_KINDS", "Capabilities",
           "EnclaveRuntime", "Lifecycle", "RuntimeFactory", "split_args"]  # fmt: skip

INTERFACE_VERSION = 1
PID_ALL = -1  # kill(): every process of this runtime
PID_CURRENT = 0  # kill(): the process created last


class Capabilities(TypedDict):
    """What ``probe()`` reports; `rune features` and test markers use it."""

    name: str  # "liberpal-skeleton-v2.so", or the registered runtime name ("wasm")
    kind: Literal["pal", "python"]
    source: str  # the library path, or the entry point ("pkg.mod:Class")
    api_version: int  # PAL: the negotiated PAL API version 1-3; python: INTERFACE_VERSION
    tee: str  # one of TEE_KINDS
    can_kill: bool  # kill() works (PAL v2+ exporting pal_kill)
    can_report: bool  # local_report() works (PAL v3 exporting pal_get_local_report)


class EnclaveRuntime(Protocol):
    """One enclave (or software sandbox) and the processes running in it.

    Errors are :class:`inclavare.errors.EnclaveError` / ``PalError``
    subclasses with a one-line message naming the runtime (see
    :mod:`inclavare.enclave.errors`); nothing here may exit the process.
    """

    name: str

    def probe(self) -> Capabilities:
        """What this runtime can do; cheap, no side effects, valid before init."""
        ...

    def init(self, args: str, log_level: str, pooled: tuple[int, int] | None = None) -> None:
        """Create the enclave (pal_init); called once, from the main thread.

        `args` are the runtime's options (``enclave.runtime.args``), separated by
        spaces; :func:`split_args` splits them. `log_level` is one of
        :data:`LOG_LEVELS`. `pooled` is ``(fd, addr)`` of a pre-built enclave
        from the enclave pool (PAL v3 ``pal_attr_v3_t``); runtimes that cannot
        adopt one raise :class:`EnclaveNotSupported` when it is given.
        """
        ...

    def create_process(self, path: str, argv: Sequence[str], env: Sequence[str], stdio: tuple[int, int, int]) -> int:
        """Start `path` with `argv` (argv[0] included) and `env` (``KEY=VALUE``).

        `stdio` is (stdin, stdout, stderr) as fd numbers of the caller; the
        caller keeps them open until ``wait`` for this process returns. Returns
        a positive handle (a pid for PALs) for ``wait`` and ``kill``.
        """
        ...

    def wait(self, pid: int) -> int:
        """Block until process `pid` ends; its exit code, or 128+signal.

        Called once per process, usually from a worker thread; waits for
        different processes may run at the same time.
        """
        ...

    def kill(self, pid: int, sig: int) -> None:
        """Send `sig` to process `pid`, to all (:data:`PID_ALL`) or to the latest
        (:data:`PID_CURRENT`). Any thread, also while ``wait`` blocks. Raises
        :class:`EnclaveNotSupported` if the runtime cannot signal processes."""
        ...

    def local_report(self, target_info: bytes, report_data: bytes) -> bytes:
        """A local attestation report for the enclave named by `target_info`.

        For SGX: TARGETINFO (512 bytes) in, REPORT (432 bytes) out, with
        `report_data` (up to 64 bytes) in REPORTDATA. Raises
        :class:`EnclaveNotSupported` when the runtime has no reports.
        """
        ...

    def destroy(self) -> None:
        """Tear the enclave down (pal_destroy); processes still running are
        ended by it. Called once, from the main thread; later calls fail."""
        ...


class RuntimeFactory(Protocol):
    """What the registry resolves ``enclave.runtime.path`` to.

    Calling it loads the runtime (for a PAL: dlopen, from the host, before
    pivot_root) but does not ``init`` it. `tee` is the container's
    ``enclave.type``; a runtime that cannot provide it raises
    :class:`inclavare.enclave.errors.EnclaveUnavailable`. `log` receives debug
    lines (one string each) around every call into the TEE.
    """

    def __call__(self, *, tee: str, log: Callable[[str], None] | None = None) -> EnclaveRuntime: ...


class Lifecycle:
    """The lifetime rules above, kept once for the runtimes here: loaded -> initialized -> destroyed.

    :meth:`begin_init` refuses a second ``init``, one after ``destroy`` and a
    log level not in :data:`LOG_LEVELS`; :meth:`require` refuses a call
    outside the initialized state; :meth:`destroy` refuses a second
    ``destroy`` and says whether an initialized enclave is left to tear down.
    """

    __slots__ = ("name", "state")
    LOADED, READY, DESTROYED = "loaded", "initialized", "destroyed"

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = self.LOADED

    def begin_init(self, log_level: str) -> None:
        if self.state != self.LOADED:
            raise EnclaveStateError(f"enclave runtime {self.name}: init called when {self.state}")
        if log_level not in LOG_LEVELS:
            levels = ", ".join(LOG_LEVELS)
            raise EnclaveConfigError(f"enclave runtime {self.name}", f"invalid log level {log_level!r} ({levels})")

    def initialized(self) -> None:
        self.state = self.READY

    def require(self, call: str) -> None:
        if self.state != self.READY:
            when = "before init" if self.state == self.LOADED else "after destroy"
            raise EnclaveStateError(f"enclave runtime {self.name}: {call} called {when}")

    def destroy(self) -> bool:
        if self.state == self.DESTROYED:
            raise EnclaveStateError(f"enclave runtime {self.name}: destroy called twice")
        was_ready, self.state = self.state == self.READY, self.DESTROYED
        return was_ready


def split_args(args: str) -> list[str]:
    """The runtime options in `args`: separated by spaces or commas.

    Commas count as separators because rune always turned
    ``enclave.runtime.args=debug,no-epm`` into ``"debug no-epm"`` (docs/pal-abi.md, "Calls").
    """
    return args.replace(",", " ").split()
