"""AMD SEV-SNP ATTESTATION_REPORT (1184 bytes), SEV-SNP ABI spec (pub. 56860) table "ATTESTATION_REPORT".

Offsets (little-endian): version u32 0x00, guest_svn u32 0x04, policy u64
0x08, family_id 16 0x10, image_id 16 0x20, vmpl u32 0x30, signature_algo u32
0x34 (1 = ECDSA P-384 with SHA-384), current_tcb 0x38, platform_info u64
0x40, signer info u32 0x48 (bit 0 author_key_en, bit 1 mask_chip_key, bits
4:2 signing_key: 0 VCEK, 1 VLEK, 7 none), report_data 64 0x50, measurement
48 0x90, host_data 32 0xC0, id_key_digest 48 0xE0, author_key_digest 48
0x110, report_id 32 0x140, report_id_ma 32 0x160, reported_tcb 0x180,
cpuid family/model/stepping 0x188..0x18A (v3+), chip_id 64 0x1A0,
committed_tcb 0x1E0, current build/minor/major 0x1E8, committed
build/minor/major 0x1EC, launch_tcb 0x1F0, signature 0x2A0 (r 72 bytes, s 72
bytes, both little-endian, zero-extended). The signature covers 0x000-0x29F;
the bytes after it are not signed, so the zero-extension of r and s (a
P-384 scalar has 48 bytes) and the reserved tail up to 0x4A0 must be zero.

TCB_VERSION layout: Milan/Genoa — bootloader, tee, 4 reserved, snp, microcode
(one byte each); Turin — fmc, bootloader, tee, snp, 3 reserved, microcode.

Trailing bytes follow the quote rule (:mod:`.quote`): zero padding after the
1184 bytes is accepted, anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..claims import SnpPolicy, SnpTcb
from ..errors import EvidenceFormatError
from ._reader import u32, u64
from .guard import guarded

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0
SIG_ALGO_ECDSA_P384_SHA384 = 1
SIGNING_KEYS = {0: "VCEK", 1: "VLEK"}


@dataclass(frozen=True)
class SnpReport:
    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    signer_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid: tuple[int, int, int] | None
    chip_id: bytes
    committed_tcb: bytes
    current_version: tuple[int, int, int]
    committed_version: tuple[int, int, int]
    launch_tcb: bytes
    signature_r: int
    signature_s: int

    @property
    def signed(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def signing_key(self) -> str:
        return SIGNING_KEYS.get((self.signer_info >> 2) & 7, "none")

    @property
    def chip_id_masked(self) -> bool:
        return bool(self.signer_info & 2)


@guarded("sev-snp report")
def looks_like_report(data: bytes) -> bool:
    return len(data) >= REPORT_SIZE and 2 <= u32(data, 0) <= 5 and u32(data, 0x34) == SIG_ALGO_ECDSA_P384_SHA384


@guarded("sev-snp report")
def parse_report(data: bytes, *, allow_trailing_garbage: bool = False) -> SnpReport:
    if len(data) < REPORT_SIZE:
        raise EvidenceFormatError(f"sev-snp report: {len(data)} bytes, a report is {REPORT_SIZE}")
    if len(data) > 1 << 20:
        raise EvidenceFormatError("sev-snp report: larger than the 1 MiB limit")
    if any(data[REPORT_SIZE:]) and not allow_trailing_garbage:
        raise EvidenceFormatError(
            f"sev-snp report: {len(data) - REPORT_SIZE} bytes after the report are not all zero "
            "(only zero padding is accepted)"
        )
    d = bytes(data[:REPORT_SIZE])
    version, algo = u32(d, 0), u32(d, 0x34)
    if not 2 <= version <= 5:
        raise EvidenceFormatError(f"sev-snp report: version {version} is not supported (2..5)")
    if algo != SIG_ALGO_ECDSA_P384_SHA384:
        raise EvidenceFormatError(f"sev-snp report: signature algorithm {algo} is not ECDSA P-384/SHA-384 (1)")
    if any(d[0x2A0 + 48 : 0x2E8]) or any(d[0x2E8 + 48 : 0x330]) or any(d[0x330:REPORT_SIZE]):
        # Not covered by the signature: the zero-extension of r and s and the reserved tail must be zero.
        raise EvidenceFormatError(
            "sev-snp report: unsigned signature padding bytes (0x2D0-0x2E7, 0x318-0x4A0) are not zero"
        )
    return SnpReport(
        raw=d,
        version=version,
        guest_svn=u32(d, 0x04),
        policy=u64(d, 0x08),
        family_id=d[0x10:0x20],
        image_id=d[0x20:0x30],
        vmpl=u32(d, 0x30),
        signature_algo=algo,
        current_tcb=d[0x38:0x40],
        platform_info=u64(d, 0x40),
        signer_info=u32(d, 0x48),
        report_data=d[0x50:0x90],
        measurement=d[0x90:0xC0],
        host_data=d[0xC0:0xE0],
        id_key_digest=d[0xE0:0x110],
        author_key_digest=d[0x110:0x140],
        report_id=d[0x140:0x160],
        report_id_ma=d[0x160:0x180],
        reported_tcb=d[0x180:0x188],
        cpuid=(d[0x188], d[0x189], d[0x18A]) if version >= 3 else None,
        chip_id=d[0x1A0:0x1E0],
        committed_tcb=d[0x1E0:0x1E8],
        current_version=(d[0x1EA], d[0x1E9], d[0x1E8]),
        committed_version=(d[0x1EE], d[0x1ED], d[0x1EC]),
        launch_tcb=d[0x1F0:0x1F8],
        signature_r=int.from_bytes(d[0x2A0:0x2E8], "little"),
        signature_s=int.from_bytes(d[0x2E8:0x330], "little"),
    )


def product_from_cpuid(cpuid: tuple[int, int, int] | None) -> str | None:
    """Milan/Genoa/Turin from CPUID family/model (AMD PPRs); None for v2 reports without CPUID."""
    if cpuid is None:
        return None
    family, model, _ = cpuid
    if family == 0x19:
        return "Milan" if model < 0x10 else "Genoa"
    if family == 0x1A:
        return "Turin"
    return None


def decode_tcb(raw: bytes, product: str) -> SnpTcb:
    if product == "Turin":
        return SnpTcb(raw=raw, fmc=raw[0], bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7])
    return SnpTcb(raw=raw, bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])


def decode_policy(value: int) -> SnpPolicy:
    """Guest policy, SEV-SNP ABI spec table "Guest Policy Structure"."""

    def bit(n: int) -> bool:
        return bool(value >> n & 1)

    return SnpPolicy(
        raw=value,
        abi_minor=value & 0xFF,
        abi_major=(value >> 8) & 0xFF,
        smt_allowed=bit(16),
        migrate_ma_allowed=bit(18),
        debug_allowed=bit(19),
        single_socket=bit(20),
        cxl_allowed=bit(21),
        mem_aes_256_xts=bit(22),
        rapl_disabled=bit(23),
        ciphertext_hiding=bit(24),
        page_swap_disabled=bit(25),
    )
