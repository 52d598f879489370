"""The last stretch in init: identity, the start handshake and execve.

Everything that can fail is done in :func:`prepare`, before init reports
``ready`` — a missing executable or cwd fails `rune create`, as with runc,
rather than a `start` that already returned success.
"""

from __future__ import annotations

import _signal
import errno
import os
import stat

from ..._sys import consts as c
from ..._sys import dmz, inroot
from ...errors import InclavareError, SyscallError
from .. import lsm, privileges
from ..state import FIFO
from . import execerr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ..._sys import Syscalls
    from ...seccomp import Filter
    from ...spec.model import Process
    from ..plan import LaunchPlan
    from .executor import Executor
    from .launch import LaunchFds

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Exec:
    """The program to run: resolved path, argv, environment and LSM labels."""

    __slots__ = ("apparmor", "argv", "env", "path", "selinux")

    def __init__(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        self.path = path
        self.argv = argv
        self.env = env
        self.apparmor: str | None = None
        self.selinux: str | None = None


def environment(entries: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def prepare(sc: Syscalls, plan: LaunchPlan, executor: Executor) -> Exec:
    return prepare_process(sc, plan.process, executor.program_in_rootfs, plan.seccomp is not None)


def prepare_process(sc: Syscalls, proc: Process, resolve: bool = True, seccomp: bool = False) -> Exec:
    """Become who `proc` says and go where it says; return what to exec.

    `resolve`: the program must be found in $PATH (for enclave runtimes it is
    looked up too, but kept as written when not found: it may live inside the
    enclave image rather than the rootfs; docs/pal-abi.md, "Calls").
    `seccomp`: a filter will be loaded just before execve; without
    no_new_privs that needs CAP_SYS_ADMIN until then (see privileges.py).
    """
    env = environment(proc.env)
    if "HOME" not in env:
        env["HOME"] = _home_of(proc.user.uid)
    privileges.apply_rlimits(proc)
    if proc.no_new_privileges:
        sc.prctl(c.PR_SET_NO_NEW_PRIVS, 1)
    keep = privileges.cap_mask(["CAP_SYS_ADMIN"]) if seccomp and not proc.no_new_privileges else 0
    privileges.apply_capabilities(sc, proc, keep)
    if proc.user.umask is not None:
        os.umask(proc.user.umask)
    _chdir(sc, proc.cwd)
    try:
        path = lookup(proc.args[0], env.get("PATH", DEFAULT_PATH))
    except InclavareError:
        if resolve:
            raise
        path = proc.args[0]  # as the original rune: the program may live in the enclave image only
    prog = Exec(path, list(proc.args), env)
    prog.apparmor, prog.selinux = proc.apparmor_profile, proc.selinux_label
    return prog


def _home_of(uid: int) -> str:
    """HOME from the container's /etc/passwd, "/" if it has no entry (runc does the same)."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def _chdir(sc: Syscalls, cwd: str) -> None:
    """chdir(process.cwd) without leaving the container.

    CVE-2024-21626: runc leaked a host directory fd into init and a cwd of
    /proc/self/fd/N walked out through it. Resolving with RESOLVE_IN_ROOT
    refuses magic links and keeps ".." and symlinks inside the root; the cwd
    is created when missing, as runc does.
    """
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = inroot.open_in_root(sc, root, cwd, os.O_PATH | os.O_DIRECTORY)
        except SyscallError as exc:
            if exc.errno != errno.ENOENT:
                raise InclavareError(f"process.cwd {cwd}: {os.strerror(exc.errno)}") from None
            try:
                fd = inroot.mkdir_all(sc, root, cwd)
            except SyscallError as err:
                raise InclavareError(f"process.cwd {cwd}: cannot create it: {os.strerror(err.errno)}") from None
            except OSError as err:
                raise InclavareError(f"process.cwd {cwd}: cannot create it: {err.strerror}") from None
        try:
            os.fchdir(fd)
        finally:
            os.close(fd)
    finally:
        os.close(root)


def lookup(name: str, search: str) -> str:
    """Find `name` like execvp(3): a name with "/" is taken as is.

    As runc's exec.LookPath before its exec fifo wait, so that these fail
    `create` rather than a start that already succeeded: the file must exist
    and be executable to us — faccessat(2) X_OK with AT_EACCESS, which also
    catches a noexec mount (runc's eaccess). Errors read as Go's exec.Error.
    """
    if "/" in name:
        _check_executable(name)
        return name
    for d in search.split(":"):
        candidate = os.path.join(d or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK, effective_ids=True):
            return candidate
    raise InclavareError(f'exec: "{name}": executable file not found in $PATH')


def _check_executable(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InclavareError(f'exec: "{path}": {execerr.strerror(exc.errno or 2)}') from None
    if stat.S_ISDIR(st.st_mode) or not os.access(path, os.X_OK, effective_ids=True):
        raise InclavareError(f'exec: "{path}": permission denied')


def wait_for_start(fds: LaunchFds) -> None:
    """Block until `rune start` opens exec.fifo for reading, then signal it.

    The fifo fd stays open (close-on-exec) until execve: `rune start` reads
    until EOF and so returns only once the container process runs.
    """
    try:
        fd = os.open(FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=fds.state_dir_fd)
        os.close(fds.state_dir_fd)
        fds.state_dir_fd = -1
        os.write(fd, b"0")
        fds.fifo_fd = fd  # closed by execve, or by an enclave executor once the entrypoint runs
    except OSError as exc:
        os.write(2, f"rune init: exec.fifo: {exc.strerror}\n".encode())
        os._exit(1)


def final_exec(sc: Syscalls, dmz_fd: int, preserve_fds: int, seccomp: Filter | None, prog: Exec,
               report_fd: int) -> NoReturn:  # fmt: skip
    """The last steps before the container process runs; never returns.

    1. CVE-2024-21626 class: no fd but stdio and --preserve-fds crosses execve
       (the report fd only into the trampoline, which closes it on exec);
    2. the seccomp filter, last, so that it only has to allow execve itself
       (everything else, the exec target included, is decided before) — and
       the trampoline's prctl and fcntl if it is to report (see execerr.py);
    3. execve through the sealed trampoline (see _sys/dmz.py for why): via
       /proc/self/fd when the container has /proc (plain execve, which every
       seccomp profile allows), else fexecve (execveat).

    Failures go to `report_fd` (exec.fifo or exec's pipe), which `rune start`
    or `rune exec` reads: they fail with the reason, as runc does.
    """
    via_proc = f"/proc/self/fd/{dmz_fd}"
    target: str | int = via_proc if os.path.exists(via_proc) else dmz_fd
    handed = execerr.trampoline_can_report(seccomp, report_fd)
    argv = dmz.argv_for(prog.path, prog.argv, report_fd if handed else -1)
    sc.close_range_cloexec(3 + preserve_fds)
    try:
        execerr.announce(report_fd, prog.path)
        os.set_inheritable(report_fd, handed)
    except OSError:
        argv = dmz.argv_for(prog.path, prog.argv)  # the reader is gone: nobody to tell
    # A host process ignores SIGPIPE and SIGXFSZ (CPython's start-up does); an
    # ignored signal stays ignored across execve (signal(7)): the container
    # process gets the default dispositions, as under runc.
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
    try:
        # After every hook ran: a pending exec label is inherited by forks.
        lsm.apply_exec_labels(prog.apparmor, prog.selinux)
        if seccomp is not None:
            seccomp.load()
    except InclavareError as exc:
        if not execerr.tell(report_fd, str(exc)):
            os.write(2, f"rune: {exc}\n".encode())
        os._exit(1)
    try:
        os.execve(target, argv, prog.env)
    except OSError as exc:
        if not execerr.tell_errno(report_fd, exc.errno or 0):
            os.write(2, f"rune: exec {prog.path}: {execerr.strerror(exc.errno or 0)}\n".encode())
    os._exit(127)
