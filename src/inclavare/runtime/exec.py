"""`rune exec`: run another process in a running container.

The process joins every namespace and the cgroups of the container's init,
gets the container's seccomp filter, and runs as the process spec says
(``--process FILE``, or the container's own process with the command-line
overrides applied, as runc builds it). See :mod:`.process.tenant` for the
spawn protocol.
"""

from __future__ import annotations

import os

from .._sys import consts as c
from .._sys import dmz, proc
from ..errors import InclavareError, InvalidTransition
from ..spec.load import build
from ..spec.model import Capabilities, Process
from . import cgroups, reaper
from . import state as st
from .cgroups import warm
from .context import RuntimeContext
from .process import execerr, tenant, terminal
from .process.messages import GO, PID, READY, Channel
from .steps import located, step

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .console import ForegroundConsole


class ExecOptions:
    __slots__ = ("apparmor", "args", "caps", "console_socket", "cwd", "detach", "env", "extra_gids",
                 "no_new_privs", "pid_file", "preserve_fds", "process_file", "process_label", "tty",
                 "user")  # fmt: skip

    def __init__(self) -> None:
        self.args: list[str] = []
        self.process_file = ""
        self.console_socket = ""
        self.tty = False
        self.detach = False
        self.pid_file = ""
        self.cwd = ""
        self.env: list[str] = []
        self.user = ""
        self.extra_gids: list[int] = []
        self.caps: list[str] = []
        self.no_new_privs = False
        self.preserve_fds = 0
        self.apparmor = ""
        self.process_label = ""


def exec_process(ctx: RuntimeContext, container_id: str, opts: ExecOptions) -> int:
    try:
        return _exec_process(ctx, container_id, opts)
    except OSError as exc:  # a step not named below: still one line, with the verb
        raise located("exec", exc) from None


def _exec_process(ctx: RuntimeContext, container_id: str, opts: ExecOptions) -> int:
    state = st.load(ctx.root, container_id)
    state.require("exec")
    process = process_for(state, opts)
    from . import lsm

    lsm.check(process.apparmor_profile, process.selinux_label)
    if "enclave" in state.extra:
        return _exec_in_enclave(state, process, opts)
    from .._sys import default as syscalls

    t = tenant.Tenant(syscalls(), process)
    t.preserve_fds = opts.preserve_fds
    _prepare(t, state, opts)
    console = _console(t, opts)
    try:
        pid = _spawn(t, state)
    except BaseException:
        if console is not None:
            console.discard()
        raise
    finally:
        for fd in [fd for _t, fd in t.ns_fds] + [t.console_fd, t.dmz_fd, t.root_fd]:
            if fd >= 0:
                os.close(fd)
    if opts.pid_file:
        with step("--pid-file: writing", opts.pid_file):
            st.write_pid_file(opts.pid_file, pid)
    if opts.detach:
        return 0
    reaper.forward_signals(pid)
    if console is not None:
        console.receive()
        console.pump_until_exit(pid)
    return reaper.wait_for(pid)


def process_for(state: st.State, opts: ExecOptions) -> Process:
    """--process FILE as is, or the container's process with the overrides."""
    if opts.process_file:
        from .. import _fastjson

        try:
            with open(opts.process_file, "rb") as f:
                doc = _fastjson.loads(f.read())
        except (OSError, _fastjson.JSONError) as exc:
            raise InclavareError(f"--process {opts.process_file}: {exc}") from None
        process = build(Process, doc, "process", opts.process_file)
        assert isinstance(process, Process)
        return process
    if not opts.args:
        raise InclavareError("rune exec: no command given (args or --process)")
    base = build(Process, state.config.get("process"), "process", "state.json")
    assert isinstance(base, Process)
    base.args = list(opts.args)
    base.terminal = opts.tty
    base.console_size = None
    base.env = base.env + opts.env
    if opts.cwd:
        base.cwd = opts.cwd
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        base.user.uid, base.user.gid = int(uid), int(gid or 0)
    if opts.extra_gids:
        base.user.additional_gids = list(opts.extra_gids)
    if opts.no_new_privs:
        base.no_new_privileges = True
    if opts.apparmor:
        base.apparmor_profile = opts.apparmor
    if opts.process_label:
        base.selinux_label = opts.process_label
    if opts.caps:
        _add_caps(base, opts.caps)
    return base


def _add_caps(process: Process, names: list[str]) -> None:
    for name in names:
        if name not in c.CAP_BITS:
            raise InclavareError(f"--cap: unknown capability {name!r}")
    caps = process.capabilities or Capabilities()
    for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        setattr(caps, kind, [*getattr(caps, kind), *(n for n in names if n not in getattr(caps, kind))])
    process.capabilities = caps


