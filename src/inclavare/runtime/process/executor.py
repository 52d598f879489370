"""What init runs at the end: the :class:`Executor` seam (youki's Executor trait).

init builds every container the same way; only the hand-over differs. A
plain container execs its process (:class:`PlainExecutor`, below); an
enclave container gives it to an enclave runtime
(``inclavare.runtime.process.enclave_executor.EnclaveExecutor``, which satisfies the protocol
structurally: enclave/ sits below runtime/ and imports nothing of it at run
time). `rune create` picks one from the launch plan; init calls

1. :meth:`Executor.load` before pivot_root, while the host's files are in reach;
2. :meth:`Executor.setup` once the rootfs is built, before init reports
   ``ready`` (an enclave is initialised here, so `rune start` stays fast);
3. :meth:`Executor.run` on `rune start`, after the startContainer hooks; it
   never returns.

`rune create` calls :meth:`Executor.close_fds` on its own copies once init
has forked (or the create failed).
"""

from __future__ import annotations

from . import workload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn, Protocol

    from ..._sys import Syscalls
    from ..plan import LaunchPlan
    from .launch import LaunchFds
    from .messages import Channel
    from .workload import Exec

    class Executor(Protocol):
        # Whether process.args[0] must be found in the rootfs ($PATH): a
        # create fails early if not. An enclave runtime may find it in its image.
        program_in_rootfs: bool

        def load(self) -> None: ...

        def setup(self, plan: LaunchPlan, channel: Channel) -> None: ...

        def run(self, sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, prog: Exec) -> NoReturn: ...

        def close_fds(self) -> None: ...


class PlainExecutor:
    """execve through the sealed trampoline (:func:`.workload.final_exec`)."""

    __slots__ = ()
    program_in_rootfs = True

    def load(self) -> None:
        pass

    def setup(self, plan: LaunchPlan, channel: Channel) -> None:
        pass

    def run(self, sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, prog: Exec) -> NoReturn:
        workload.final_exec(sc, fds.dmz_fd, plan.preserve_fds, plan.seccomp, prog, fds.fifo_fd)

    def close_fds(self) -> None:
        pass
