"""The Enclave Runtime PAL ABI (v1-v3) in ctypes: structs, dlopen, calls.

This module is mechanism only: it mirrors the C header (docs/pal-abi.md;
tests/fixtures/pal/pal.h) field by field, loads a PAL with
``dlopen(path, RTLD_NOW)``, binds each entry point with explicit
``argtypes``/``restype`` and marshals Python values into the C calls. It
returns the PAL's raw return codes; deciding what they mean (version
negotiation, error messages) is :mod:`inclavare.enclave.pal`'s job.

Ref: docs/pal-abi.md, "Structs". Every struct uses natural alignment, as
rune's cgo caller and the skeleton PAL do; the *packed* declarations in
spec_v2.md are not what runs (``pal_exec_args.exit_value`` is at offset 8,
not 4).

Lifetimes: ctypes keeps a Python object alive only while it is referenced.
Every buffer a call hands to C (strings, argv/env arrays, stdio, out-params)
is a local of the method making the call, so it outlives the call.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Sequence
from typing import Any

TARGETINFO_SIZE = 512  # sizeof(sgx_target_info_t), SDM Vol. 3D 38.17
REPORT_SIZE = 432  # sizeof(sgx_report_t): 384-byte body + 32-byte key id + 16-byte MAC

_int_p = ctypes.POINTER(ctypes.c_int)
_char_pp = ctypes.POINTER(ctypes.c_char_p)


# The C names, so a grep for a struct finds both the header and its mirror.
class pal_attr_v1_t(ctypes.Structure):
    """v1/v2 ``pal_init`` attribute (16 bytes)."""

    _fields_ = [("args", ctypes.c_char_p), ("log_level", ctypes.c_char_p)]


class pal_attr_v3_t(ctypes.Structure):
    """v3 ``pal_init`` attribute: args@0 log_level@8 fd@16 (4 pad) addr@24, 32 bytes."""

    _fields_ = [("attr_v1", pal_attr_v1_t), ("fd", ctypes.c_int), ("addr", ctypes.c_uint64)]


class pal_stdio_fds(ctypes.Structure):
    """The program's stdin/stdout/stderr as fd numbers of the caller (12 bytes)."""

    _fields_ = [("stdin", ctypes.c_int), ("stdout", ctypes.c_int), ("stderr", ctypes.c_int)]


class pal_create_process_args(ctypes.Structure):
    """v2/v3 ``pal_create_process`` argument (five pointers, 40 bytes)."""

    _fields_ = [
        ("path", ctypes.c_char_p),
        ("argv", _char_pp),  # NULL-terminated, includes argv[0]
        ("env", _char_pp),  # NULL-terminated KEY=VALUE strings
        ("stdio", ctypes.POINTER(pal_stdio_fds)),
        ("pid", _int_p),  # out
    ]


class pal_exec_args(ctypes.Structure):
    """v2/v3 ``pal_exec`` argument: pid@0, exit_value@8 (natural alignment), 16 bytes."""

    _fields_ = [("pid", ctypes.c_int), ("exit_value", _int_p)]


# Symbol -> (restype, argtypes) per ABI version; pal_init and pal_exec change
# their signature between versions (docs/pal-abi.md, "Symbols" and "Calls").
Signature = tuple[Any, list[Any]]  # (restype, argtypes)
_COMMON: dict[str, Signature] = {
    "pal_get_version": (ctypes.c_int, []),
    "pal_destroy": (ctypes.c_int, []),
}
_V1: dict[str, Signature] = {
    "pal_init": (ctypes.c_int, [ctypes.POINTER(pal_attr_v1_t)]),
    "pal_exec": (ctypes.c_int, [ctypes.c_char_p, _char_pp, ctypes.POINTER(pal_stdio_fds), _int_p]),
}
_V2: dict[str, Signature] = {
    "pal_init": (ctypes.c_int, [ctypes.POINTER(pal_attr_v1_t)]),
    "pal_create_process": (ctypes.c_int, [ctypes.POINTER(pal_create_process_args)]),
    "pal_exec": (ctypes.c_int, [ctypes.POINTER(pal_exec_args)]),
    "pal_kill": (ctypes.c_int, [ctypes.c_int, ctypes.c_int]),
}
_V3: dict[str, Signature] = {
    **_V2,
    "pal_init": (ctypes.c_int, [ctypes.POINTER(pal_attr_v3_t)]),
    "pal_get_local_report": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, _int_p]),
}
SIGNATURES: dict[int, dict[str, Signature]] = {
    1: {**_COMMON, **_V1},
    2: {**_COMMON, **_V2},
    3: {**_COMMON, **_V3},
}


