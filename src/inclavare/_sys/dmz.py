"""rune-dmz: a 302-byte static trampoline that execs the container process.

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

Why the execve's errno comes back (runc prints ``exec /bin/junk: exec format
error``): only the real execve knows whether the kernel takes a file —
binfmt_misc handlers, a missing ELF interpreter, a noexec mount — so the
trampoline reports its failure instead of rune guessing beforehand.
argv[1] is the number of a *report fd* (exec.fifo for `rune start`, a pipe
for `rune exec`; ``-`` for none, see ..runtime.process.execerr). Inherited
across the trampoline's own exec, it is made close-on-exec before the
container process's execve — so it still closes exactly when that execve
succeeds — and on failure the errno is written to it (4 bytes, little
endian). First the trampoline makes itself non-dumpable: it holds a host fd,
and its /proc entries must be closed to the container meanwhile (the final
execve restores dumpability for the container process).

The code, x86-64 (at entry rsp points at argc, then argv[], NULL, envp[]):

    mov rax, [rsp+8]          ; argv[0]
    mov rax, [rax]            ; its first 8 bytes
    mov rcx, "rune-dmz"       ; the magic name rune passes as argv[0]
    cmp rax, rcx
    jne refuse
    or r12d, -1               ; report fd = -1 (none)
    mov rsi, [rsp+16]         ; argv[1]: the report fd in decimal, or "-"
    movzx eax, byte [rsi]
    sub eax, '0'
    cmp eax, 9
    ja exec                   ; not a digit: no report fd
    xor r12d, r12d
  digit:
    movzx eax, byte [rsi]
    sub eax, '0'
    cmp eax, 9
    ja parsed                 ; the NUL (or any non-digit) ends the number
    imul r12d, r12d, 10
    add r12d, eax
    inc rsi
    jmp digit
  parsed:
    mov edi, 4                ; prctl(PR_SET_DUMPABLE, 0)
    xor esi, esi
    mov eax, 157
    syscall
    mov edi, r12d             ; fcntl(fd, F_SETFD, FD_CLOEXEC)
    mov esi, 2
    mov edx, 1
    mov eax, 72
    syscall
    test eax, eax
    jnz failed                ; never exec with the fd open
  exec:
    mov rdi, [rsp+24]         ; path     = argv[2]
    lea rsi, [rsp+32]         ; argv     = &argv[3]
    mov rax, [rsp]            ; argc
    lea rdx, [rsp+rax*8+16]   ; envp     = past argv's NULL
    mov eax, 59               ; execve(path, argv, envp)
    syscall
    test r12d, r12d
    js failed
    neg eax                   ; -errno -> errno
    push rax
    mov edi, r12d             ; write(fd, &errno, 4)
    mov rsi, rsp
    mov edx, 4
    mov eax, 1
    syscall
  failed:
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
    "0f858f000000"  # jne refuse (+0x8f)
    "4183ccff"  # or r12d,-1
    "488b742410"  # mov rsi,[rsp+16]
    "0fb60683e83083f809"  # movzx eax,byte [rsi] ; sub eax,'0' ; cmp eax,9
    "7740"  # ja exec (+0x40)
    "4531e4"  # xor r12d,r12d
    "0fb60683e83083f809"  # digit: movzx eax,byte [rsi] ; sub eax,'0' ; cmp eax,9
    "770c"  # ja parsed (+0x0c)
    "456be40a4101c448ffc6"  # imul r12d,r12d,10 ; add r12d,eax ; inc rsi
    "ebe9"  # jmp digit (-0x17)
    "bf0400000031f6b89d0000000f05"  # parsed: prctl(PR_SET_DUMPABLE, 0)
    "4489e7be02000000ba01000000b8480000000f05"  # fcntl(r12d, F_SETFD, FD_CLOEXEC)
    "85c0"  # test eax,eax
    "7534"  # jnz failed (+0x34)
    "488b7c2418"  # exec: mov rdi,[rsp+24]
    "488d742420"  # lea rsi,[rsp+32]
    "488b0424"  # mov rax,[rsp]
    "488d54c410"  # lea rdx,[rsp+rax*8+16]
    "b83b000000"  # mov eax,59
    "0f05"  # syscall
    "4585e4"  # test r12d,r12d
    "7815"  # js failed (+0x15)
    "f7d850"  # neg eax ; push rax
    "4489e74889e6ba04000000b8010000000f05"  # write(r12d, rsp, 4)
    "bf7f000000"  # failed: mov edi,127
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


def argv_for(path: str, argv: list[str], report_fd: int = -1) -> list[str]:
    """The trampoline's argv for running `path` with `argv`; `report_fd` (if
    not -1) must be open and inheritable: it gets the errno if execve fails."""
    return [MAGIC.decode(), str(report_fd) if report_fd >= 0 else "-", path, *argv]
