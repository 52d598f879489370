"""The ctypes mirror of the PAL ABI matches pal.h: pinned, and checked against gcc."""

from __future__ import annotations

import ctypes
import subprocess

import pytest

from inclavare._sys import pal as abi

# docs/pal-abi.md, "Structs": natural alignment on x86-64.
PINNED = {
    "sizeof(pal_attr_v1_t)": 16,
    "offsetof(pal_attr_v1_t, args)": 0,
    "offsetof(pal_attr_v1_t, log_level)": 8,
    "sizeof(pal_attr_v3_t)": 32,
    "offsetof(pal_attr_v3_t, attr_v1)": 0,
    "offsetof(pal_attr_v3_t, fd)": 16,
    "offsetof(pal_attr_v3_t, addr)": 24,
    "sizeof(pal_stdio_fds)": 12,
    "offsetof(pal_stdio_fds, stdin)": 0,
    "offsetof(pal_stdio_fds, stdout)": 4,
    "offsetof(pal_stdio_fds, stderr)": 8,
    "sizeof(pal_create_process_args)": 40,
    "offsetof(pal_create_process_args, path)": 0,
    "offsetof(pal_create_process_args, argv)": 8,
    "offsetof(pal_create_process_args, env)": 16,
    "offsetof(pal_create_process_args, stdio)": 24,
    "offsetof(pal_create_process_args, pid)": 32,
    "sizeof(pal_exec_args)": 16,
    "offsetof(pal_exec_args, pid)": 0,
    "offsetof(pal_exec_args, exit_value)": 8,  # not 4: the packed spec_v2.md layout is not what runs
}


def ctypes_layout() -> dict[str, int]:
    out: dict[str, int] = {}
    for name in ("pal_attr_v1_t", "pal_attr_v3_t", "pal_stdio_fds", "pal_create_process_args", "pal_exec_args"):
        struct = getattr(abi, name)
        out[f"sizeof({name})"] = ctypes.sizeof(struct)
        for field, *_ in struct._fields_:
            out[f"offsetof({name}, {field})"] = getattr(struct, field).offset
    return out


def test_ctypes_layout_is_pinned():
    assert ctypes_layout() == PINNED


def test_ctypes_layout_matches_the_c_header(tmp_path, cc):
    exe = cc(str(tmp_path / "layout"), ["layout.c"], ["-Wall", "-Werror"])
    printed = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    from_c = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in printed.splitlines()}
    assert from_c == ctypes_layout()


def test_signatures_change_with_the_version():
    # pal_exec: v1 (path, argv, stdio, &exit_code) vs v2+ (pal_exec_args *)
    assert len(abi.SIGNATURES[1]["pal_exec"][1]) == 4
    assert abi.SIGNATURES[2]["pal_exec"][1] == [ctypes.POINTER(abi.pal_exec_args)]
    assert abi.SIGNATURES[3]["pal_init"][1] == [ctypes.POINTER(abi.pal_attr_v3_t)]
    assert abi.SIGNATURES[2]["pal_init"][1] == [ctypes.POINTER(abi.pal_attr_v1_t)]
    assert "pal_kill" not in abi.SIGNATURES[1]
    assert "pal_get_local_report" in abi.SIGNATURES[3]
    assert "pal_get_local_report" not in abi.SIGNATURES[2]


@pytest.mark.parametrize(
    ("ret", "text"),
    [
        (-22, "-22 (Invalid argument)"),
        (-2, "-2 (No such file or directory)"),
        (-38, "-38 (Function not implemented)"),
        (-1000, "-1000 (not an errno value)"),
        (7, "7 (not an errno value)"),
    ],
)
def test_errno_text(ret, text):
    assert abi.errno_text(ret) == text
