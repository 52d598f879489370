"""Builds of the kit's test program, ``program.c`` (its header says what it does).

The two builds the built-in runtimes use; a third-party runtime that runs
Linux or WASI programs can use them too, or compile ``PROGRAM_C`` with its
own toolchain. The flags are those of samples/Makefile: Debian's clang
finds wasi-libc without ``--sysroot``, and ``-nodefaultlibs`` leaves out
compiler-rt, a separate package the program does not need.
"""

from __future__ import annotations

import os
import subprocess

PROGRAM_C = os.path.join(os.path.dirname(os.path.abspath(__file__)), "program.c")
_WARNINGS = ["-O2", "-Wall", "-Wextra", "-Werror"]


def build_native(out: str, cc: str = "cc") -> str:
    """A static x86-64 executable at `out` (static: it runs in any rootfs, and
    the native runtime execs it without a dynamic loader)."""
    return _compile([cc, *_WARNINGS, "-static", "-o", out, PROGRAM_C])


def build_wasm(out: str, clang: str = "clang") -> str:
    """A WASI preview-1 command at `out`."""
    return _compile([clang, "--target=wasm32-wasi", *_WARNINGS, "-nodefaultlibs", "-Wl,--strip-all",
                     "-o", out, PROGRAM_C, "-lc"])  # fmt: skip


def _compile(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise RuntimeError(f"{cmd[0]}: not installed; the conformance program needs it") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return cmd[cmd.index("-o") + 1]