def _prepare(t: tenant.Tenant, state: st.State, opts: ExecOptions) -> None:
    linux = state.config.get("linux") or {}
    assert isinstance(linux, dict)
    try:
        for ns in linux.get("namespaces") or []:
            name = c.NAMESPACES[ns["type"]][1]
            t.ns_fds.append((ns["type"], os.open(f"/proc/{state.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
        if not any(ns["type"] == "mount" for ns in linux.get("namespaces") or []):
            t.root_fd = os.open(f"/proc/{state.pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        if not proc.is_alive(state.pid, state.start_time):
            raise InvalidTransition(state.id, st.STOPPED, "exec") from None
        raise located("joining the container's namespaces: opening", exc) from None
    if not proc.is_alive(state.pid, state.start_time):  # the fds might name a recycled pid's namespaces
        raise InvalidTransition(state.id, st.STOPPED, "exec")
    if linux.get("seccomp") is not None:
        from .. import seccomp

        t.seccomp = seccomp.compile_filter(linux["seccomp"])
    with step("sealing the exec trampoline", "memfd rune-dmz"):
        t.dmz_fd = dmz.sealed_fd()


def _console(t: tenant.Tenant, opts: ExecOptions) -> ForegroundConsole | None:
    if opts.console_socket:
        t.console_fd = terminal.connect(opts.console_socket)
        return None
    if not t.process.terminal:
        return None
    if opts.detach:
        raise InclavareError("cannot allocate a tty without --console-socket when detached (-t with -d)")
    from .console import ForegroundConsole

    console = ForegroundConsole()
    t.console_fd = terminal.connect(console.socket_path)
    return console


def _spawn(t: tenant.Tenant, state: st.State) -> int:
    from .._sys import default as syscalls

    syscalls().prctl(c.PR_SET_CHILD_SUBREAPER, 1)  # the exec'd process becomes our child
    warm.settle()  # fork single-threaded
    with step("forking the exec's intermediate process"):
        exec_r, exec_w = os.pipe()
        t.exec_fd = exec_w
        parent, child = Channel.pair()
        pid = os.fork()
    if pid == 0:
        parent.close()
        os.close(exec_r)
        tenant.run_intermediate(t, child)
    child.close()
    os.close(exec_w)
    try:
        cg = cgroups.from_state(state.cgroup)
        if cg is not None:
            cg.add(pid)
        parent.send(GO)
        payload = parent.expect(PID, early=(READY,))
        tenant_pid = int(payload["pid"]) if isinstance(payload, dict) else 0
        if tenant_pid <= 0:
            raise InclavareError(f"the exec's intermediate process sent a bad pid message: {payload!r}")
        os.waitpid(pid, 0)
        parent.expect(READY)
    except BaseException:
        reaper.kill_and_reap(pid)
        raise
    finally:
        parent.close()
    try:
        report = execerr.read_all(exec_r)  # EOF once the tenant has exec'd (its end is close-on-exec) or died
    finally:
        os.close(exec_r)
    failed = execerr.failure(report)
    if failed is not None:
        os.waitpid(tenant_pid, 0)  # it exits after reporting; our child (we are its subreaper)
        raise InclavareError(failed)
    return tenant_pid


def _exec_in_enclave(state: st.State, process: Process, opts: ExecOptions) -> int:
    """Through the init-runelet's agent: the program runs in the same enclave
    instance, as the container's entrypoint does (see runtime/agent_client.py)."""
    from ..enclave.agent import ExecRequest
    from . import enclave_setup
    from .agent_client import run_runelet

    _refuse_host_only_options(opts)
    env = [e for e in process.env if not e.startswith("ENCLAVE_")]
    req = ExecRequest(list(process.args), env, process.cwd, bool(process.terminal))
    stdio, master = (0, 1, 2), -1
    if process.terminal:
        master, slave = os.openpty()
        stdio = (slave, slave, slave)
        if opts.console_socket:
            sock_fd = terminal.connect(opts.console_socket)
            terminal.send_fd(sock_fd, master, b"/dev/ptmx")
            os.close(sock_fd)
            os.close(master)
            master = -1
        elif opts.detach:
            raise InclavareError("cannot allocate a tty without --console-socket when detached (-t with -d)")
    warm.settle()  # fork single-threaded
    pid = os.fork()
    if pid == 0:
        if master >= 0:
            os.close(master)
        os._exit(run_runelet(lambda: enclave_setup.connect(state), req, stdio))
    if process.terminal:
        os.close(stdio[0])
    if opts.pid_file:
        st.write_pid_file(opts.pid_file, pid)
    if opts.detach:
        return 0
    reaper.forward_signals(pid)
    if master >= 0:
        from .console import ForegroundConsole

        ForegroundConsole.for_master(master).pump_until_exit(pid)
    return reaper.wait_for(pid)


def _refuse_host_only_options(opts: ExecOptions) -> None:
    """The program runs inside the enclave the init-runelet holds, as that
    enclave's identity: a Linux user, capabilities or LSM label would not
    apply to it, and saying nothing would let a caller believe they did."""
    named = {"--user": opts.user, "--additional-gids": opts.extra_gids, "--cap": opts.caps,
             "--no-new-privs": opts.no_new_privs, "--apparmor": opts.apparmor,
             "--process-label": opts.process_label, "--preserve-fds": opts.preserve_fds}  # fmt: skip
    given = [flag for flag, value in named.items() if value]
    if given:
        raise InclavareError(f"rune exec: {', '.join(given)} cannot apply to a process run in an enclave")
