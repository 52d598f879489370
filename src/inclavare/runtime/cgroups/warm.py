"""Taking the cgroup join's RCU grace period off `rune create`'s critical path.

Moving a process into a cgroup takes ``cgroup_threadgroup_rwsem`` for
writing (kernel/cgroup/cgroup.c, cgroup_attach_lock), and a writer of that
per-cpu rwsem first waits for an RCU grace period (kernel/rcu/sync.c,
rcu_sync_enter) — unless another writer came less than about a grace period
before: the readers (fork, exit) are then still on their slow path and the
next writer goes straight in. The wait is 5-15 ms on a busy host, the
longest single step of a create, and it falls right between init's fork and
its ``hooks-done``: runc and crun pay it there too.

So create and exec keep the rwsem's readers on the slow path while they
prepare: a thread writes rune's own pid, again and again, to the
``cgroup.procs`` of the cgroup rune already is in — the kernel takes the lock
and moves nothing (the task's css_set is already the destination's:
cgroup_migrate_prepare_dst drops it) — until :func:`settle`, called before
the first fork, stops and joins it. init's join, a few milliseconds later,
then finds the grace period behind it. Best effort: where rune may not write
its own cgroup (rootless, no cgroupfs) the thread just ends; rune forks
single-threaded either way.
"""

from __future__ import annotations

import os

from ..._sys import proc  # noqa: F401 - for mounts(): the thread must not import (the main thread is importing)
from . import MOUNTINFO, UNIFIED_ROOT, directory, mounts, own_cgroups

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _thread import LockType

_INTERVAL = 0.002  # s between writes: well inside a grace period (>= 1 jiffy)
_LIMIT = 500  # writes at most (one second): a create that stalls does not keep it up
_thread: tuple[LockType, LockType] | None = None  # (stop, done) locks of the running thread


def start() -> None:
    """Start keeping the cgroup rwsem warm (idempotent; see the module's doc)."""
    global _thread
    if _thread is not None:
        return
    import _thread as threads

    stop, done = threads.allocate_lock(), threads.allocate_lock()
    stop.acquire()
    done.acquire()
    _thread = (stop, done)
    threads.start_new_thread(_run, (stop, done))


def settle() -> None:
    """Stop the thread and wait until it is gone (before any fork)."""
    global _thread
    if _thread is None:
        return
    stop, done = _thread
    _thread = None
    stop.release()
    done.acquire()


def _run(stop: LockType, done: LockType) -> None:
    try:
        procs = _own_procs_file()
        if procs is not None:
            pid = str(os.getpid()).encode()
            for _ in range(_LIMIT):
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
                if stop.acquire(timeout=_INTERVAL):
                    break
    except BaseException:  # best effort, and a thread must not print a traceback
        pass
    finally:
        done.release()


def _own_procs_file(mountinfo: str = MOUNTINFO) -> str | None:
    """cgroup.procs of rune's own cgroup in one hierarchy (the rwsem is one
    for all of them): the unified one on a cgroup v2 host, else a v1 one."""
    found = mounts(mountinfo)
    own = own_cgroups()
    unified = found.get("unified")
    if unified is not None and unified[0] == UNIFIED_ROOT:
        name = "unified"
    else:
        v1 = sorted(ctl for ctl in found if ctl != "unified" and ctl in own)
        if not v1:
            return None
        name = v1[0]
    point, root = found[name]
    return os.path.join(directory(point, root, own.get(name), "."), "cgroup.procs")
