"""The cgroup v2 device allowlist as an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE).

cgroup v2 has no devices.allow: access to device nodes is decided by programs
attached to the cgroup with BPF_CGROUP_DEVICE (cgroup-v2.rst "Device
controller"). The kernel runs them with R1 pointing at::

    struct bpf_cgroup_dev_ctx {   /* include/uapi/linux/bpf.h */
        __u32 access_type;        /* (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_* */
        __u32 major;
        __u32 minor;
    };

and the program returns 1 to allow, 0 to deny (-EPERM). The prologue is
systemd's and crun's (ebpf.c ``bpf_program_init_dev``): type in R2, access
in R3, major in R4, minor in R5.

Semantics: each requested access bit (m, r, w) is decided on its own by the
*last* rule of :func:`.devices.effective` that matches the device and names
that bit; a bit no rule names is denied. An open for read+write is allowed
only if both bits are. crun checks rules newest-first the same way but
matches a rule only if it covers *all* requested bits, so a later
``deny c 1:3 w`` does not stop an O_RDWR open there; deciding per bit does.

Instruction encoding (Documentation/bpf/standardization/instruction-set.rst):
``struct bpf_insn { u8 code; u8 dst:4, src:4; s16 off; s32 imm; }``, jump
offsets counted in instructions from the next one. The verifier rejects
unreachable instructions, so nothing is emitted after an unconditional
decision and the deny block only when something jumps to it.
"""

from __future__ import annotations

from ...errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .devices import Rule

# Opcodes: class | op | source (include/uapi/linux/bpf_common.h, bpf.h).
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W:  dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K: dst = (u32)dst & imm
ALU32_RSH_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K: dst = (u32)dst >> imm
ALU64_MOV_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
JMP_JA = 0x05  # BPF_JMP | BPF_JA: pc += off
JMP_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K: if dst != imm: pc += off
JMP_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K: if dst & imm: pc += off
JMP_EXIT = 0x95  # BPF_JMP | BPF_EXIT: return R0

DEV_BLOCK, DEV_CHAR = 1, 2  # BPF_DEVCG_DEV_*
ACCESS_BITS = (("m", 1), ("r", 2), ("w", 4))  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
R_TYPE, R_ACCESS, R_MAJOR, R_MINOR = 2, 3, 4, 5


class _Assembler:
    """Instructions with symbolic jump targets, resolved in :meth:`encode`."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int | str, int]] = []
        self.labels: dict[str, int] = {}

    def emit(self, code: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        self.insns.append((code, dst, src, off, imm))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def used(self, name: str) -> bool:
        return any(off == name for _c, _d, _s, off, _i in self.insns)

    def encode(self) -> bytes:
        out = bytearray()
        for pc, (code, dst, src, off, imm) in enumerate(self.insns):
            rel = self.labels[off] - pc - 1 if isinstance(off, str) else off
            if not -(2**15) <= rel < 2**15:
                raise SpecError("linux.resources.devices", "too many device rules for one eBPF program")
            out += bytes((code, dst | (src << 4)))
            out += rel.to_bytes(2, "little", signed=True) + imm.to_bytes(4, "little", signed=True)
        return bytes(out)


def device_program(rules: list[Rule]) -> bytes:
    """Compile an effective rule list (see :mod:`.devices`) to program bytes."""
    asm = _Assembler()
    asm.emit(LDX_MEM_W, R_TYPE, 1, 0)
    asm.emit(ALU32_AND_K, R_TYPE, imm=0xFFFF)
    asm.emit(LDX_MEM_W, R_ACCESS, 1, 0)
    asm.emit(ALU32_RSH_K, R_ACCESS, imm=16)
    asm.emit(LDX_MEM_W, R_MAJOR, 1, 4)
    asm.emit(LDX_MEM_W, R_MINOR, 1, 8)
    for letter, bit in ACCESS_BITS:
        done = f"after_{letter}"
        asm.emit(JMP_JSET_K, R_ACCESS, off=1, imm=bit)  # bit requested: decide it below
        asm.emit(JMP_JA, off=done)
        if not _decide_bit(asm, rules, letter, done):
            asm.emit(JMP_JA, off="deny")  # no rule names this bit: denied
        asm.label(done)
    asm.emit(ALU64_MOV_K, 0, imm=1)
    asm.emit(JMP_EXIT)
    if asm.used("deny"):
        asm.label("deny")
        asm.emit(ALU64_MOV_K, 0, imm=0)
        asm.emit(JMP_EXIT)
    return asm.encode()


def _decide_bit(asm: _Assembler, rules: list[Rule], letter: str, allowed: str) -> bool:
    """Emit the checks for one access bit, newest rule first; True if a
    wildcard rule decided it unconditionally (nothing may follow)."""
    for n in range(len(rules) - 1, -1, -1):
        allow, kind, major, minor, access = rules[n]
        if letter not in access:
            continue
        checks = []
        if kind != "a":
            checks.append((R_TYPE, DEV_BLOCK if kind == "b" else DEV_CHAR))
            checks += [(reg, v) for reg, v in ((R_MAJOR, major), (R_MINOR, minor)) if v is not None]
        skip = f"{letter}{n}"
        for reg, value in checks:
            asm.emit(JMP_JNE_K, reg, off=skip, imm=value)
        asm.emit(JMP_JA, off=allowed if allow else "deny")
        if not checks:
            return True
        asm.label(skip)
    return False
