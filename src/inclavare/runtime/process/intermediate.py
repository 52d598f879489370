"""The intermediate process (``rune:[1:INTER]``): namespaces, then init.

A process cannot move itself into a new pid namespace, only its children
(pid_namespaces(7)); and namespaces created after entering a new user
namespace are owned by it, which is what lets a user-namespaced container
mount its own /proc. Hence this short-lived middle process: it joins the
namespaces given by path, creates the user namespace and has main write the
id maps, creates the remaining namespaces and forks init into them. A
container with none of these (no user namespace, nothing to join, no time
namespace) does without it: see :func:`unneeded`.
"""

from __future__ import annotations

import os

from ..._sys import consts as c
from ..steps import step
from . import init
from .messages import GO, MAPPED, PID, USERNS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ..._sys import Syscalls
    from ..plan import LaunchPlan
    from .executor import Executor
    from .launch import LaunchFds


def run(sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, executor: Executor) -> NoReturn:
    """Exits once init is forked (or on error, after reporting it)."""
    ch = fds.channel
    assert ch is not None
    try:
        sc.set_name("rune:[1:INTER]")
        ch.expect(GO)
        _join(sc, fds)
        if plan.new_flags & c.CLONE_NEWUSER:
            sc.unshare(c.CLONE_NEWUSER)
            ch.send(USERNS)
            ch.expect(MAPPED)
            _become_root()
        # The cgroup namespace is init's to create, once it is in its cgroups.
        rest = plan.new_flags & ~(c.CLONE_NEWUSER | c.CLONE_NEWCGROUP)
        if rest:
            sc.unshare(rest)
        if rest & c.CLONE_NEWTIME:
            with step("linux.timeOffsets: writing", "/proc/self/timens_offsets"):
                _time_offsets(plan)
        with step("forking the container's init"):
            pid = os.fork()
        if pid == 0:
            init.run(sc, plan, fds, executor)
        ch.send(PID, {"pid": pid})
    except BaseException as exc:
        init.report_and_exit(ch, exc)
    os._exit(0)


def unneeded(plan: LaunchPlan) -> bool:
    """Without a user namespace, namespaces to join or a time namespace, the
    intermediate would only unshare and fork: main forks init itself (one
    fork and one process exit fewer, as crun does with a single clone)."""
    return not plan.joins and not plan.new_flags & (c.CLONE_NEWUSER | c.CLONE_NEWTIME)


def fork_init(sc: Syscalls, plan: LaunchPlan) -> int:
    """os.fork() for main when the intermediate is :func:`unneeded`, the child
    in the new pid namespace: unshare(CLONE_NEWPID) moves only the caller's
    later children (pid_namespaces(7)), and main returns to its own for the
    rest of its children (hooks) by setns(2) on /proc/self/ns/pid right after
    the fork. The child goes on in :func:`run_init`."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC) if plan.new_flags & c.CLONE_NEWPID else -1
    pid = -1
    try:
        if own >= 0:
            sc.unshare(c.CLONE_NEWPID)
        pid = os.fork()
    finally:
        if own >= 0:
            try:
                if pid != 0:
                    sc.setns(own, c.CLONE_NEWPID, "/proc/self/ns/pid")
            finally:
                os.close(own)
    return pid


def run_init(sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, executor: Executor) -> NoReturn:
    """The child of :func:`fork_init`: the namespaces the intermediate would
    have made (all but pid, made for it, and cgroup, init's own later), then init."""
    try:
        rest = plan.new_flags & ~(c.CLONE_NEWPID | c.CLONE_NEWCGROUP)
        if rest:
            sc.unshare(rest)
    except BaseException as exc:
        init.report_and_exit(fds.channel, exc)
    init.run(sc, plan, fds, executor)


def _join(sc: Syscalls, fds: LaunchFds) -> None:
    """setns(2) into namespaces given by path, the user namespace first: it
    grants the capabilities needed to join the others it owns."""
    for ns_type, fd, path in sorted(fds.join_fds, key=lambda j: j[0] != "user"):
        sc.setns(fd, c.NAMESPACES[ns_type][0], path)
        os.close(fd)
    fds.join_fds = []


def _time_offsets(plan: LaunchPlan) -> None:
    """linux.timeOffsets: written before any process enters the new time
    namespace, i.e. before init is forked (time_namespaces(7))."""
    offsets = plan.linux.time_offsets
    if not isinstance(offsets, dict):
        return
    lines = []
    for clock in ("monotonic", "boottime"):
        value = offsets.get(clock)
        if isinstance(value, dict):
            lines.append(f"{clock} {int(value.get('secs', 0))} {int(value.get('nanosecs', 0))}\n")
    with open("/proc/self/timens_offsets", "w") as f:
        f.write("".join(lines))


def _become_root() -> None:
    """Act as uid/gid 0 of the new user namespace, if the maps have one."""
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        pass  # 0 is not mapped: keep the mapped ids we have
