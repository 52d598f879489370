"""The processes of `rune exec`: join a running container, then exec.

Same shape as create (youki calls this the "tenant" builder, runc the setns
process): main forks an intermediate that setns(2)s into every namespace of
the container's init — the user namespace first — and forks again, because
joining a pid namespace only takes effect for children. The grandchild
becomes who the process spec says, reports ``ready``, loads the container's
seccomp filter and execs through the sealed trampoline (CVE-2019-5736).

Protocol (on a :class:`~.messages.Channel`)::

    main                         intermediate                 tenant
     | fork -------------------->|
     | join cgroup (its pid)      |
     |-- go --------------------->| setns(all, user first)
     |                            | fork ------------------------->|
     |<- pid {pid} ---------------| _exit(0)                       | identity, cwd, tty
     |<- ready ----------------------------------------------------|
     | read exec pipe to EOF (close-on-exec: EOF = exec happened;   | "P path"; seccomp;
     |   an errno before it: the exec failed, see execerr.py)       |   execve(dmz) -> execve
     | --pid-file
"""

from __future__ import annotations

import os

from ..._sys import consts as c
from ..steps import step
from . import terminal, workload
from .init import report_and_exit
from .messages import GO, PID, READY, Channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..._sys import Syscalls
    from ...seccomp import Filter
    from ...spec.model import Process


class Tenant:
    """What the exec'ing children need (read from their copy of main's memory)."""

    __slots__ = ("console_fd", "dmz_fd", "exec_fd", "ns_fds", "preserve_fds", "process", "root_fd", "sc", "seccomp")

    def __init__(self, sc: Syscalls, process: Process) -> None:
        self.sc = sc
        self.process = process
        self.ns_fds: list[tuple[str, int]] = []  # (OCI type, fd of /proc/<init>/ns/<name>)
        self.root_fd = -1  # /proc/<init>/root, for a container without its own mount namespace
        self.console_fd = -1
        self.dmz_fd = -1
        self.exec_fd = -1  # write end of the exec-detection pipe (close-on-exec)
        self.preserve_fds = 0
        self.seccomp: Filter | None = None


def run_intermediate(t: Tenant, ch: Channel) -> None:
    """Never returns."""
    try:
        t.sc.set_name("rune:[1:EXEC]")
        ch.expect(GO)
        for ns_type, fd in sorted(t.ns_fds, key=lambda j: j[0] != "user"):
            t.sc.setns(fd, c.NAMESPACES[ns_type][0], ns_type)
            os.close(fd)
        with step("forking the exec'd process"):
            pid = os.fork()
        if pid == 0:
            _run_tenant(t, ch)
        ch.send(PID, {"pid": pid})
    except BaseException as exc:
        report_and_exit(ch, exc)
    os._exit(0)


def _run_tenant(t: Tenant, ch: Channel) -> None:
    try:
        t.sc.prctl(c.PR_SET_DUMPABLE, 0)
        t.sc.set_name("rune:[2:EXEC]")
        os.setsid()
        if t.root_fd >= 0:
            with step("entering the container's root (chroot)"):
                _enter_root(t.root_fd)
        if t.process.terminal:
            terminal.attach(t.console_fd, t.process)
            t.console_fd = -1
        prog = workload.prepare_process(t.sc, t.process, seccomp=t.seccomp is not None)
        ch.send(READY)
        ch.close()
    except BaseException as exc:
        report_and_exit(ch, exc)
    workload.final_exec(t.sc, t.dmz_fd, t.preserve_fds, t.seccomp, prog, t.exec_fd)


def _enter_root(root_fd: int) -> None:
    """A container sharing the host's mount namespace is confined by its
    init's chroot only; joining the namespaces does not carry that over, so
    the tenant takes the same root (runc's setns process does not, and an
    exec there sees the host's filesystem). Like any chroot, it confines only
    processes without CAP_SYS_CHROOT; give such containers a mount namespace."""
    os.fchdir(root_fd)
    os.chroot(".")
    os.chdir("/")
    os.close(root_fd)
