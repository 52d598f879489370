"""The intermediate process (``rune:[1:INTER]``): namespaces, then init.

A process cannot move itself into a new pid namespace, only its children
(pid_namespaces(7)); and namespaces created after entering a new user
namespace are owned by it, which is what lets a user-namespaced container
mount its own /proc. Hence this short-lived middle process: it joins the
namespaces given by path, creates the user namespace and has main write the
id maps, creates the remaining namespaces and forks init into them.
"""

from __future__ import annotations

import os

from ..._sys import consts as c
from ..steps import step
from . import init
from .launch import Launch
from .messages import GO, MAPPED, PID, USERNS


def run(launch: Launch) -> None:
    """Never returns: exits once init is forked (or on error, after reporting it)."""
    ch = launch.channel
    assert ch is not None
    try:
        launch.sc.set_name("rune:[1:INTER]")
        ch.expect(GO)
        _join(launch)
        if launch.new_flags & c.CLONE_NEWUSER:
            launch.sc.unshare(c.CLONE_NEWUSER)
            ch.send(USERNS)
            ch.expect(MAPPED)
            _become_root()
        # The cgroup namespace is init's to create, once it is in its cgroups.
        rest = launch.new_flags & ~(c.CLONE_NEWUSER | c.CLONE_NEWCGROUP)
        if rest:
            launch.sc.unshare(rest)
        if rest & c.CLONE_NEWTIME:
            with step("linux.timeOffsets: writing", "/proc/self/timens_offsets"):
                _time_offsets(launch)
        with step("forking the container's init"):
            pid = os.fork()
        if pid == 0:
            init.run(launch)  # does not return
        ch.send(PID, {"pid": pid})
    except BaseException as exc:
        init.report_and_exit(ch, exc)
    os._exit(0)


def _join(launch: Launch) -> None:
    """setns(2) into namespaces given by path, the user namespace first: it
    grants the capabilities needed to join the others it owns."""
    for ns_type, fd, path in sorted(launch.join_fds, key=lambda j: j[0] != "user"):
        launch.sc.setns(fd, c.NAMESPACES[ns_type][0], path)
        os.close(fd)
    launch.join_fds = []


def _time_offsets(launch: Launch) -> None:
    """linux.timeOffsets: written before any process enters the new time
    namespace, i.e. before init is forked (time_namespaces(7))."""
    offsets = launch.spec.linux.time_offsets if launch.spec.linux else None
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