def errno_text(ret: int) -> str:
    """``-22 (Invalid argument)``: a PAL return code as rune prints it.

    PALs return ``-errno`` (docs/pal-abi.md, "Calls"); a value that is no
    errno is said to be one rather than shown as "Unknown error".
    """
    code = -ret
    if code in errno.errorcode:
        return f"{ret} ({os.strerror(code)})"
    return f"{ret} (not an errno value)"


def _strings(items: Sequence[str]) -> ctypes.Array[ctypes.c_char_p]:
    """A NULL-terminated ``char *[]`` (the array keeps its bytes objects alive)."""
    return (ctypes.c_char_p * (len(items) + 1))(*[os.fsencode(s) for s in items], None)


class PalLibrary:
    """One dlopen()ed PAL and its bound entry points; no process-wide state.

    Two libraries (or two versions) can be open at the same time. The same
    *file* opened twice shares the C library's globals, as dlopen(3) returns
    the same handle; that is the PAL's business, not ours.
    """

    def __init__(self, path: str) -> None:
        """dlopen(path, RTLD_NOW); OSError with dlerror()'s text on failure.

        RTLD_NOW, as rune does (docs/pal-abi.md, "Loading, threads and
        signals"): an unresolved symbol fails
        here, at create time, not in the middle of a running container.
        """
        self.path = path
        self._lib = ctypes.CDLL(path, mode=os.RTLD_NOW)
        self._fns: dict[str, Callable[..., int]] = {}

    def has(self, symbol: str) -> bool:
        try:
            self._lib[symbol]
        except AttributeError:
            return False
        return True

    def bind(self, version: int) -> None:
        """Bind the exported symbols of ABI `version` with their C signatures.

        ``CDLL.__getitem__`` returns a fresh function object per call, so the
        argtypes set here are private to this library object.
        """
        for name, (restype, argtypes) in SIGNATURES[version].items():
            if self.has(name):
                fn = self._lib[name]
                fn.restype = restype
                fn.argtypes = argtypes
                self._fns[name] = fn

    def bound(self, symbol: str) -> bool:
        return symbol in self._fns

    def get_version(self) -> int:
        fn = self._lib["pal_get_version"]
        fn.restype, fn.argtypes = ctypes.c_int, []
        return int(fn())

    def init_v1(self, args: str, log_level: str) -> int:
        attr = pal_attr_v1_t(os.fsencode(args), log_level.encode())
        return int(self._fns["pal_init"](ctypes.byref(attr)))

    def init_v3(self, args: str, log_level: str, fd: int, addr: int) -> int:
        attr = pal_attr_v3_t(pal_attr_v1_t(os.fsencode(args), log_level.encode()), fd, addr)
        return int(self._fns["pal_init"](ctypes.byref(attr)))

    def exec_v1(self, path: str, argv: Sequence[str], stdio: tuple[int, int, int]) -> tuple[int, int]:
        """v1 ``pal_exec``: runs the program to its end; (ret, exit code)."""
        c_argv = _strings(argv)
        fds = pal_stdio_fds(*stdio)
        code = ctypes.c_int(0)
        ret = self._fns["pal_exec"](os.fsencode(path), c_argv, ctypes.byref(fds), ctypes.byref(code))
        return int(ret), code.value

    def create_process(
        self, path: str, argv: Sequence[str], env: Sequence[str], stdio: tuple[int, int, int]
    ) -> tuple[int, int]:
        """v2/v3 ``pal_create_process``; (ret, pid)."""
        c_path = os.fsencode(path)
        c_argv, c_env = _strings(argv), _strings(env)
        fds = pal_stdio_fds(*stdio)
        pid = ctypes.c_int(0)
        args = pal_create_process_args(c_path, c_argv, c_env, ctypes.pointer(fds), ctypes.pointer(pid))
        ret = self._fns["pal_create_process"](ctypes.byref(args))
        return int(ret), pid.value

    def exec(self, pid: int) -> tuple[int, int]:
        """v2/v3 ``pal_exec``: blocks until `pid` ends; (ret, exit value)."""
        value = ctypes.c_int(0)
        args = pal_exec_args(pid, ctypes.pointer(value))
        ret = self._fns["pal_exec"](ctypes.byref(args))
        return int(ret), value.value

    def kill(self, pid: int, sig: int) -> int:
        return int(self._fns["pal_kill"](pid, sig))

    def destroy(self) -> int:
        return int(self._fns["pal_destroy"]())

    def get_local_report(self, target_info: bytes) -> tuple[int, int, bytes]:
        """v3 ``pal_get_local_report``; (ret, report length the PAL claims, buffer)."""
        ti = ctypes.create_string_buffer(target_info, len(target_info))
        report = ctypes.create_string_buffer(REPORT_SIZE)
        length = ctypes.c_int(REPORT_SIZE)  # in: capacity, out: size written
        ret = self._fns["pal_get_local_report"](ti, len(target_info), report, ctypes.byref(length))
        return int(ret), length.value, report.raw
