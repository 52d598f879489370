"""Azure confidential-VM HCL reports (the paravisor's "attestation report" from the vTPM NV index 0x01400001).

Layout (little-endian; Microsoft "Azure confidential VM guest attestation",
and trustee's az-snp-vtpm / az-tdx-vtpm verifiers)::

    0x000  header 32: signature "HCLA", version u32, report_size u32,
           request_type u32, status u32, reserved 12
    0x020  hardware report, 1184 bytes (SEV-SNP ATTESTATION_REPORT, or a TDX
           TDREPORT padded to the same size)
    0x4C0  IGVM request data: data_size u32, version u32, report_type u32
           (2 = SNP, 4 = TDX), user_data_hash_type u32 (1 SHA-256, 2 SHA-384,
           3 SHA-512), variable_data_size u32
    0x4D4  variable data: the runtime-data JSON (vTPM AK "HCLAkPub", ...)

The hardware report's REPORT_DATA starts with hash(runtime data) and is zero
after it: that is how the vTPM key is bound to the TEE.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import EvidenceFormatError
from ._reader import u32
from .guard import guarded

MAGIC = b"HCLA"
HW_REPORT = 0x20
HW_REPORT_SIZE = 0x4A0
REQUEST = 0x4C0
VARIABLE = 0x4D4
REPORT_TYPE_SNP = 2
REPORT_TYPE_TDX = 4
_HASHES = {1: "sha256", 2: "sha384", 3: "sha512"}


@dataclass(frozen=True)
class HclReport:
    version: int
    report_type: int
    hash_type: int
    hardware_report: bytes
    runtime_data: bytes

    @property
    def runtime_data_digest(self) -> bytes:
        return hashlib.new(_HASHES[self.hash_type], self.runtime_data).digest()


@guarded("azure hcl report")
def parse_hcl_report(data: bytes) -> HclReport:
    what = "azure hcl report"
    if len(data) < VARIABLE or data[:4] != MAGIC:
        raise EvidenceFormatError(f"{what}: no HCLA header or shorter than {VARIABLE} bytes")
    if len(data) > 1 << 16:
        raise EvidenceFormatError(f"{what}: larger than 64 KiB")
    size, var = u32(data, 8), u32(data, 0x4D0)
    if size != VARIABLE + var or size > len(data):
        raise EvidenceFormatError(f"{what}: report size {size} does not match the variable data size {var}")
    if u32(data, REQUEST) != 20 + var:
        raise EvidenceFormatError(f"{what}: IGVM request data size does not match the variable data size")
    if any(data[size:]):
        raise EvidenceFormatError(f"{what}: bytes after the report are not all zero")
    report_type, hash_type = u32(data, 0x4C8), u32(data, 0x4CC)
    if report_type not in (REPORT_TYPE_SNP, REPORT_TYPE_TDX):
        raise EvidenceFormatError(f"{what}: report type {report_type} is neither SNP (2) nor TDX (4)")
    if hash_type not in _HASHES:
        raise EvidenceFormatError(f"{what}: user data hash type {hash_type} is unknown")
    return HclReport(
        version=u32(data, 4),
        report_type=report_type,
        hash_type=hash_type,
        hardware_report=bytes(data[HW_REPORT : HW_REPORT + HW_REPORT_SIZE]),
        runtime_data=bytes(data[VARIABLE:size]),
    )


def binds(report: HclReport, report_data: bytes) -> bool:
    """REPORT_DATA == hash(runtime data), zero-extended to 64 bytes."""
    digest = report.runtime_data_digest
    return report_data == digest + bytes(len(report_data) - len(digest))
