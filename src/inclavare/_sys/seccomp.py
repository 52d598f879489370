"""libseccomp.so.2 and seccomp(2) through ctypes (x86-64).

libseccomp turns rules into a classic-BPF program; rune exports that program
in `rune create` (before fork, host filesystem visible) and the container's
init installs it with a single seccomp(2) call right before execve. So init
needs neither the library nor any memory allocation to load the filter, and
the filter never has to allow anything but execve itself.

seccomp_load() is deliberately not used: it would generate the program in
init, set no_new_privs unless SCMP_FLTATR_CTL_NNP were cleared (rune leaves
no_new_privs to process.noNewPrivileges alone, as runc does), and free the
program after the filter is already active.

Constants cite their header: <seccomp.h> of libseccomp 2.5.4 (Debian 12's
libseccomp-dev) and the kernel's <linux/seccomp.h>, <linux/filter.h>.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from ..errors import InclavareError, SyscallError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

LIBRARY = "libseccomp.so.2"
# Debian's multiarch path, tried when the dynamic loader's cache does not know the soname.
LIBRARY_PATH = "/lib/x86_64-linux-gnu/libseccomp.so.2"
MIN_VERSION = (2, 5, 0)  # the oldest release rune is tested with (Debian 12 ships 2.5.4)

# <seccomp.h> "SECCOMP ACTIONS"
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_KILL = SCMP_ACT_KILL_THREAD
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000  # SCMP_ACT_ERRNO(x) = 0x00050000U | ((x) & 0x0000ffffU)
_SCMP_ACT_TRACE = 0x7FF00000  # SCMP_ACT_TRACE(x) = 0x7ff00000U | ((x) & 0x0000ffffU)


def scmp_act_errno(code: int) -> int:
    return _SCMP_ACT_ERRNO | (code & 0xFFFF)


def scmp_act_trace(msg: int) -> int:
    return _SCMP_ACT_TRACE | (msg & 0xFFFF)


# <seccomp.h> enum scmp_compare
SCMP_CMP_NE = 1
SCMP_CMP_LT = 2
SCMP_CMP_LE = 3
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7

# <seccomp.h>: what seccomp_syscall_resolve_name() returns for a name it does not know.
NR_SCMP_ERROR = -1

# <linux/seccomp.h>
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5
# <linux/bpf_common.h> BPF_MAXINSNS: the kernel refuses longer programs (EINVAL).
BPF_MAXINSNS = 4096
SOCK_FILTER_SIZE = 8  # struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }

_SYS_SECCOMP = 317  # arch/x86/entry/syscalls/syscall_64.tbl


class ArgCmp(ctypes.Structure):
    # <seccomp.h> struct scmp_arg_cmp
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    # <seccomp.h> struct scmp_version
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    # <linux/filter.h> struct sock_fprog
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_ctx = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "seccomp_version": (ctypes.POINTER(_Version), []),
    "seccomp_init": (_ctx, [ctypes.c_uint32]),
    "seccomp_release": (None, [_ctx]),
    "seccomp_arch_native": (ctypes.c_uint32, []),
    "seccomp_arch_resolve_name": (ctypes.c_uint32, [ctypes.c_char_p]),
    "seccomp_arch_add": (ctypes.c_int, [_ctx, ctypes.c_uint32]),
    "seccomp_syscall_resolve_name": (ctypes.c_int, [ctypes.c_char_p]),
    "seccomp_rule_add_array": (
        ctypes.c_int,
        [_ctx, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ArgCmp)],
    ),
    "seccomp_export_bpf": (ctypes.c_int, [_ctx, ctypes.c_int]),
    "seccomp_export_pfc": (ctypes.c_int, [_ctx, ctypes.c_int]),
}


class Library:
    """The loaded libseccomp with typed entry points (one per process, see :func:`library`)."""

    def __init__(self) -> None:
        try:
            lib = ctypes.CDLL(LIBRARY)
        except OSError:
            try:
                lib = ctypes.CDLL(LIBRARY_PATH)
            except OSError as exc:
                raise InclavareError(
                    f"linux.seccomp needs {LIBRARY}, which cannot be loaded here ({exc}); "
                    "install it (Debian: apt-get install libseccomp2)"
                ) from None
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        self.lib = lib
        v = lib.seccomp_version().contents
        self.version = (v.major, v.minor, v.micro)
        if self.version < MIN_VERSION:
            raise InclavareError(
                f"linux.seccomp needs libseccomp >= {'.'.join(map(str, MIN_VERSION))}, "
                f"this host has {'.'.join(map(str, self.version))}"
            )

    def arch_native(self) -> int:
        return int(self.lib.seccomp_arch_native())

    def arch_resolve(self, name: str) -> int:
        """The SCMP_ARCH_* token for libseccomp's arch name ("x86_64"), 0 if unknown."""
        return int(self.lib.seccomp_arch_resolve_name(name.encode()))

    def syscall_number(self, name: str) -> int:
        """Native number, a negative pseudo number for other arches' syscalls, or NR_SCMP_ERROR."""
        return int(self.lib.seccomp_syscall_resolve_name(name.encode()))


