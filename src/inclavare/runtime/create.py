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
from ..errors import InclavareError, InitFailed, SpecError
from ..spec.load import load_bundle
from ..spec.model import Spec
from ..spec.validate import validate
from . import cgroups, enclave_setup, hooks, rdt, reaper
from . import state as st
from .cgroups import warm
from .context import RuntimeContext
from .kill import kill_checked
from .plan import LaunchPlan
from .plan import build as build_plan
from .process import intermediate, terminal
from .process.executor import PlainExecutor
from .process.launch import LaunchFds
from .process.messages import GO, HOOKS, HOOKS_DONE, MAPPED, PID, READY, USERNS, Channel
from .steps import located, step

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .._sys import Syscalls
    from ..spec.model import Linux
    from .process.executor import Executor


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


def _check_required(spec: Spec) -> None:
    """Without a mount namespace of its own the container shares the host's
    (config-linux.md: a type not listed is inherited): its mounts are made
    there, under the rootfs, and rune removes them on delete. What would
    change the host itself is refused."""
    linux, root = spec.linux, spec.root
    # spec.validate refused a bundle without these
    assert linux is not None
    assert root is not None
    if any(ns.type == "mount" for ns in linux.namespaces):
        return
    reason = "needs a mount namespace of the container's own (it would change the host's mounts)"
    for field, value in (
        ("linux.maskedPaths", linux.masked_paths),
        ("linux.readonlyPaths", linux.readonly_paths),
        ("linux.rootfsPropagation", linux.rootfs_propagation),
        ("root.readonly", root.readonly),
    ):
        if value:
            raise SpecError(field, reason)


def _create(ctx: RuntimeContext, cid: str, bundle: str, spec: Spec, state_dir: str,
            opts: CreateOptions, undo: _Undo) -> st.State:  # fmt: skip
    from .._sys import default as syscalls

    state = _initial_state(cid, bundle, spec, state_dir)
    _save(state)
    fifo = os.path.join(state_dir, st.FIFO)
    with step("creating exec.fifo"):
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # the umask must not take the container user's write bit away
    if state.extra.get("shared_mount_namespace"):
        undo.push(_remove_owned_mounts, ctx, state)  # init notes its mounts, create records them (rootfs/owned.py)
    enclave = enclave_setup.decide(ctx, spec, cid, (bundle, state.rootfs))
    if enclave is not None:
        undo.push(enclave.close)
        enclave_setup.apply(enclave, spec, state)
        enclave_setup.claim_pooled(ctx, enclave, spec, state, opts.preserve_fds)
        _save(state)  # the enclave configuration, for exec and attest
    cg = _cgroups(ctx, spec, cid, undo)
    if cg is not None:
        state.cgroup = cg.to_json()
        _save(state)  # so a delete after a create killed from here on finds the cgroups
    plan = build_plan(cid, bundle, state.rootfs, spec, opts, enclave, _cgroup_mount_map(cg))
    fds = LaunchFds()
    undo.push(fds.close)
    executor = enclave_setup.executor(enclave, state.dir) if enclave is not None else PlainExecutor()
    undo.push(executor.close_fds)
    _open_fds(plan, opts, state, fds)
    init_pid = _spawn(syscalls(), plan, fds, executor, cg, undo)
    state.pid = init_pid
    state.start_time = proc.start_time(init_pid)
    _handshake(plan, fds, state)
    state.creating = False
    state.extra.pop("creator", None)
    _save(state)
    if opts.pid_file:
        with step("--pid-file: writing", opts.pid_file):
            st.write_pid_file(opts.pid_file, init_pid)
    assert fds.channel is not None
    fds.channel.close()
    fds.close()
    executor.close_fds()
    return state


def _save(state: st.State) -> None:
    with step("saving state.json", os.path.join(state.dir, st.STATE_FILE)):
        state.save()


def _initial_state(cid: str, bundle: str, spec: Spec, state_dir: str) -> st.State:
    # spec.validate refused a bundle without these
    assert spec.root is not None
    assert spec.linux is not None
    state = st.State(cid, state_dir)
    state.bundle = bundle
    state.rootfs = os.path.normpath(os.path.join(bundle, spec.root.path))
    state.created = _now()
    state.owner = ""
    state.annotations = dict(spec.annotations)
    state.config = spec.raw
    state.extra["creator"] = [os.getpid(), proc.start_time(os.getpid())]
    if not any(ns.type == "mount" for ns in spec.linux.namespaces):
        state.extra["shared_mount_namespace"] = True  # delete unmounts what create mounted
    return state


