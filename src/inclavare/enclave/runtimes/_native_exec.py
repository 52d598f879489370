"""How the native runtime starts a payload: sealed execute-only copies, a forked child, execve.

**Non-dumpable across execve.** execve(2) resets the dumpable flag to
SUID_DUMP_USER (1) — whatever prctl(PR_SET_DUMPABLE) said before — unless
the credentials change (setuid) or the binary is *not readable* by the
caller: fs/exec.c ``would_dump()`` sets ``BINPRM_FLAGS_ENFORCE_NONDUMP``
when ``inode_permission(MAY_READ)`` fails, and ``begin_new_exec()`` then
uses ``fs.suid_dumpable`` (0, or 2 on some distributions; either is "not
1"). A non-dumpable process's /proc/<pid>/{mem,environ,maps,...} belong to
root and ptrace_may_access() refuses everybody without CAP_SYS_PTRACE
(man 2 prctl, PR_SET_DUMPABLE; man 5 proc). So both files the child execs
are memfds sealed against change (F_SEAL_WRITE|SHRINK|GROW|SEAL, man 2
fcntl) with mode 0111 and owned by root (made in init / the constructor,
before the privileges drop): the payload's credentials may execute but not
read them. The payload's copy was hash-checked after it was copied, so
what runs is what was measured (no TOCTOU between check and exec). Root
has CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, which would make the read check
pass; the child clears those two from its *effective* set right before
execve: that suffices for would_dump, and execve recomputes the effective
set from the permitted/bounding sets anyway (man 7 capabilities,
"Transformation of capabilities during execve()"), so the payload keeps
exactly the capabilities it was given.

**/proc/self/exe.** During an execve, /proc/self/exe is still the
caller's executable — here the host's Python — and the kernel resolves
paths while it loads the program: an ELF interpreter (PT_INTERP) or a
script's ``#!`` line naming ``/proc/self/exe`` would load the host binary
(the CVE-2019-5736 class). Scripts are refused (an execute-only copy cannot
be read by an interpreter anyway). A *static* ELF names no path at all, so
it is exec'd straight from its copy (execve of ``/proc/self/fd/N``, N
close-on-exec, or fexecve). A *dynamic* ELF goes through the rune-dmz
trampoline (:mod:`inclavare._sys.dmz`, here an execute-only copy of its
image), which then execs ``/proc/self/fd/N``: during that execve
/proc/self/exe is the trampoline's memfd. N stays open in a dynamic
payload (an O_PATH descriptor: nothing can be read or written through it).
The price: a root payload regains CAP_DAC_OVERRIDE when the trampoline
starts, so the trampoline's execve of the payload can read it and a
*dynamic root* payload ends up dumpable; static payloads and non-root
payloads are non-dumpable.

**Sandbox.** In the child, in this order: stdio onto 0-2, every other fd
close-on-exec, RLIMIT_AS (man 2 getrlimit), PR_SET_NO_NEW_PRIVS, the
capability change above, the seccomp filter (compiled before pivot_root,
loaded with one syscall), default signal dispositions and an empty signal
mask, execve. A failure before execve reaches ``create_process`` through a
close-on-exec pipe.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import struct

from ... import _sys
from ..._sys import consts as c
from ..._sys import dmz
from ...errors import InclavareError
from ...seccomp import Filter, compile_filter
from ..errors import EnclaveError, EnclaveUnavailable

MFD_EXEC = 0x0010  # include/uapi/linux/memfd.h (Linux 6.3): this memfd may be executed
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_DAC = (1 << c.CAP_BITS["CAP_DAC_OVERRIDE"]) | (1 << c.CAP_BITS["CAP_DAC_READ_SEARCH"])
_EPERM = errno.EPERM

# What no enclave payload may do to itself or its neighbours (an OCI
# linux.seccomp section, so runtime.seccomp compiles it). Reading or writing
# another process's memory, attaching to it, fetching its fds, comparing
# its kernel objects, loading code into the kernel, raw I/O ports, and
# undoing non-dumpable (prctl(PR_SET_DUMPABLE, ...)).
_DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
    "perf_event_open", "bpf", "userfaultfd", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "iopl", "ioperm",
)  # fmt: skip
SANDBOX = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": list(_DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": _EPERM},
        {
            "names": ["prctl"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": _EPERM,
            "args": [{"index": 0, "value": c.PR_SET_DUMPABLE, "op": "SCMP_CMP_EQ"}],
        },
    ],
}


def sandbox_filter() -> Filter:
    try:
        return compile_filter(SANDBOX)
    except InclavareError as exc:
        raise EnclaveUnavailable(f"enclave runtime native: cannot build the sandbox filter: {exc}") from None


def sealed_exec_only(name: str, data: bytes) -> int:
    """A close-on-exec memfd holding `data`, sealed, mode 0111 (owner: the caller)."""
    try:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | MFD_EXEC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: a kernel before 6.3, which has no MFD_EXEC
            raise EnclaveError(f"enclave runtime native: memfd_create: {exc.strerror}") from None
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, 0o111)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def trampoline_fd() -> int:
    if os.uname().machine != "x86_64":
        raise EnclaveUnavailable(f"enclave runtime native: rune-dmz is x86-64 code; this host is {os.uname().machine}")
    return sealed_exec_only("rune-dmz", dmz.elf_image())


def elf_interpreter(data: bytes) -> bytes | None:
    """PT_INTERP of an x86-64 ELF executable (None: static); EnclaveError if it is not one.

    ELF-64 Object File Format (System V ABI): e_ident[EI_CLASS] = 2 (64-bit),
    [EI_DATA] = 1 (little endian), e_type 2 (EXEC) or 3 (DYN), e_machine 62
    (EM_X86_64); program headers of e_phentsize bytes at e_phoff, p_type 3
    (PT_INTERP) holds the interpreter path, NUL-terminated.
    """
    if data[:4] != b"\x7fELF" or len(data) < 64 or data[4] != 2 or data[5] != 1:
        raise EnclaveError("not a 64-bit little-endian ELF executable")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    (e_phoff,) = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    if e_machine != 62 or e_type not in (2, 3):
        raise EnclaveError("not an x86-64 ELF executable")
    for i in range(e_phnum):
        at = e_phoff + i * e_phentsize
        if at + 56 > len(data):
            raise EnclaveError("truncated ELF program headers")
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, at)
        if p_type == 3:
            return data[p_offset : p_offset + p_filesz].rstrip(b"\0")
    return None


class Child:
    """Everything the forked child needs, prepared before fork (the child only makes syscalls)."""

    __slots__ = ("argv", "env", "exec_fd", "filter", "inherit", "memory", "stdio")

    def __init__(self, dmz_fd: int | None, exec_fd: int, argv: list[str], env: list[str],
                 stdio: tuple[int, int, int], memory: int, sandbox: Filter) -> None:  # fmt: skip
        if dmz_fd is None:  # static: straight from the sealed copy
            self.exec_fd, self.argv, self.inherit = exec_fd, argv, -1
        else:  # dynamic: through the trampoline, which execs /proc/self/fd/<exec_fd>
            self.exec_fd, self.argv, self.inherit = dmz_fd, dmz.argv_for(f"/proc/self/fd/{exec_fd}", argv), exec_fd
        self.env = dict(entry.split("=", 1) for entry in env)  # later entries win, as in the OCI env
        self.stdio = stdio
        self.memory = memory
        self.filter = sandbox


def spawn(child: Child) -> tuple[int, int]:
    """Fork and exec the payload; (pid, pidfd) once it runs, or the child's error."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    # All signals blocked across fork: a signal the child receives before its
    # handlers are reset must not run the init-runelet's handler in it.
    old = signal.pthread_sigmask(signal.SIG_SETMASK, signal.valid_signals())
    try:
        pid = os.fork()
        if pid == 0:
            _child(child, err_w)  # never returns
        pidfd = os.pidfd_open(pid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(err_w)
    try:
        error = _read_all(err_r)
    finally:
        os.close(err_r)
    if error:
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)
        raise EnclaveError(f"enclave runtime native: {error.decode(errors='replace')}")
    return pid, pidfd


