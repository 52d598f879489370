"""One instance of the warm pool: ``python -m inclavare.enclave.pool.instance --fd N``.

epm starts it with one end of a :func:`.wire.pair` as fd N, and it lives
through three stages (docs/epm.md, "The warm pool"):

1. **prepare** (from epm: template rootfs, runtime, args): load the runtime
   and ``init`` it against the template — signature, trusted files, module
   compiled — and answer ``ready`` with the pool key and the identity. While
   it waits it is non-dumpable and ends when epm's end of its socket closes.
2. **handoff** (from the container's init, to whom epm passed our peer):
   init's pidfd and its stdio. From here the instance is the container's, not
   epm's: epm's exit no longer concerns it. It opens init's namespaces and cgroups
   through the host's /proc, enters init's pid namespace and forks the
   *guest*, which joins the rest and becomes the container's enclave
   (:mod:`.guest`). Joining a pid namespace takes effect only for children
   (setns(2)), hence the fork, as for `rune exec`.
3. It stays outside the container as the guest's parent, reaps it and exits.

Nothing of the container is trusted here except through the guest's own
verification: the pidfd only says where to go.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time

from ... import _sys
from ..._sys import consts as c
from ..runtimes._base import RuntimeBase
from . import guest, key, wire
from .joins import Joins

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..._sys import Syscalls


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--fd" or not args[1].isdigit():
        print("usage: python -m inclavare.enclave.pool.instance --fd N (started by epm)", file=sys.stderr)
        return 2
    sc = _sys.default()
    # Filling the pool must not slow the containers it is for: a refill starts right after a
    # claim, while that container starts. SCHED_IDLE runs it on otherwise idle CPU only
    # (sched(7)); the handoff puts the instance back to the normal policy.
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    sc.prctl(c.PR_SET_DUMPABLE, 0)  # it will hold an enclave: no ptrace, no /proc/<pid>/mem
    # No PR_SET_PDEATHSIG: it fires when the *thread* that forked us ends, which would kill an
    # instance epm handed out but init has not reached yet. An idle instance ends at the EOF
    # epm's exit (or its stop) gives its socket.
    sock = socket.socket(fileno=int(args[1]))
    try:
        msg, _ = wire.expect(sock, "prepare")
        rt, ready = prepare(sc, msg)
    except Exception as exc:
        _try_send(sock, wire.error_message(exc))
        return 1
    try:
        wire.send(sock, ready)
        msg, fds = wire.expect(sock, "handoff")
    except (wire.PoolProtocolError, OSError):
        return 0  # epm let us go (its end closed): nothing was handed out
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # the container's now: runs as it does
    return hand_over(sc, rt, sock, msg, fds)


def prepare(sc: Syscalls, msg: dict[str, object]) -> tuple[RuntimeBase, dict[str, object]]:
    started = time.monotonic()
    rootfs, runtime, args = wire.string(msg, "rootfs"), wire.string(msg, "runtime"), wire.string(msg, "args")
    if runtime not in key.BUILTIN:
        raise wire.PoolProtocolError(f"enclave pool: {runtime!r} is not a built-in runtime")
    from ..registry import resolve

    factory = resolve(runtime)
    if not (isinstance(factory, type) and issubclass(factory, RuntimeBase)):
        raise wire.PoolProtocolError(f"enclave pool: {runtime!r} is not one of the built-in runtimes' classes")
    rt = factory(tee=wire.string(msg, "tee"), rootfs=rootfs)
    rt.init_template(args)
    identity = rt.identity
    assert identity is not None  # set by a successful init
    ready = {"op": "ready", "key": key.key_of_rootfs(sc, rootfs, runtime, args),
             "measurement": identity.measurement.hex(), "signer": identity.signer.hex(),
             "seconds": round(time.monotonic() - started, 6)}  # fmt: skip
    return rt, ready


def hand_over(sc: Syscalls, rt: RuntimeBase, sock: socket.socket, msg: dict[str, object], fds: list[int]) -> int:
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        _try_send(sock, wire.error_message(wire.PoolProtocolError(
            "enclave pool: a handoff carries init's pidfd and its stdio")))  # fmt: skip
        return 1
    try:
        joins = Joins.of(_pid_of(fds[0]))
    except Exception as exc:
        for fd in fds:
            os.close(fd)
        _try_send(sock, wire.error_message(exc))
        return 1
    try:
        if select.select([fds[0]], [], [], 0)[0]:  # opened what a recycled pid now names? (pidfd readable = exited)
            raise wire.PoolProtocolError("enclave pool: the container's init exited during the handoff")
        if joins.pid_ns >= 0:
            sc.setns(joins.pid_ns, c.CLONE_NEWPID, "pid")
        pid = os.fork()
    except Exception as exc:
        for fd in fds[1:]:
            os.close(fd)
        joins.close()
        _try_send(sock, wire.error_message(exc))
        return 1
    finally:
        os.close(fds[0])
    if pid == 0:
        guest.run(sc, rt, sock, msg, fds[1:], joins)  # never returns
    for fd in fds[1:]:
        os.close(fd)
    joins.close()
    sock.close()
    try:
        os.waitpid(pid, 0)  # the guest's end: with its container (EINTR is retried, PEP 475)
    except ChildProcessError:
        pass
    return 0


def _pid_of(pidfd: int) -> int:
    """The pid a pidfd refers to, in our (the host's) pid namespace (proc(5), fdinfo "Pid:")."""
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                pid = int(line.split()[1])
                if pid > 0:
                    return pid
    raise wire.PoolProtocolError("enclave pool: the handoff's first fd is not a live process's pidfd")


def _try_send(sock: socket.socket, msg: dict[str, object]) -> None:
    try:
        wire.send(sock, msg)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
