"""How an enclave container's init hands its workload to an enclave runtime.

`rune create` makes an :class:`EnclaveExecutor` for a container whose
bundle asks for an enclave (and imports this module only then: plain
containers never load any of the enclave code). It is init's executor
(runtime/process/executor.py: the protocol it satisfies, and the plain
execve one beside it); init calls, in this order:

1. :meth:`load` — before pivot_root: dlopen the PAL from the host, or
   import the Python runtime (the PAL is a host file but runs inside the
   container's namespaces and rootfs; docs/pal-abi.md);
2. :meth:`setup` — after pivot_root, still privileged, during
   `rune create` (``pal_init``; so `rune start` stays fast);
3. :meth:`run` — on `rune start`, instead of execve: the init-runelet
   (:mod:`.runelet`) runs the entrypoint in the enclave and exits with its
   status.
"""

from __future__ import annotations

import os
import socket

from ...enclave import provision, registry
from ...enclave.config import EnclaveConfig
from ...enclave.interface import EnclaveRuntime
from ...enclave.pool.proxy import PooledRuntime
from ...enclave.provision import KbsPlan
from ...errors import EnclaveError
from . import runelet

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import NoReturn

    from ..._sys import Syscalls
    from ..plan import LaunchPlan
    from .launch import LaunchFds
    from .messages import Channel
    from .workload import Exec


class EnclaveExecutor:
    # The entrypoint may live in the enclave image rather than the rootfs:
    # looked up in $PATH, but kept as written when not found there.
    program_in_rootfs = False

    def __init__(self, config: EnclaveConfig, agent_fd: int, kbs: KbsPlan | None = None, pal_fd: int = -1,
                 tunnel: tuple[int, int] = (-1, -1), pool_fd: int = -1) -> None:  # fmt: skip
        self.config = config
        self.agent_fd = agent_fd  # listening socket <root>/<id>/agent.sock
        self.kbs = kbs  # secret provisioning at launch (enclave/provision/), or None
        self.pal_fd = pal_fd  # the PAL library registry.select opened and checked, or -1
        # The provisioning tunnel's control socketpair: (init's end, rune create's end).
        self.tunnel_fd, self.relay_fd = tunnel
        self.host_tls: ssl.SSLContext | None = None  # the unpinned opt-out's CA bundle, read before pivot_root
        self.rt: EnclaveRuntime | None = None
        # A warm instance epm handed `rune create` for this enclave (enclave/pool/), or -1.
        self.pool_fd = pool_fd
        self.pooled: PooledRuntime | None = None

    def close_fds(self) -> None:
        """`rune create`'s copies, once init has its own (init inherited them by fork)."""
        for fd in (self.agent_fd, self.pal_fd, self.tunnel_fd, self.pool_fd):
            if fd >= 0:
                os.close(fd)
        self.agent_fd = self.pal_fd = self.tunnel_fd = self.pool_fd = -1

    def load(self) -> None:
        if self.pool_fd >= 0:
            # The runtime is loaded already, in the instance: nothing of it is imported here.
            self.rt = self.pooled = PooledRuntime(socket.socket(fileno=self.pool_fd), self.config.runtime)
            self.pool_fd = -1
        else:
            factory = registry.resolve(self.config.runtime, self.pal_fd)
            self.rt = factory(tee=self.config.type, log=_debug)
        if self.pal_fd >= 0:
            os.close(self.pal_fd)  # dlopen holds the mapping; the workload must not inherit the fd
            self.pal_fd = -1
        if self.relay_fd >= 0:
            os.close(self.relay_fd)  # rune create's end: init talks through its own
            self.relay_fd = -1
        if self.kbs is not None:
            # after pivot_root the host's libraries (and CA bundle) are out of reach
            self.host_tls = provision.preload(self.kbs, self.config.type)
            if self.pooled is not None:
                import importlib

                importlib.import_module("inclavare.enclave.identity.broker")  # the guest's pin arrives as one

    def setup(self, plan: LaunchPlan, channel: Channel) -> None:
        """pal_init; then, if the bundle names a KBS, attest and receive the secrets.
        An enclave whose manifest pins a broker does not start without them."""
        assert self.rt is not None
        if self.pooled is not None:
            self.pooled.handoff(_handoff(plan, self.config))
        else:
            self.rt.init(self.config.args, self.config.log_level)
        if self.kbs is not None:
            user = plan.process.user
            fd, self.tunnel_fd = self.tunnel_fd, -1
            provision.receive(channel, fd, self.rt, self.kbs, (user.uid, user.gid), self.host_tls)
        elif self._pins_broker():
            raise EnclaveError("secret provisioning: the enclave's manifest pins a key broker ([kbs]) but the "
                               "container names none (enclave.kbs.url, enclave.kbs.resources): refusing to "
                               "start it without its secrets")  # fmt: skip

    def _pins_broker(self) -> bool:
        if self.pooled is not None:  # asked without building a BrokerPin: identity/ is not imported here
            return self.pooled.pins_broker()
        assert self.rt is not None
        return provision.trusted_broker(self.rt) is not None

    def run(self, sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, prog: Exec) -> NoReturn:
        """Runs the entrypoint and exits with its status."""
        assert self.rt is not None
        # The same fd hygiene as for plain containers: stdio and --preserve-fds only.
        sc.close_range_cloexec(3 + plan.preserve_fds)
        if plan.seccomp is not None:
            # The filter confines the runelet and everything the runtime starts.
            plan.seccomp.load()
            _drop_kept_admin(sc, plan)
        env = [f"{k}={v}" for k, v in prog.env.items()]
        try:
            started = lambda: os.close(fds.fifo_fd) if fds.fifo_fd >= 0 else None  # noqa: E731
            status = runelet.Runelet(self.rt, self.agent_fd).serve(prog.path, prog.argv, env, started)
        except Exception as exc:
            os.write(2, f"rune init: {exc}\n".encode())
            status = 1
        os._exit(status)


def _handoff(plan: LaunchPlan, config: EnclaveConfig) -> dict[str, object]:
    """What the pooled guest needs to become this container's enclave (enclave/pool/guest.py):
    the process spec as `rune create` made it, and the seccomp filter it compiled."""
    raw = plan.spec.raw.get("process")
    process = dict(raw) if isinstance(raw, dict) else {}
    process["env"] = list(plan.process.env)  # without rune's ENCLAVE_* parameters (enclave_setup.apply)
    code, flags = plan.seccomp.program() if plan.seccomp is not None else (b"", 0)
    keyring = "" if plan.no_new_keyring else "_ses." + plan.container_id[:64]
    return {"args": config.args, "log_level": config.log_level, "process": process,
            "seccomp": code.hex(), "seccomp_flags": flags, "keyring": keyring}  # fmt: skip


def _drop_kept_admin(sc: Syscalls, plan: LaunchPlan) -> None:
    """init kept CAP_SYS_ADMIN to load the filter without no_new_privs
    (runtime/privileges.py). A plain container's execve drops it; the
    init-runelet never execs, so it gives it back here, before anything of
    the workload runs."""
    from ..privileges import cap_mask

    caps = plan.process.capabilities
    if caps is None:
        sc.capset(0, 0, 0)
    else:
        sc.capset(cap_mask(caps.effective), cap_mask(caps.permitted), cap_mask(caps.inheritable))


def _debug(_msg: str) -> None:
    """Debug lines of the runtime: dropped (init has no log channel after create)."""
