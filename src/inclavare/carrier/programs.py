"""Is the image's entrypoint what a carrier can make an enclave of?

* ``wasm``: a WebAssembly core module — magic ``\\0asm`` and version 1
  (WebAssembly core spec §5.5.16, "Modules"). A component (layer 1, version
  0x0d) is not a WASI preview 1 module and is refused.
* ``native``: a static ELF executable — ``ET_EXEC`` or ``ET_DYN`` (static-pie)
  for this node's machine, and no ``PT_INTERP`` program header (System V ABI,
  gABI ch. 5, "Program Interpreter"): a dynamic program would load its loader
  and libraries from the image, files the manifest would have to pin one by
  one; the native carrier pins exactly one file, the program.

The checks read the first bytes of the file only (inside the rootfs,
:mod:`.rootfs`); the manifest pins the whole file's hash afterwards.
"""

from __future__ import annotations

import os
import struct

from .errors import CarrierError
from .rootfs import read_head

WASM_HEADER = b"\0asm\x01\0\0\0"
_ELF_MAGIC = b"\x7fELF"
_ET_EXEC, _ET_DYN = 2, 3
_PT_INTERP = 3
_PN_XNUM = 0xFFFF
_MACHINES = {"x86_64": 62, "aarch64": 183, "riscv64": 243, "s390x": 22, "ppc64le": 21}  # EM_* of the gABI
_MAX_PHDRS = 64 << 10


def check_wasm(rootfs: str, path: str, where: str) -> None:
    head = read_head(rootfs, path, 8, where)
    if head[:4] != WASM_HEADER[:4]:
        raise CarrierError(where, f"{path} is not a WebAssembly module (no \\0asm magic)")
    if head[4:] != WASM_HEADER[4:]:
        raise CarrierError(where, f"{path} is a WebAssembly component or an unknown version, not a core module")


def check_static_elf(rootfs: str, path: str, where: str) -> None:
    head = read_head(rootfs, path, 64, where)
    if head[:4] != _ELF_MAGIC or len(head) < 52:
        raise CarrierError(where, f"{path} is not an ELF executable")
    wide, order = head[4] == 2, {1: "<", 2: ">"}.get(head[5])
    if head[4] not in (1, 2) or order is None or (wide and len(head) < 64):
        raise CarrierError(where, f"{path}: malformed ELF header")
    e_type, e_machine = struct.unpack_from(order + "HH", head, 16)
    if e_type not in (_ET_EXEC, _ET_DYN):
        raise CarrierError(where, f"{path} is an ELF file but not an executable (e_type {e_type})")
    machine = _MACHINES.get(os.uname().machine)
    if machine is not None and e_machine != machine:
        raise CarrierError(where, f"{path} is built for ELF machine {e_machine}, this node is {os.uname().machine}")
    if wide:
        (phoff,) = struct.unpack_from(order + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
    else:
        (phoff,) = struct.unpack_from(order + "I", head, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
    if phnum == _PN_XNUM or phentsize < 4 or phoff + phnum * phentsize > _MAX_PHDRS:
        raise CarrierError(where, f"{path}: program headers out of the range this check reads")
    table = read_head(rootfs, path, phoff + phnum * phentsize, where)
    for i in range(phnum):
        offset = phoff + i * phentsize
        if offset + 4 > len(table):
            raise CarrierError(where, f"{path}: truncated program header table")
        (p_type,) = struct.unpack_from(order + "I", table, offset)
        if p_type == _PT_INTERP:
            raise CarrierError(
                where, f"{path} is dynamically linked (PT_INTERP): the native carrier runs static programs only"
            )
