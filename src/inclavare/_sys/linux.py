"""Real Linux syscalls through ctypes (x86-64).

Each method raises :class:`inclavare.errors.SyscallError` naming the call and
its target, never a bare OSError, so the CLI can print one useful line.
Syscall numbers are x86-64 (arch/x86/entry/syscalls/syscall_64.tbl).
"""

from __future__ import annotations

import ctypes
import errno
import os

from ..errors import SyscallError
from . import consts as c

_SYS_PIVOT_ROOT = 155
_SYS_CAPGET = 125
_SYS_CAPSET = 126
_SYS_KEYCTL = 250
_SYS_SETNS = 308
_SYS_OPENAT2 = 437
_SYS_PERSONALITY = 135
_SYS_CLOSE_RANGE = 436
_CLOSE_RANGE_CLOEXEC = 1 << 2

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class _OpenHow(ctypes.Structure):
    # struct open_how, <linux/openat2.h>
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


class LinuxSyscalls:
    """The kernel, as rune needs it. One instance per process is enough."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._libc = libc
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._prctl = libc.prctl
        self._prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

    def _check(self, ret: int, op: str, detail: str = "") -> int:
        if ret < 0:
            raise SyscallError(op, ctypes.get_errno(), detail)
        return ret

    # -- mounts ----------------------------------------------------------
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        ret = self._libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
        self._check(ret, "mount", f"{source or fstype or 'none'} to {target}")

    def umount2(self, target: str, flags: int = 0) -> None:
        self._check(self._libc.umount2(_b(target), flags), "umount", target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        ret = self._syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old))
        self._check(ret, "pivot_root", new_root)

    def chroot(self, path: str) -> None:
        try:
            os.chroot(path)
        except OSError as exc:
            raise SyscallError("chroot", exc.errno or 0, path) from None

    def mount_id(self, fd: int) -> int:
        """The id of the mount `fd` is on (proc(5) /proc/pid/fdinfo ``mnt_id``)."""
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
        raise SyscallError("fdinfo", errno.ENOENT, f"no mnt_id for fd {fd}")

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
        ret = self._syscall(_SYS_OPENAT2, dirfd, _b(path), ctypes.byref(how), ctypes.sizeof(how))
        return self._check(ret, "openat2", path)

    # -- namespaces ------------------------------------------------------
    def unshare(self, flags: int) -> None:
        self._check(self._libc.unshare(flags), "unshare", hex(flags))

    def setns(self, fd: int, nstype: int, path: str = "") -> None:
        self._check(self._syscall(_SYS_SETNS, fd, nstype), "setns", path)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        self._check(self._libc.sethostname(raw, len(raw)), "sethostname", name)

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        self._check(self._libc.setdomainname(raw, len(raw)), "setdomainname", name)

    # -- process attributes ---------------------------------------------
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        return self._check(self._prctl(option, arg2, arg3, arg4, arg5), "prctl", str(option))

    def set_name(self, name: str) -> None:
        buf = ctypes.create_string_buffer(name.encode()[:15])
        self._check(self._prctl(c.PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0), "prctl(PR_SET_NAME)")

    def capget(self) -> tuple[int, int, int]:
        """(effective, permitted, inheritable) of this thread, 64-bit masks."""
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        self._check(self._syscall(_SYS_CAPGET, ctypes.byref(hdr), data), "capget")
        return tuple(getattr(data[0], f) | getattr(data[1], f) << 32 for f in ("effective", "permitted", "inheritable"))

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in (0, 1):
            shift = 32 * i
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        self._check(self._syscall(_SYS_CAPSET, ctypes.byref(hdr), data), "capset")

    def join_session_keyring(self, name: str | None) -> None:
        ret = self._syscall(_SYS_KEYCTL, c.KEYCTL_JOIN_SESSION_KEYRING, _b(name))
        self._check(ret, "keyctl(KEYCTL_JOIN_SESSION_KEYRING)", name or "")

    def personality(self, persona: int) -> None:
        self._check(self._syscall(_SYS_PERSONALITY, ctypes.c_ulong(persona)), "personality", hex(persona))

    def close_range_cloexec(self, first: int) -> None:
        """Mark every fd >= `first` close-on-exec (close_range(2), Linux 5.11)."""
        ret = self._syscall(_SYS_CLOSE_RANGE, ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF), _CLOSE_RANGE_CLOEXEC)
        self._check(ret, "close_range")
