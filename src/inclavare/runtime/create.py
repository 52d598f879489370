"""`rune create`: set a container up and leave its init waiting for `start`.

The main side of the spawn protocol (:mod:`.process.messages` has the
diagram). On any failure everything made so far is undone, newest first:
init killed, cgroups removed, state directory deleted — a failed create
leaves nothing behind.
"""

from __future__ import annotations

import os
import time

from .._sys import consts as c
from .._sys import dmz, proc
from ..errors import InclavareError, SpecError
from ..spec.load import load_bundle
from ..spec.model import Spec
from ..spec.validate import validate
from . import cgroups, config, enclave_setup, hooks, lsm, rdt, reaper
from . import state as st
from .context import RuntimeContext
from .kill import kill_checked
from .process import intermediate, terminal
from .process.launch import Launch
from .process.messages import GO, HOOKS, HOOKS_DONE, MAPPED, PID, READY, USERNS, Channel
from .steps import located, step

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class CreateOptions:
    __slots__ = ("bundle", "console_socket", "no_new_keyring", "no_pivot", "pid_file", "preserve_fds")

    def __init__(self, bundle: str = ".", console_socket: str | None = None, pid_file: str | None = None,
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0) -> None:  # fmt: skip
        self.bundle = bundle
        self.console_socket = console_socket
        self.pid_file = pid_file
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds


class _Undo:
    """A stack of cleanup actions, run newest first when create fails."""

    def __init__(self) -> None:
        self.actions: list[tuple[Callable[..., object], tuple[object, ...]]] = []

    def push(self, fn: Callable[..., object], *args: object) -> None:
        self.actions.append((fn, args))

    def run(self, ctx: RuntimeContext) -> None:
        while self.actions:
            fn, args = self.actions.pop()
            try:
                fn(*args)
            except Exception as exc:  # keep undoing; report what could not be undone
                ctx.warn(f"cleanup after failed create: {exc}")


def create(ctx: RuntimeContext, container_id: str, opts: CreateOptions, spec: Spec | None = None) -> st.State:
    """Create the container; return its state with init waiting on exec.fifo."""
    bundle = os.path.abspath(opts.bundle)
    st.validate_id(container_id)
    spec = spec if spec is not None else load_bundle(bundle)  # `run` has loaded it already
    validate(spec, bundle)
    _check_required(spec)
    with step("creating the state directory", st.container_dir(ctx.root, container_id)):
        state_dir = st.make_dir(ctx.root, container_id)
    undo = _Undo()
    undo.push(st.remove_dir, state_dir)
    try:
        return _create(ctx, container_id, bundle, spec, state_dir, opts, undo)
    except BaseException as exc:
        undo.run(ctx)
        if isinstance(exc, OSError):  # a step not named below: still one line, with the verb
            raise located("create", exc) from None
        raise


def _check_required(spec: object) -> None:
    """Without a mount namespace of its own the container shares the host's
    (config-linux.md: a type not listed is inherited): its mounts are made
    there, under the rootfs, and rune removes them on delete. What would
    change the host itself is refused."""
    kinds = {ns.type for ns in spec.linux.namespaces}  # type: ignore[attr-defined]
    if "mount" in kinds:
        return
    reason = "needs a mount namespace of the container's own (it would change the host's mounts)"
    linux = spec.linux  # type: ignore[attr-defined]
    for field, value in (("linux.maskedPaths", linux.masked_paths), ("linux.readonlyPaths", linux.readonly_paths),
                         ("linux.rootfsPropagation", linux.rootfs_propagation),
                         ("root.readonly", spec.root.readonly)):  # type: ignore[attr-defined]  # fmt: skip
        if value:
            raise SpecError(field, reason)


