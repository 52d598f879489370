"""The container's init process (``rune:[2:INIT]``).

Builds the container from the inside (rootfs, /dev, masks, hostname,
identity), reports ``ready`` to `rune create`, blocks until `rune start`
opens exec.fifo, then hands over through its executor: execve of the
container process, or an enclave runtime (process/executor.py).

The process is non-dumpable from the start (PR_SET_DUMPABLE 0): until it
execs, its /proc/<pid> entries — fds, exe, mem — are closed to everything in
the container (CVE-2019-5736 class; execve restores dumpability).
"""

from __future__ import annotations

import os

from ..._sys import consts as c
from ...errors import InclavareError, SyscallError
from ..hooks import run_hooks
from ..rootfs import devices, masks, mounts, owned
from ..steps import located, step
from . import terminal, workload
from .messages import ERROR, HOOKS, HOOKS_DONE, READY, Channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from ..._sys import Syscalls
    from ..plan import LaunchPlan
    from ..rootfs.owned import Made
    from .executor import Executor
    from .launch import LaunchFds


def run(sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, executor: Executor) -> NoReturn:
    ch = fds.channel
    assert ch is not None
    # Without a mount namespace of its own: the mounts init makes, handed to
    # `rune create` with "hooks" (rootfs/owned.py); None otherwise.
    made: Made | None = None if plan.own_mount_ns else []
    try:
        sc.prctl(c.PR_SET_DUMPABLE, 0)
        sc.set_name("rune:[2:INIT]")
        with step("setsid"):
            os.setsid()
        executor.load()  # an enclave runtime's PAL is a host file: before pivot_root
        hook_state = build_container(sc, plan, fds, made)
        executor.setup(plan, ch)  # pal_init now: start stays fast
        process = workload.prepare(sc, plan, executor)
        ch.send(READY)
        ch.close()
    except BaseException as exc:
        if made:  # not handed over to `rune create` yet: ours to take back
            owned.undo(sc, plan.rootfs, made)
        report_and_exit(ch, exc)
    workload.wait_for_start(fds)
    hooks = plan.spec.hooks.start_container if plan.spec.hooks else []
    run_hooks("startContainer", hooks, hook_state)
    executor.run(sc, plan, fds, process)


def report_and_exit(ch: Channel | None, exc: BaseException) -> NoReturn:
    """Send the error to `rune create` (one line) and exit."""
    if isinstance(exc, SystemExit):
        os._exit(int(exc.code or 0))
    if isinstance(exc, OSError):  # a step not named where it failed: still one line
        exc = located("setting up the container", exc)
    msg = str(exc) if isinstance(exc, InclavareError) else f"{type(exc).__name__}: {exc}"
    try:
        if ch is not None:
            ch.send(ERROR, {"msg": msg})
    except OSError:
        pass
    os._exit(1)


