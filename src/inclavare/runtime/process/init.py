"""The container's init process (``rune:[2:INIT]``).

Builds the container from the inside (rootfs, /dev, masks, hostname,
identity), reports ``ready`` to `rune create`, blocks until `rune start`
opens exec.fifo, then execs the container process — or hands over to an
enclave runtime, which is why the last step goes through ``launch.executor``.

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
from .launch import Launch
from .messages import ERROR, HOOKS, HOOKS_DONE, READY, Channel


def run(launch: Launch) -> None:
    ch = launch.channel
    assert ch is not None
    try:
        launch.sc.prctl(c.PR_SET_DUMPABLE, 0)
        launch.sc.set_name("rune:[2:INIT]")
        with step("setsid"):
            os.setsid()
        if launch.executor is not None:
            launch.executor.load()  # type: ignore[attr-defined]  # the PAL is a host file: before pivot_root
        build_container(launch)
        if launch.executor is not None:
            launch.executor.init_enclave(launch)  # type: ignore[attr-defined]  # pal_init now: start stays fast
        process = workload.prepare(launch)
        ch.send(READY)
        ch.close()
    except BaseException as exc:
        if launch.made_mounts:  # not handed over to `rune create` yet: ours to take back
            owned.undo(launch.sc, launch.rootfs, launch.made_mounts)
        report_and_exit(ch, exc)
    workload.wait_for_start(launch)
    run_hooks("startContainer", launch.spec.hooks.start_container if launch.spec.hooks else [], launch.hook_state)
    workload.execute(launch, process)


def report_and_exit(ch: Channel | None, exc: BaseException) -> None:
    """Send the error to `rune create` (one line) and exit; never returns."""
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


def build_container(launch: Launch) -> None:
    sc, spec = launch.sc, launch.spec
    linux = spec.linux
    assert linux is not None
    assert spec.root is not None
    own_mounts = bool(launch.new_flags & c.CLONE_NEWNS) or any(j[0] == "mount" for j in launch.join_fds)
    if own_mounts:
        mounts.prepare_root(sc, launch.rootfs)
    with step("opening the rootfs", launch.rootfs):
        root_fd = os.open(launch.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mounts.mount_all(sc, root_fd, launch.mounts, launch.cgroup_mounts, launch.made_mounts)
        in_userns = bool(launch.new_flags & c.CLONE_NEWUSER) or any(j[0] == "user" for j in launch.join_fds)
        _step("creating devices", devices.create_devices, sc, root_fd, linux.devices, in_userns, launch.made_mounts)
        devpts = any(m.fstype == "devpts" and m.destination == "/dev/pts" for m in launch.mounts)
        devices.create_symlinks(sc, root_fd, devpts)
        for key, value in linux.sysctl.items():
            _step(f"sysctl {key}", masks.write_sysctl, sc, root_fd, key, value)
        _run_create_hooks(launch)
        for path in linux.readonly_paths:
            _step(f"read-only path {path}", masks.readonly, sc, root_fd, path)
        for path in linux.masked_paths:
            _step(f"masked path {path}", masks.mask, sc, root_fd, path)
    finally:
        os.close(root_fd)
    if not own_mounts:
        _step("chroot", mounts.chroot, launch.rootfs)  # pivot_root would swap the host's root
    elif launch.no_pivot:
        _step("moving the root", mounts.move_root, sc, launch.rootfs)
    else:
        _step("pivot_root", mounts.pivot, sc, launch.rootfs)
    _step("rootfsPropagation", mounts.apply_root_propagation, sc, linux.rootfs_propagation)
    if spec.root.readonly:
        _step("read-only root", mounts.readonly_root, sc)
    if linux.personality is not None:
        sc.personality(_persona(linux.personality))
    if spec.hostname:
        sc.sethostname(spec.hostname)
    if spec.domainname:
        sc.setdomainname(spec.domainname)
    if not launch.no_new_keyring:
        _join_keyring(launch)
    if spec.process and spec.process.terminal:
        terminal.setup(launch)


def _run_create_hooks(launch: Launch) -> None:
    """prestart/createRuntime run in `rune create` (host namespaces);
    createContainer runs here, in the container's namespaces, before pivot_root."""
    ch = launch.channel
    assert ch is not None
    if launch.made_mounts is None:
        ch.send(HOOKS)
    else:
        ch.send(HOOKS, {"mounts": launch.made_mounts})
        launch.made_mounts = None  # `rune create` removes them from here on
    state = ch.expect(HOOKS_DONE)  # also means: we are in the container's cgroups now
    if isinstance(state, dict):
        launch.hook_state = state
    if launch.new_flags & c.CLONE_NEWCGROUP:
        launch.sc.unshare(c.CLONE_NEWCGROUP)
    hooks = launch.spec.hooks.create_container if launch.spec.hooks else []
    run_hooks("createContainer", hooks, launch.hook_state)


# linux.personality.domain -> personality(2) persona (<linux/personality.h>)
_PERSONAS = {"LINUX": 0x0000, "LINUX32": 0x0008}


def _persona(section: object) -> int:
    domain = section.get("domain") if isinstance(section, dict) else None
    if domain not in _PERSONAS:
        raise InclavareError(f"linux.personality.domain: {domain!r} is not LINUX or LINUX32")
    return _PERSONAS[domain]


def _join_keyring(launch: Launch) -> None:
    """A session keyring of its own, so containers do not share kernel keys
    (runc does the same; ENOSYS/EACCES where keyctl is filtered: skip)."""
    try:
        launch.sc.join_session_keyring("_ses." + launch.container_id[:64])
    except SyscallError as exc:
        if exc.errno not in (38, 13, 1):  # ENOSYS, EACCES, EPERM
            raise


def _step(what: str, fn: object, *args: object) -> None:
    """Run one setup step; on failure say which step, in one line."""
    try:
        fn(*args)  # type: ignore[operator]
    except SyscallError as exc:
        raise InclavareError(f"{what}: {exc}") from None
    except OSError as exc:
        raise InclavareError(f"{what}: {exc.strerror or exc}") from None