def _create(ctx: RuntimeContext, cid: str, bundle: str, spec: object, state_dir: str,
            opts: CreateOptions, undo: _Undo) -> st.State:  # fmt: skip
    from .._sys import default as syscalls

    state = _initial_state(ctx, cid, bundle, spec, state_dir)
    _save(state)
    fifo = os.path.join(state_dir, st.FIFO)
    with step("creating exec.fifo"):
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # the umask must not take the container user's write bit away

    launch = Launch(cid, bundle, state.rootfs, spec, syscalls())  # type: ignore[arg-type]
    if state.extra.get("shared_mount_namespace"):
        launch.made_mounts = []  # init notes its mounts, create records them (rootfs/owned.py)
        undo.push(_remove_owned_mounts, ctx, launch, state)
    _plan(ctx, launch, spec, opts, state)
    undo.push(_close_fds, launch)
    cg = _cgroups(ctx, spec, cid, undo)
    if cg is not None:
        state.cgroup = cg.to_json()
        _save(state)  # so a delete after a create killed from here on finds the cgroups
    launch.cgroup_mounts = _cgroup_mount_map(cg)
    init_pid = _spawn(launch, cg, state, undo)
    state.pid = init_pid
    state.start_time = proc.start_time(init_pid)
    _handshake(launch, state)
    state.creating = False
    state.extra.pop("creator", None)
    _save(state)
    if opts.pid_file:
        with step("--pid-file: writing", opts.pid_file):
            st.write_pid_file(opts.pid_file, init_pid)
    launch.channel.close()  # type: ignore[union-attr]
    _close_fds(launch)
    return state


def _save(state: st.State) -> None:
    with step("saving state.json", os.path.join(state.dir, st.STATE_FILE)):
        state.save()


def _initial_state(ctx: RuntimeContext, cid: str, bundle: str, spec: object, state_dir: str) -> st.State:
    state = st.State(cid, state_dir)
    state.bundle = bundle
    state.rootfs = os.path.normpath(os.path.join(bundle, spec.root.path))  # type: ignore[attr-defined]
    state.created = _now()
    state.owner = ""
    state.annotations = dict(spec.annotations)  # type: ignore[attr-defined]
    state.config = spec.raw  # type: ignore[attr-defined]
    state.extra["creator"] = [os.getpid(), proc.start_time(os.getpid())]
    if not any(ns.type == "mount" for ns in spec.linux.namespaces):  # type: ignore[attr-defined]
        state.extra["shared_mount_namespace"] = True  # delete unmounts what create mounted
    return state


