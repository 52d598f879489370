"""Fixture PALs (tests/fixtures/pal), compiled with the system gcc on first use.

``pal("v2")`` returns the path of ``liberpal-v2.so`` built into the session's
tmp dir; each variant is compiled once per session (about 0.1 s each).
"""

from __future__ import annotations

import ctypes
import os
import subprocess

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures", "pal")
CFLAGS = ["-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]

# variant -> (PAL source, compiler flags); see the head of each source file.
VARIANTS = {
    "v1": ("pal_v1.c", []),
    "v1-noversion": ("pal_v1.c", ["-DNO_GET_VERSION"]),
    "v2": ("pal_v2.c", ["-DPAL_API_VERSION=2"]),
    "v2-nokill": ("pal_v2.c", ["-DPAL_API_VERSION=2", "-DNO_KILL"]),
    "v2-noexec": ("pal_v2.c", ["-DPAL_API_VERSION=2", "-DNO_EXEC"]),
    "v2-eintr": ("pal_v2.c", ["-DPAL_API_VERSION=2", "-DNO_EINTR_RETRY"]),
    "v3": ("pal_v2.c", ["-DPAL_API_VERSION=3"]),
    "v3-v4": ("pal_v2.c", ["-DPAL_API_VERSION=3", "-DREPORTED_VERSION=4"]),
}


def compile_c(out: str, sources: list[str], flags: list[str]) -> str:
    cmd = ["gcc", *flags, "-I", SRC, "-o", out, *(os.path.join(SRC, s) for s in sources)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return out


@pytest.fixture(scope="session")
def cc():
    """cc(out, sources, flags) -> out: compile fixture sources with gcc."""
    return compile_c


@pytest.fixture(scope="session")
def pal(tmp_path_factory: pytest.TempPathFactory):
    """pal(variant) -> absolute path of that fixture PAL."""
    out_dir = tmp_path_factory.mktemp("pal")
    built: dict[str, str] = {}

    def build(variant: str) -> str:
        if variant not in built:
            source, flags = VARIANTS[variant]
            out = str(out_dir / f"liberpal-{variant}.so")
            built[variant] = compile_c(out, [source, "passthrough.c"], [*CFLAGS, *flags])
        return built[variant]

    return build


@pytest.fixture(scope="session")
def init_record():
    """init_record(path) -> what that fixture PAL's last pal_init received.

    A test hook, not PAL API. dlopen of a path already loaded returns the same
    handle, so this reads the globals of the very library the loader uses.
    """

    def read(path: str) -> str:
        fn = ctypes.CDLL(path, mode=os.RTLD_NOW)["fixture_init_record"]
        fn.restype = ctypes.c_char_p
        return fn().decode()

    return read
