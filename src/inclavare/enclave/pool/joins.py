"""What a pooled instance takes from the container's init to become part of it.

Opened through the host's /proc *before* the guest is forked (afterwards the
host's /proc is out of reach): init's namespaces that differ from ours, its
root, its cgroup directories, and the process attributes it inherited from
rune's caller and a fresh process would inherit too — oom_score_adj (set by
`rune create` from process.oomScoreAdj), every rlimit, the CPU affinity, the
nice value and the umask — so the enclave runs as init would have run it,
not as epm runs. process.rlimits and process.user.umask are applied over
these later, by the same code as for `rune exec` (guest.py).

The guest's :meth:`Joins.enter`, as host root: the attributes, then the
cgroups (cgroup.procs is the host's: before any user namespace), then the
namespaces, user first (as runtime/process/tenant.py), then init's root
exactly — fchdir + chroot to the directory /proc/<init>/root named — so the
guest's root is init's whether init pivoted, moved or chrooted into it.
"""

from __future__ import annotations

import os
import resource

from ..._sys import consts as c
from ...runtime import cgroups
from . import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..._sys import Syscalls

_RLIMITS = tuple(getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_"))


class Joins:
    __slots__ = ("affinity", "cgroup_dirs", "namespaces", "nice", "oom_score_adj", "pid_ns", "rlimits", "root_fd",
                 "umask")  # fmt: skip

    def __init__(self) -> None:
        self.pid_ns = -1
        self.root_fd = -1
        self.namespaces: list[tuple[str, int]] = []  # (OCI type, fd), those that differ from ours
        self.cgroup_dirs: list[int] = []
        self.oom_score_adj = b"0"
        self.rlimits: list[tuple[int, tuple[int, int]]] = []
        self.affinity: set[int] = set()
        self.nice = 0
        self.umask = 0o022

    @classmethod
    def of(cls, pid: int) -> Joins:
        joins = cls()
        try:
            joins._open_namespaces(pid)
            joins.root_fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            found = cgroups.mounts()
            theirs = cgroups.own_cgroups(str(pid))
            dirs = {cgroups.directory(*found[ctl], None, path) for ctl, path in theirs.items() if ctl in found}
            joins.cgroup_dirs = [os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for d in sorted(dirs)]
            joins._read_attributes(pid)
        except BaseException:
            joins.close()
            raise
        return joins

    def _open_namespaces(self, pid: int) -> None:
        for oci_type, (_flag, name) in c.NAMESPACES.items():
            theirs = f"/proc/{pid}/ns/{name}"
            if not os.path.exists(theirs) or os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
            fd = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
            if oci_type == "pid":
                self.pid_ns = fd
            else:
                self.namespaces.append((oci_type, fd))
        if not any(t == "mount" for t, _ in self.namespaces):
            # rune create pools only containers with a mount namespace of their own; this is the
            # guest's own check: without one, a setns would leave it at the host's root.
            raise wire.PoolProtocolError("enclave pool: the container has no mount namespace of its own")

    def _read_attributes(self, pid: int) -> None:
        with open(f"/proc/{pid}/oom_score_adj", "rb") as f:
            self.oom_score_adj = f.read().strip()
        self.rlimits = [(r, resource.prlimit(pid, r)) for r in _RLIMITS]
        self.affinity = os.sched_getaffinity(pid)
        self.nice = os.getpriority(os.PRIO_PROCESS, pid)
        with open(f"/proc/{pid}/status") as f:
            umask = next((line.split()[1] for line in f if line.startswith("Umask:")), "0022")
        self.umask = int(umask, 8)

    def enter(self, sc: Syscalls) -> None:
        """In the guest, as host root: become part of the container (the module docstring)."""
        with open("/proc/self/oom_score_adj", "wb") as f:  # lowering it needs CAP_SYS_RESOURCE (proc(5))
            f.write(self.oom_score_adj)
        for which, limits in self.rlimits:
            resource.setrlimit(which, limits)
        os.sched_setaffinity(0, self.affinity)
        os.setpriority(os.PRIO_PROCESS, 0, self.nice)
        os.umask(self.umask)
        for d in self.cgroup_dirs:
            fd = os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=d)
            try:
                os.write(fd, b"0")  # "0": the writer itself (cgroups(7))
            finally:
                os.close(fd)
        for oci_type, fd in sorted(self.namespaces, key=lambda j: j[0] != "user"):
            sc.setns(fd, c.NAMESPACES[oci_type][0], oci_type)
        os.fchdir(self.root_fd)
        os.chroot(".")
        os.chdir("/")
        self.close()

    def close(self) -> None:
        for fd in [self.pid_ns, self.root_fd, *(fd for _, fd in self.namespaces), *self.cgroup_dirs]:
            if fd >= 0:
                os.close(fd)
        self.pid_ns, self.root_fd, self.namespaces, self.cgroup_dirs = -1, -1, [], []