_library: Library | None = None


def library() -> Library:
    global _library
    if _library is None:
        _library = Library()
    return _library


def _check(rc: int, op: str, detail: str = "") -> None:
    # libseccomp returns -errno (seccomp_init(3), "RETURN VALUE").
    if rc < 0:
        raise SyscallError(op, -rc, detail)


class Context:
    """A libseccomp filter context (scmp_filter_ctx); call :meth:`release`."""

    def __init__(self, lib: Library, default_action: int) -> None:
        self._lib = lib.lib
        self._ctx = self._lib.seccomp_init(default_action)
        if not self._ctx:
            raise SyscallError("seccomp_init", errno.EINVAL, hex(default_action))  # the only documented failure

    def release(self) -> None:
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def arch_add(self, token: int) -> bool:
        """Add an architecture; False when it was already there (the native one always is)."""
        rc = self._lib.seccomp_arch_add(self._ctx, token)
        if rc == -errno.EEXIST:
            return False
        _check(rc, "seccomp_arch_add", hex(token))
        return True

    def rule_add(self, action: int, syscall: int, conditions: list[tuple[int, int, int, int]]) -> None:
        """Add a rule; `conditions` are (arg index, SCMP_CMP_*, datum_a, datum_b), all must hold."""
        array = (ArgCmp * max(1, len(conditions)))(*(ArgCmp(*cond) for cond in conditions))
        rc = self._lib.seccomp_rule_add_array(self._ctx, action, syscall, len(conditions), array)
        _check(rc, "seccomp_rule_add", str(syscall))

    def export_bpf(self) -> bytes:
        """The filter as an array of struct sock_filter, as seccomp(2) takes it."""
        return self._export(self._lib.seccomp_export_bpf, "seccomp_export_bpf")

    def export_pfc(self) -> str:
        """The filter in libseccomp's human-readable pseudo filter code."""
        return self._export(self._lib.seccomp_export_pfc, "seccomp_export_pfc").decode()

    def _export(self, fn: Callable[[object, int], int], op: str) -> bytes:
        # A memfd, not a pipe: a large filter would fill a pipe nobody reads yet.
        fd = os.memfd_create("rune-seccomp", os.MFD_CLOEXEC)
        try:
            _check(fn(self._ctx, fd), op)
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _seccomp(op: int, flags: int, arg: object) -> int:
    ret = _syscall(ctypes.c_long(_SYS_SECCOMP), ctypes.c_uint(op), ctypes.c_uint(flags), arg)
    return int(ret) if ret >= 0 else -ctypes.get_errno()


def flag_supported(flags: int) -> bool:
    """Does the kernel know these SECCOMP_FILTER_FLAG_* bits?

    Unknown flags fail with EINVAL before the program pointer is read, known
    ones with EFAULT on the NULL program (libseccomp probes the same way).
    """
    return _seccomp(SECCOMP_SET_MODE_FILTER, flags, None) == -errno.EFAULT


def action_available(action: int) -> bool:
    """SECCOMP_GET_ACTION_AVAIL (seccomp(2)): can the kernel take this action?"""
    value = ctypes.c_uint32(action & 0xFFFF0000)
    return _seccomp(SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(value)) == 0