def _child(child: Child, err_w: int) -> None:
    step = "start"
    try:
        step = "signals"
        signal.set_wakeup_fd(-1)
        for signum in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
            try:
                signal.signal(signum, signal.SIG_DFL)  # Python ignores SIGPIPE and SIGXFSZ: not for the payload
            except (OSError, ValueError):
                pass  # a real-time signal reserved by glibc's threads
        step = "stdio"
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in child.stdio]  # survive the dup2s below
        for number, fd in enumerate(high):
            os.dup2(fd, number, inheritable=True)
        sc = _sys.default()
        sc.close_range_cloexec(3)
        if child.inherit >= 0:
            os.set_inheritable(child.inherit, True)  # the trampoline execs /proc/self/fd/<inherit>
        step = "RLIMIT_AS"
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = child.memory if hard == resource.RLIM_INFINITY else min(child.memory, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        step = "no_new_privs"
        sc.prctl(c.PR_SET_NO_NEW_PRIVS, 1)
        step = "capabilities"
        effective, permitted, inheritable = sc.capget()
        sc.capset(effective & ~_DAC, permitted, inheritable)
        step = "seccomp"
        child.filter.load()
        step = "exec"
        via_proc = f"/proc/self/fd/{child.exec_fd}"  # plain execve, which every seccomp profile allows
        target: str | int = via_proc if os.path.exists(via_proc) else child.exec_fd
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.execve(target, child.argv, child.env)
    except BaseException as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        try:
            os.write(err_w, f"starting the payload: {step}: {reason}".encode())
        finally:
            os._exit(127)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)