def build_container(sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, made: Made | None) -> dict[str, object]:
    """The container's filesystem and identity, as the plan says; returns the
    OCI state the hooks get (from `rune create`, with "hooks-done")."""
    linux = plan.linux
    ordered = _has_create_hooks(plan)
    hook_state: dict[str, object] | None = None
    if plan.own_mount_ns:
        mounts.prepare_root(sc, plan.rootfs)
    with step("opening the rootfs", plan.rootfs):
        root_fd = os.open(plan.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mounts.mount_all(sc, root_fd, plan.mounts, plan.cgroup_mounts, made)
        _step("creating devices", devices.create_devices, sc, root_fd, linux.devices, plan.in_userns, made)
        devpts = any(m.fstype == "devpts" and m.destination == "/dev/pts" for m in plan.mounts)
        devices.create_symlinks(sc, root_fd, devpts)
        for key, value in linux.sysctl.items():
            _step(f"sysctl {key}", masks.write_sysctl, sc, root_fd, key, value)
        _report_mounts(fds, made)
        if ordered:
            hook_state = _run_create_hooks(sc, plan, fds)
        for path in linux.readonly_paths:
            _step(f"read-only path {path}", masks.readonly, sc, root_fd, path)
        for path in linux.masked_paths:
            _step(f"masked path {path}", masks.mask, sc, root_fd, path)
    finally:
        os.close(root_fd)
    if not plan.own_mount_ns:
        _step("chroot", mounts.chroot, sc, plan.rootfs)  # pivot_root would swap the host's root
    elif plan.no_pivot:
        _step("moving the root", mounts.move_root, sc, plan.rootfs)
    else:
        _step("pivot_root", mounts.pivot, sc, plan.rootfs)
    _step("rootfsPropagation", mounts.apply_root_propagation, sc, linux.rootfs_propagation)
    if plan.root.readonly:
        _step("read-only root", mounts.readonly_root, sc)
    if linux.personality is not None:
        sc.personality(_persona(linux.personality))
    if plan.spec.hostname:
        sc.sethostname(plan.spec.hostname)
    if plan.spec.domainname:
        sc.setdomainname(plan.spec.domainname)
    if not plan.no_new_keyring:
        _join_keyring(sc, plan.container_id)
    if plan.process.terminal:
        terminal.setup(fds, plan.process)
    if hook_state is None:
        hook_state = _joined(sc, plan, fds)
    return hook_state


def _has_create_hooks(plan: LaunchPlan) -> bool:
    """Whether hooks run between "hooks" and "hooks-done" (config.md, Lifecycle:
    prestart, createRuntime and createContainer run before pivot_root). Without
    them nothing orders init's masks and pivot_root after `rune create`'s
    cgroup join, and init waits for it only once its rootfs is done: on cgroup
    v1 the join is one RCU grace period long (the first write to a
    cgroup.procs; cgroup_threadgroup_rwsem), the slowest step of a create,
    and init's setup now runs during it instead of after it."""
    hooks = plan.spec.hooks
    return hooks is not None and bool(hooks.prestart or hooks.create_runtime or hooks.create_container)


def _report_mounts(fds: LaunchFds, made: Made | None) -> None:
    """Send "hooks": the rootfs is mounted (with the mounts made in the host's
    mount namespace, when the container shares it: rootfs/owned.py)."""
    ch = fds.channel
    assert ch is not None
    if made is None:
        ch.send(HOOKS)
    else:
        ch.send(HOOKS, {"mounts": made})
        made.clear()  # `rune create` removes them from here on


def _joined(sc: Syscalls, plan: LaunchPlan, fds: LaunchFds) -> dict[str, object]:
    """Wait for "hooks-done": we are in the container's cgroups now, and the
    cgroup namespace made here has them as its root. Returns the OCI state
    for the hooks init runs."""
    ch = fds.channel
    assert ch is not None
    reply = ch.expect(HOOKS_DONE)
    if plan.new_flags & c.CLONE_NEWCGROUP:
        sc.unshare(c.CLONE_NEWCGROUP)
    return reply if isinstance(reply, dict) else {}


def _run_create_hooks(sc: Syscalls, plan: LaunchPlan, fds: LaunchFds) -> dict[str, object]:
    """prestart/createRuntime run in `rune create` (host namespaces);
    createContainer runs here, in the container's namespaces, before pivot_root."""
    state = _joined(sc, plan, fds)
    hooks = plan.spec.hooks.create_container if plan.spec.hooks else []
    run_hooks("createContainer", hooks, state)
    return state


# linux.personality.domain -> personality(2) persona (<linux/personality.h>)
_PERSONAS = {"LINUX": 0x0000, "LINUX32": 0x0008}


def _persona(section: object) -> int:
    domain = section.get("domain") if isinstance(section, dict) else None
    if domain not in _PERSONAS:
        raise InclavareError(f"linux.personality.domain: {domain!r} is not LINUX or LINUX32")
    return _PERSONAS[domain]


def _join_keyring(sc: Syscalls, container_id: str) -> None:
    """A session keyring of its own, so containers do not share kernel keys
    (runc does the same; ENOSYS/EACCES where keyctl is filtered: skip)."""
    try:
        sc.join_session_keyring("_ses." + container_id[:64])
    except SyscallError as exc:
        if exc.errno not in (38, 13, 1):  # ENOSYS, EACCES, EPERM
            raise


def _step(what: str, fn: Callable[..., object], *args: object) -> None:
    """Run one setup step; on failure say which step, in one line."""
    try:
        fn(*args)
    except SyscallError as exc:
        raise InclavareError(f"{what}: {exc}") from None
    except OSError as exc:
        raise InclavareError(f"{what}: {exc.strerror or exc}") from None
