"""rune-dmz: a 130-byte static trampoline that execs the container process.

Why (CVE-2019-5736 class): rune's processes in the container are forks of a
*host* binary — the Python interpreter. If the container process were exec'd
straight from such a process, ``/proc/self/exe`` during that execve is the
host interpreter: a ``#!/proc/self/exe`` script run by `rune exec` would
execute the host's Python inside the container, and a process holding that
file open could write to it once it is no longer busy — overwriting a host
binary, as in the original runc attack.

So the last exec goes through this trampoline, run from a sealed memfd:
during the container process's execve, ``/proc/self/exe`` is the memfd —
read-only by its seals, not a file on any host filesystem. A
``#!/proc/self/exe`` script therefore re-enters the trampoline, which refuses
to run unless argv[0] is its magic name and exits 126.

The code, x86-64 (at entry rsp points at argc, then argv[], NULL, envp[]):

    mov rax, [rsp+8]          ; argv[0]
    mov rax, [rax]            ; its first 8 bytes
    mov rcx, "rune-dmz"       ; the magic name rune passes as argv[0]
    cmp rax, rcx
    jne refuse
    mov rdi, [rsp+16]         ; path     = argv[1]
    lea rsi, [rsp+24]         ; argv     = &argv[2]
    mov rax, [rsp]            ; argc
    lea rdx, [rsp+rax*8+16]   ; envp     = past argv's NULL
    mov eax, 59               ; execve(path, argv, envp)
    syscall
    mov edi, 127              ; exec failed
    jmp out
  refuse:
    mov edi, 126
  out:
    mov eax, 60               ; exit
    syscall
"""

from __future__ import annotations

import fcntl
import os
import struct

from ..errors import InclavareError

MAGIC = b"rune-dmz"
_BASE = 0x400000
_CODE = bytes.fromhex(
    "488b442408"  # mov rax,[rsp+8]
    "488b00"  # mov rax,[rax]
    "48b9" + MAGIC.hex() + "4839c8"  # mov rcx,imm64 ; cmp rax,rcx
    "7521"  # jne refuse (+33)
    "488b7c2410"  # mov rdi,[rsp+16]
    "488d742418"  # lea rsi,[rsp+24]
    "488b0424"  # mov rax,[rsp]
    "488d54c410"  # lea rdx,[rsp+rax*8+16]
    "b83b000000"  # mov eax,59
    "0f05"  # syscall
    "bf7f000000"  # mov edi,127
    "eb05"  # jmp out
    "bf7e000000"  # refuse: mov edi,126
    "b83c000000"  # out: mov eax,60
    "0f05"  # syscall
)


def elf_image() -> bytes:
    """A minimal ELF64 executable: one header, one PT_LOAD segment (R+X), the code."""
    ehsize, phsize = 64, 56
    size = ehsize + phsize + len(_CODE)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, SysV
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, _BASE + ehsize + phsize, ehsize, 0, 0,
                                 ehsize, phsize, 1, 0, 0, 0)  # fmt: skip
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return header + segment + _CODE


def sealed_fd() -> int:
    """A close-on-exec memfd holding the trampoline, sealed against any change."""
    machine = os.uname().machine
    if machine != "x86_64":
        raise InclavareError(f"rune-dmz is x86-64 machine code; this host is {machine}")
    fd = os.memfd_create("rune-dmz", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, elf_image())
        os.fchmod(fd, 0o555)
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def argv_for(path: str, argv: list[str]) -> list[str]:
    """The trampoline's argv for running `path` with `argv`."""
    return [MAGIC.decode(), path, *argv]