def _open_fds(plan: LaunchPlan, opts: CreateOptions, state: st.State, fds: LaunchFds) -> None:
    """What the children need open: the namespaces to join (checked on the
    very fds they will setns(2) into), the state directory, the sealed
    exec trampoline and the console socket."""
    for ns_type, path in plan.joins:
        fds.join_fds.append((ns_type, _open_namespace(plan.linux, ns_type, path), path))
    _refuse_own_mount_namespace(plan.linux, fds.join_fds)
    _refuse_host_sysctls(plan.linux, fds.join_fds)
    with step("opening the state directory"):
        fds.state_dir_fd = os.open(state.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    with step("sealing the exec trampoline", "memfd rune-dmz"):
        fds.dmz_fd = dmz.sealed_fd()
    if opts.console_socket:
        fds.console_fd = terminal.connect(opts.console_socket)


def _open_namespace(linux: Linux, ns_type: str, path: str) -> int:
    field = f"linux.namespaces[{_ns_index(linux, ns_type)}].path"
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


def _refuse_own_mount_namespace(linux: Linux, joins: list[tuple[str, int, str]]) -> None:
    """Joining rune's own mount namespace by path would have init make the
    host's whole tree rslave and pivot_root there — moving the root of every
    host process into the rootfs and detaching the old one. A container meant
    to share the host's mounts leaves the mount namespace out instead."""
    for ns_type, fd, _path in joins:
        if ns_type == "mount" and _same_namespace(fd, "mount"):
            raise SpecError(f"linux.namespaces[{_ns_index(linux, 'mount')}].path",
                            "is rune's own mount namespace: pivot_root there would move the host's root "
                            "(leave the mount namespace out to share the host's)")  # fmt: skip


def _refuse_host_sysctls(linux: Linux, joins: list[tuple[str, int, str]]) -> None:
    """A namespace joined by path may be the host's own (``/proc/1/ns/net``, a
    bind mount of it): a sysctl written there changes the host. Refused as
    runc's validator refuses it ("sysctl %q not allowed in host network
    namespace", libcontainer/configs/validate isHostNetNS), extended to the IPC
    and UTS sysctls. "Host" means rune's own namespace, compared by identity
    (st_dev, st_ino of nsfs) on the fd init will setns(2) into, so the path
    cannot be swapped between check and use."""
    from ..spec.validate import sysctl_namespace

    joined = {ns_type: fd for ns_type, fd, _path in joins}
    for key in linux.sysctl:
        ns_type = sysctl_namespace(key)
        fd = joined.get(ns_type) if ns_type is not None else None
        if ns_type is None or fd is None:
            continue  # a namespace of its own (spec.validate refused "none at all")
        if _same_namespace(fd, ns_type):
            raise SpecError(f"linux.sysctl.{key}", f"not allowed in the host's {ns_type} namespace "
                            f"(linux.namespaces[{_ns_index(linux, ns_type)}].path joins rune's own)")  # fmt: skip


def _ns_index(linux: Linux, ns_type: str) -> int:
    return next(i for i, ns in enumerate(linux.namespaces) if ns.type == ns_type)


def _cgroups(ctx: RuntimeContext, spec: Spec, cid: str, undo: _Undo) -> cgroups.CgroupManager | None:
    """The container's cgroups, created and configured. Rootless, where rune
    may not write the hierarchy, a container that asks for no resources runs
    without cgroups of its own (runc's --rootless auto); one that asks for
    limits gets a clear error instead of limits silently not applied."""
    linux = spec.linux
    assert linux is not None  # spec.validate refused a bundle without it
    devices = [(d.type, d.major or 0, d.minor or 0) for d in linux.devices if d.type != "p"]
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


def _spawn(sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, executor: Executor,
           cg: cgroups.CgroupManager | None, undo: _Undo) -> int:  # fmt: skip
    """Fork intermediate, drive it until it reports init's pid, place init in the cgroup.

    init is added to the cgroups while it builds its rootfs (the writes to
    every v1 hierarchy's cgroup.procs are the slowest part of a create), and
    it waits for ``hooks-done`` — sent only after the join — before it runs
    anything but rune's own code or creates its cgroup namespace.
    """
    warm.settle()  # its thread is gone: fork single-threaded
    if intermediate.unneeded(plan):
        return _spawn_init(sc, plan, fds, executor, cg, undo)
    with step("forking the container's intermediate process"):
        parent, child = Channel.pair()
        pid = os.fork()
    if pid == 0:
        parent.close()
        fds.channel = child
        intermediate.run(sc, plan, fds, executor)
    child.close()
    fds.channel = parent
    undo.push(reaper.kill_and_reap, pid)
    parent.send(GO)
    if plan.new_flags & c.CLONE_NEWUSER:
        parent.expect(USERNS)
        _write_id_maps(pid, plan.linux)
        parent.send(MAPPED)
    payload = parent.expect(PID, early=(HOOKS,))
    init_pid = int(payload["pid"]) if isinstance(payload, dict) else 0
    if init_pid <= 0:
        raise InclavareError(f"the container's intermediate process sent a bad pid message: {payload!r}")
    undo.push(_kill_init, init_pid)
    if cg is not None:
        _join_cgroups(cg, init_pid, parent)
    rdt_section = plan.linux.intel_rdt
    if isinstance(rdt_section, dict):  # rdt.check refused anything else
        rdt.apply(rdt_section, plan.container_id, init_pid)
    os.waitpid(pid, 0)
    undo.actions.remove((reaper.kill_and_reap, (pid,)))
    return init_pid


def _spawn_init(sc: Syscalls, plan: LaunchPlan, fds: LaunchFds, executor: Executor,
                cg: cgroups.CgroupManager | None, undo: _Undo) -> int:  # fmt: skip
    """_spawn without the intermediate (process/intermediate.py unneeded):
    init is main's own child, in the cgroups as early as can be."""
    with step("forking the container's init"):
        parent, child = Channel.pair()
        pid = intermediate.fork_init(sc, plan)
    if pid == 0:
        parent.close()
        fds.channel = child
        intermediate.run_init(sc, plan, fds, executor)
    child.close()
    fds.channel = parent
    undo.push(reaper.kill_and_reap, pid)  # our child: killed and reaped
    if cg is not None:
        _join_cgroups(cg, pid, parent)
    rdt_section = plan.linux.intel_rdt
    if isinstance(rdt_section, dict):  # rdt.check refused anything else
        rdt.apply(rdt_section, plan.container_id, pid)
    return pid


def _join_cgroups(cg: cgroups.CgroupManager, init_pid: int, ch: Channel) -> None:
    """Add init to the container's cgroups. init builds its rootfs meanwhile
    and may fail and exit (then the write finds no such process): its own
    error, already on the channel, is the one to report."""
    try:
        cg.add(init_pid)
    except InclavareError:
        reason = ch.pending_error()
        if reason is not None:
            raise InitFailed(reason) from None
        raise


def _write_id_maps(pid: int, linux: Linux) -> None:
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


def _handshake(plan: LaunchPlan, fds: LaunchFds, state: st.State) -> None:
    ch = fds.channel
    assert ch is not None
    if plan.process.oom_score_adj is not None:
        path = f"/proc/{state.pid}/oom_score_adj"
        with step("process.oomScoreAdj: writing", path), open(path, "w") as f:
            f.write(str(plan.process.oom_score_adj))
    made = ch.expect(HOOKS)
    if isinstance(made, dict) and made.get("mounts"):
        from .rootfs import owned

        with step("recording the container's mounts", "/proc/self/mountinfo"):
            state.extra["mounts"] = owned.describe(made["mounts"])
        _save(state)  # before anything else can fail: delete and the undo read them from here
    hook_state = state.oci_state(status=st.CREATED)
    spec_hooks = plan.spec.hooks
    if spec_hooks is not None:
        hooks.run_hooks("prestart", spec_hooks.prestart, hook_state)
        hooks.run_hooks("createRuntime", spec_hooks.create_runtime, hook_state)
    ch.send(HOOKS_DONE, hook_state)
    if plan.enclave is not None and plan.enclave.kbs is not None:
        from ..enclave.provision import relay

        # The enclave attests to its key broker before it is ready; rune only carries its TLS bytes.
        relay(ch, plan.enclave.kbs, plan.enclave.take_relay_fd())
    ch.expect(READY)


def _remove_owned_mounts(ctx: RuntimeContext, state: st.State) -> None:
    from .._sys import default as syscalls
    from .rootfs import owned

    records = state.extra.get("mounts")
    owned.remove(syscalls(), state.rootfs, records if isinstance(records, list) else [], ctx.warn)


def _kill_init(pid: int) -> None:
    started = proc.start_time(pid)
    if started is None or not kill_checked(pid, started, 9):
        return
    for _ in range(2000):  # it is not our child: wait until it is gone (or a zombie)
        if not proc.is_alive(pid, started):
            return
        time.sleep(0.001)


def _now() -> str:
    """RFC 3339 with nanoseconds, as runc writes `created`."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"
