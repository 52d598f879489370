"""SGX enclave report bodies and TDX TD report bodies, as embedded in DCAP quotes.

Layouts (all little-endian):

* ``sgx_report_body_t`` (384 bytes), Intel SGX DCAP quote library docs /
  ``sgx_report.h``: cpu_svn 16 @0, misc_select u32 @16, isv_ext_prod_id 16 @32,
  attributes 16 @48 (flags u64 + xfrm u64), mr_enclave 32 @64, mr_signer 32
  @128, config_id 64 @192, isv_prod_id u16 @256, isv_svn u16 @258,
  config_svn u16 @260, isv_family_id 16 @304, report_data 64 @320.
* TD report body 1.0 (584 bytes), ``sgx_quote_4.h`` ``sgx_report2_body_t``:
  tee_tcb_svn 16 @0, mr_seam 48 @16, mr_signer_seam 48 @64, seam_attributes 8
  @112, td_attributes 8 @120, xfam 8 @128, mr_td 48 @136, mr_config_id 48 @184,
  mr_owner 48 @232, mr_owner_config 48 @280, rtmr[4] 4x48 @328, report_data 64
  @520.
* TD report body 1.5 (648 bytes), ``sgx_quote_5.h`` ``sgx_report2_body_v1_5_t``:
  the 1.0 body followed by tee_tcb_svn2 16 @584 and mr_servicetd 48 @600.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import EvidenceFormatError

SGX_REPORT_BODY_SIZE = 384
TD_REPORT10_SIZE = 584
TD_REPORT15_SIZE = 648

# SGX ATTRIBUTES.FLAGS bits (Intel SDM vol. 3D, 38.7.1 "ATTRIBUTES").
SGX_FLAG_DEBUG = 1 << 1
SGX_FLAG_MODE64BIT = 1 << 2
SGX_FLAG_PROVISIONKEY = 1 << 4
SGX_FLAG_KSS = 1 << 7
# TDX TD_ATTRIBUTES bits (TDX module ABI spec, "TDATTRIBUTES").
TD_ATTR_DEBUG = 1 << 0
TD_ATTR_SEPT_VE_DISABLE = 1 << 28
TD_ATTR_PKS = 1 << 30
TD_ATTR_KL = 1 << 31
TD_ATTR_PERFMON = 1 << 63


@dataclass(frozen=True)
class SgxReportBody:
    """An SGX enclave report body (ISV enclave or QE report)."""

    raw: bytes
    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def flags(self) -> int:
        return int.from_bytes(self.attributes[:8], "little")

    @property
    def debug(self) -> bool:
        return bool(self.flags & SGX_FLAG_DEBUG)


@dataclass(frozen=True)
class TdReportBody:
    """A TD report body, 1.0 (584 bytes) or 1.5 (648 bytes, with ``tee_tcb_svn2``/``mr_servicetd``)."""

    raw: bytes
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_servicetd: bytes | None = None

    @property
    def td_attributes_value(self) -> int:
        return int.from_bytes(self.td_attributes, "little")

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes_value & TD_ATTR_DEBUG)

    @property
    def version(self) -> str:
        return "1.5" if self.mr_servicetd is not None else "1.0"


def parse_sgx_report_body(raw: bytes, what: str = "sgx report body") -> SgxReportBody:
    if len(raw) != SGX_REPORT_BODY_SIZE:
        raise EvidenceFormatError(f"{what}: must be {SGX_REPORT_BODY_SIZE} bytes, got {len(raw)}")
    return SgxReportBody(
        raw=bytes(raw),
        cpu_svn=raw[0:16],
        misc_select=int.from_bytes(raw[16:20], "little"),
        isv_ext_prod_id=raw[32:48],
        attributes=raw[48:64],
        mr_enclave=raw[64:96],
        mr_signer=raw[128:160],
        config_id=raw[192:256],
        isv_prod_id=int.from_bytes(raw[256:258], "little"),
        isv_svn=int.from_bytes(raw[258:260], "little"),
        config_svn=int.from_bytes(raw[260:262], "little"),
        isv_family_id=raw[304:320],
        report_data=raw[320:384],
    )


def parse_td_report_body(raw: bytes, what: str = "td report body") -> TdReportBody:
    if len(raw) not in (TD_REPORT10_SIZE, TD_REPORT15_SIZE):
        raise EvidenceFormatError(f"{what}: must be {TD_REPORT10_SIZE} or {TD_REPORT15_SIZE} bytes, got {len(raw)}")
    v15 = len(raw) == TD_REPORT15_SIZE
    return TdReportBody(
        raw=bytes(raw),
        tee_tcb_svn=raw[0:16],
        mr_seam=raw[16:64],
        mr_signer_seam=raw[64:112],
        seam_attributes=raw[112:120],
        td_attributes=raw[120:128],
        xfam=raw[128:136],
        mr_td=raw[136:184],
        mr_config_id=raw[184:232],
        mr_owner=raw[232:280],
        mr_owner_config=raw[280:328],
        rtmrs=(raw[328:376], raw[376:424], raw[424:472], raw[472:520]),
        report_data=raw[520:584],
        tee_tcb_svn2=raw[584:600] if v15 else None,
        mr_servicetd=raw[600:648] if v15 else None,
    )