def _plan(ctx: RuntimeContext, launch: Launch, spec: object, opts: CreateOptions, state: st.State) -> None:
    enclave_setup.prepare(ctx, launch, spec, state)  # type: ignore[arg-type]
    if launch.executor is not None:
        state.save()  # the enclave configuration, for exec and attest
    launch.mounts = config.mount_entries(spec, launch.bundle)  # type: ignore[arg-type]
    launch.new_flags, joins = config.namespace_plan(spec)  # type: ignore[arg-type]
    for i, (ns_type, path) in enumerate(joins):
        launch.join_fds.append((ns_type, _open_namespace(i, ns_type, path, spec), path))
    _refuse_own_mount_namespace(spec, launch.join_fds)
    _refuse_host_sysctls(spec, launch.join_fds)
    launch.no_pivot = opts.no_pivot
    launch.no_new_keyring = opts.no_new_keyring
    launch.preserve_fds = opts.preserve_fds
    with step("opening the state directory"):
        launch.state_dir_fd = os.open(state.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    with step("sealing the exec trampoline", "memfd rune-dmz"):
        launch.dmz_fd = dmz.sealed_fd()
    lsm.check(spec.process.apparmor_profile, spec.process.selinux_label)  # type: ignore[attr-defined]
    rdt.check(spec.linux.intel_rdt)  # type: ignore[attr-defined]
    context = lsm.mount_context(spec.linux.mount_label)  # type: ignore[attr-defined]
    for m in launch.mounts:
        if context and not m.is_bind and m.fstype in ("tmpfs", "devpts", "mqueue"):
            m.data = f"{m.data},{context}" if m.data else context
    if spec.linux.seccomp is not None:  # type: ignore[attr-defined]
        from . import seccomp

        launch.seccomp = seccomp.compile_filter(spec.linux.seccomp)  # type: ignore[attr-defined]
    if opts.console_socket:
        launch.console_fd = terminal.connect(opts.console_socket)
    elif spec.process.terminal:  # type: ignore[attr-defined]
        raise InclavareError("cannot allocate a tty without --console-socket when detached (process.terminal is true)")


def _open_namespace(index: int, ns_type: str, path: str, spec: object) -> int:
    field = f"linux.namespaces[{_ns_index(spec, ns_type)}].path"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SpecError(field, f"{path}: {exc.strerror}") from None
    kind = proc.ns_type(fd)
    want = c.NAMESPACES[ns_type][1]
    if kind != want:
        os.close(fd)
        raise SpecError(field, f"{path} is {'a ' + kind if kind else 'not a'} namespace, not {want} ({ns_type})")
    return fd


def _same_namespace(fd: int, ns_type: str) -> bool:
    """Whether `fd` is rune's own namespace of `ns_type` (nsfs identity: st_dev, st_ino)."""
    own = os.stat(f"/proc/self/ns/{c.NAMESPACES[ns_type][1]}")
    target = os.fstat(fd)
    return (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino)


def _refuse_own_mount_namespace(spec: object, joins: list[tuple[str, int, str]]) -> None:
    """Joining rune's own mount namespace by path would have init make the
    host's whole tree rslave and pivot_root there — moving the root of every
    host process into the rootfs and detaching the old one. A container meant
    to share the host's mounts leaves the mount namespace out instead."""
    for ns_type, fd, _path in joins:
        if ns_type == "mount" and _same_namespace(fd, "mount"):
            raise SpecError(f"linux.namespaces[{_ns_index(spec, 'mount')}].path",
                            "is rune's own mount namespace: pivot_root there would move the host's root "
                            "(leave the mount namespace out to share the host's)")  # fmt: skip


def _refuse_host_sysctls(spec: object, joins: list[tuple[str, int, str]]) -> None:
    """A namespace joined by path may be the host's own (``/proc/1/ns/net``, a
    bind mount of it): a sysctl written there changes the host. Refused as
    runc's validator refuses it ("sysctl %q not allowed in host network
    namespace", libcontainer/configs/validate isHostNetNS), extended to the IPC
    and UTS sysctls. "Host" means rune's own namespace, compared by identity
    (st_dev, st_ino of nsfs) on the fd init will setns(2) into, so the path
    cannot be swapped between check and use."""
    from ..spec.validate import sysctl_namespace

    joined = {ns_type: fd for ns_type, fd, _path in joins}
    for key in spec.linux.sysctl:  # type: ignore[attr-defined]
        ns_type = sysctl_namespace(key)
        fd = joined.get(ns_type or "")
        if fd is None:
            continue  # a namespace of its own (spec.validate refused "none at all")
        if _same_namespace(fd, ns_type):  # type: ignore[arg-type]
            i = _ns_index(spec, ns_type)  # type: ignore[arg-type]
            raise SpecError(f"linux.sysctl.{key}", f"not allowed in the host's {ns_type} namespace "
                            f"(linux.namespaces[{i}].path joins rune's own)")  # fmt: skip


def _ns_index(spec: object, ns_type: str) -> int:
    return next(i for i, ns in enumerate(spec.linux.namespaces) if ns.type == ns_type)  # type: ignore[attr-defined]


def _cgroups(ctx: RuntimeContext, spec: object, cid: str, undo: _Undo) -> cgroups.CgroupManager | None:
    """The container's cgroups, created and configured. Rootless, where rune
    may not write the hierarchy, a container that asks for no resources runs
    without cgroups of its own (runc's --rootless auto); one that asks for
    limits gets a clear error instead of limits silently not applied."""
    linux = spec.linux  # type: ignore[attr-defined]
    devices = [(d.type, d.major, d.minor) for d in linux.devices if d.type != "p"]
    with step("linux.cgroupsPath: reading the host's cgroups"):
        cg = cgroups.manager_for(linux.cgroups_path, cid, ctx.systemd_cgroup)
    try:
        with step("linux.cgroupsPath: creating the cgroup"):
            cg.create()
    except InclavareError as exc:
        if not ctx.rootless or "ermission denied" not in str(exc):
            raise
        if linux.resources:
            raise SpecError("linux.resources", f"rootless: no writable cgroup to apply them ({exc})") from None
        ctx.trace(f"rootless: running without cgroups of its own ({exc})")
        return None
    undo.push(cg.destroy)
    with step("linux.resources: applying"):
        cg.apply(linux.resources, devices)
    return cg


def _cgroup_mount_map(cg: cgroups.CgroupManager | None) -> dict[str, str]:
    if cg is None:
        return {"": "/sys/fs/cgroup"}  # the host's, read-only (rootless without cgroups)
    return cg.mount_sources()


def _spawn(launch: Launch, cg: object, state: st.State, undo: _Undo) -> int:
    """Fork intermediate, drive it until it reports init's pid, place init in the cgroup.

    init is added to the cgroups while it builds its rootfs (the writes to
    every v1 hierarchy's cgroup.procs are the slowest part of a create), and
    it waits for ``hooks-done`` — sent only after the join — before it runs
    anything but rune's own code or creates its cgroup namespace.
    """
    with step("forking the container's intermediate process"):
        parent, child = Channel.pair()
        pid = os.fork()
    if pid == 0:
        parent.close()
        launch.channel = child
        intermediate.run(launch)  # never returns
    child.close()
    launch.channel = parent
    undo.push(reaper.kill_and_reap, pid)
    parent.send(GO)
    if launch.new_flags & c.CLONE_NEWUSER:
        parent.expect(USERNS)
        _write_id_maps(pid, launch.spec)
        parent.send(MAPPED)
    payload = parent.expect(PID, early=(HOOKS,))
    init_pid = int(payload["pid"])  # type: ignore[index]
    undo.push(_kill_init, init_pid)
    if cg is not None:
        cg.add(init_pid)  # type: ignore[attr-defined]
    if launch.spec.linux is not None and launch.spec.linux.intel_rdt is not None:
        rdt.apply(launch.spec.linux.intel_rdt, launch.container_id, init_pid)  # type: ignore[arg-type]
    os.waitpid(pid, 0)
    undo.actions.remove((reaper.kill_and_reap, (pid,)))
    return init_pid


def _write_id_maps(pid: int, spec: object) -> None:
    linux = spec.linux  # type: ignore[attr-defined]
    if os.geteuid() != 0:
        # An unprivileged writer may map only its own ids, and gid_map only
        # after setgroups(2) is disabled for the namespace (user_namespaces(7)).
        with step("linux.gidMappings: writing", f"/proc/{pid}/setgroups"), open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for name, maps in (("uid_map", linux.uid_mappings), ("gid_map", linux.gid_mappings)):
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as exc:
            field = "linux.uidMappings" if name == "uid_map" else "linux.gidMappings"
            raise SpecError(field, f"the kernel refused the mapping: {exc.strerror}") from None


def _handshake(launch: Launch, state: st.State) -> None:
    ch = launch.channel
    assert ch is not None
    proc_spec = launch.spec.process
    if proc_spec is not None and proc_spec.oom_score_adj is not None:
        path = f"/proc/{state.pid}/oom_score_adj"
        with step("process.oomScoreAdj: writing", path), open(path, "w") as f:
            f.write(str(proc_spec.oom_score_adj))
    made = ch.expect(HOOKS)
    if isinstance(made, dict) and made.get("mounts"):
        from .rootfs import owned

        with step("recording the container's mounts", "/proc/self/mountinfo"):
            state.extra["mounts"] = owned.describe(state.rootfs, made["mounts"])
        _save(state)  # before anything else can fail: delete and the undo read them from here
    hook_state = state.oci_state(status=st.CREATED)
    spec_hooks = launch.spec.hooks
    if spec_hooks is not None:
        hooks.run_hooks("prestart", spec_hooks.prestart, hook_state)
        hooks.run_hooks("createRuntime", spec_hooks.create_runtime, hook_state)
    ch.send(HOOKS_DONE, hook_state)
    kbs = getattr(launch.executor, "kbs", None)
    if kbs is not None:
        from ..enclave.provision import relay

        relay(ch, kbs)  # the enclave attests to its key broker before it is ready
    ch.expect(READY)


def _remove_owned_mounts(ctx: RuntimeContext, launch: Launch, state: st.State) -> None:
    from .rootfs import owned

    owned.remove(launch.sc, state.rootfs, state.extra.get("mounts") or [], ctx.warn)  # type: ignore[arg-type]


def _kill_init(pid: int) -> None:
    started = proc.start_time(pid)
    if started is None or not kill_checked(pid, started, 9):
        return
    for _ in range(2000):  # it is not our child: wait until it is gone (or a zombie)
        if not proc.is_alive(pid, started):
            return
        time.sleep(0.001)


def _close_fds(launch: Launch) -> None:
    fds = [fd for _t, fd, _p in launch.join_fds] + [launch.state_dir_fd, launch.console_fd, launch.dmz_fd]
    if launch.executor is not None:
        launch.executor.close_fds()  # type: ignore[attr-defined]
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
    launch.join_fds = []
    launch.state_dir_fd = launch.console_fd = launch.dmz_fd = -1


def _now() -> str:
    """RFC 3339 with nanoseconds, as runc writes `created`."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"