class Program:
    """A BPF program ready for seccomp(SECCOMP_SET_MODE_FILTER).

    Everything load() touches is allocated here, so that the load itself is
    one system call in a process that may already have lost the host's files.
    """

    __slots__ = ("_buffer", "_fprog", "flags")

    def __init__(self, code: bytes, flags: int) -> None:
        count = len(code) // SOCK_FILTER_SIZE
        if count * SOCK_FILTER_SIZE != len(code) or not 0 < count <= BPF_MAXINSNS:
            raise InclavareError(f"seccomp filter of {count} instructions: the kernel takes 1 to {BPF_MAXINSNS}")
        self._buffer = ctypes.create_string_buffer(code, len(code))
        self._fprog = _SockFprog(count, ctypes.addressof(self._buffer))
        self.flags = flags

    def code(self) -> bytes:
        return self._buffer.raw

    def load(self) -> None:
        """Install the filter on the calling thread (and all threads with TSYNC)."""
        ret = _seccomp(SECCOMP_SET_MODE_FILTER, self.flags, ctypes.byref(self._fprog))
        if ret < 0:
            raise SyscallError("seccomp(SECCOMP_SET_MODE_FILTER)", -ret)
        if ret > 0:  # TSYNC: the id of a thread that could not be synchronised
            raise InclavareError(f"seccomp(SECCOMP_SET_MODE_FILTER): thread {ret} could not be synchronised")


# <linux/audit.h> AUDIT_ARCH_X86_64: seccomp_data.arch of a native system call.
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ACTION_FULL = 0xFFFF0000  # <linux/seccomp.h>
_U32 = 0xFFFFFFFF


def evaluate(code: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64) -> int | None:
    """The action a classic-BPF seccomp program returns for one system call.

    A small interpreter of <linux/filter.h> (the instruction classes libseccomp
    emits and a few more) over a ``struct seccomp_data`` {nr, arch, ip, args[6]};
    None for anything it does not know, so callers can stay on the safe side.
    """
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("<HBBI", code, i) for i in range(0, len(code), SOCK_FILTER_SIZE)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while 0 <= pc < len(insns):
        op, jt, jf, k = insns[pc]
        pc += 1
        cls, operand = op & 0x07, (x if op & 0x08 else k)
        if op == 0x20 and k + 4 <= len(data):  # BPF_LD|BPF_W|BPF_ABS
            a = struct.unpack_from("<I", data, k)[0]
        elif op in (0x00, 0x01):  # BPF_LD|BPF_IMM, BPF_LDX|BPF_IMM
            a, x = (k, x) if op == 0x00 else (a, k)
        elif op in (0x60, 0x61) and k < 16:  # BPF_LD|BPF_MEM, BPF_LDX|BPF_MEM
            a, x = (mem[k], x) if op == 0x60 else (a, mem[k])
        elif op in (0x02, 0x03) and k < 16:  # BPF_ST, BPF_STX
            mem[k] = a if op == 0x02 else x
        elif cls == 0x04 and (op & 0xF0) in _ALU:  # BPF_ALU
            a = _ALU[op & 0xF0](a, operand) & _U32
        elif op == 0x05:  # BPF_JMP|BPF_JA
            pc += k
        elif cls == 0x05 and (op & 0xF0) in _JUMPS:  # BPF_JMP conditional
            pc += jt if _JUMPS[op & 0xF0](a, operand) else jf
        elif op in (0x06, 0x16):  # BPF_RET|BPF_K, BPF_RET|BPF_A
            return k if op == 0x06 else a
        elif op in (0x07, 0x87):  # BPF_MISC|BPF_TAX, BPF_MISC|BPF_TXA
            x, a = (a, a) if op == 0x07 else (x, x)
        else:
            return None
    return None


_ALU: dict[int, Callable[[int, int], int]] = {
    0x00: lambda a, b: a + b,  # BPF_ADD
    0x10: lambda a, b: a - b,  # BPF_SUB
    0x20: lambda a, b: a * b,  # BPF_MUL
    0x40: lambda a, b: a | b,  # BPF_OR
    0x50: lambda a, b: a & b,  # BPF_AND
    0x60: lambda a, b: a << (b & 31),  # BPF_LSH
    0x70: lambda a, b: a >> (b & 31),  # BPF_RSH
    0xA0: lambda a, b: a ^ b,  # BPF_XOR
}
_JUMPS: dict[int, Callable[[int, int], bool]] = {
    0x10: lambda a, b: a == b,  # BPF_JEQ
    0x20: lambda a, b: a > b,  # BPF_JGT
    0x30: lambda a, b: a >= b,  # BPF_JGE
    0x40: lambda a, b: bool(a & b),  # BPF_JSET
}


def allows(code: bytes, nr: int, args: tuple[int, ...]) -> bool:
    """Whether the program lets the call through (SECCOMP_RET_ALLOW or _LOG)."""
    action = evaluate(code, nr, args)
    return action is not None and action & SECCOMP_RET_ACTION_FULL in (SCMP_ACT_ALLOW, SCMP_ACT_LOG)
