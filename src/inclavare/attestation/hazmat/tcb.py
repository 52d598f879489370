"""Intel TCB appraisal: TCB-level matching, QE identity, TDX module identity, status convergence.

Follows Intel's "SGX/TDX DCAP Quote Verification Library" algorithm (QVL
``TcbLevelCheck.cpp``, ``TdxModuleCheck.cpp``, ``TDRelaunchCheck.cpp``,
``EnclaveReportVerifier.cpp``; section numbers 4.1.2.4.x of Intel's
"ECDSA Quote Verification" document):

* platform level (4.1.2.4.17.1-2): the first TCB level, in the TCB info's
  order, whose 16 SGX components and PCESVN are all <= the PCK certificate's;
* TDX (4.1.2.4.17.3): the first level that also has every TDX component <=
  TEE_TCB_SVN, skipping components 0 and 1 when TEE_TCB_SVN[1] (the TDX
  module major version) is non-zero;
* TDX module (4.1.2.4.17.4.1): identity ``TDX_<TEE_TCB_SVN[1]>`` (hex), first
  level with isvsvn <= TEE_TCB_SVN[0];
* QE identity (4.1.2.9.5-10): masked MISCSELECT/ATTRIBUTES, MRSIGNER,
  ISVPRODID, first level with isvsvn <= QE ISVSVN;
* convergence: an OutOfDate QE or TDX module turns UpToDate/SWHardeningNeeded
  into OutOfDate and the Configuration* statuses into
  OutOfDateConfigurationNeeded; Revoked anywhere makes the result Revoked.

"No matching level" anywhere means the TCB is not supported: that is a
verification failure, not a status.
"""

from __future__ import annotations

from ..claims import TcbStatus
from ..errors import VerificationFailed
from .intel_collateral import EnclaveIdentity, IdentityLevel, TcbInfo, TcbLevel, TdxModuleIdentity
from .pck import PckExtensions
from .reports import SgxReportBody

S = TcbStatus
_CONFIG = {S.CONFIGURATION_NEEDED, S.CONFIGURATION_AND_SW_HARDENING_NEEDED, S.OUT_OF_DATE_CONFIGURATION_NEEDED}


def match_sgx_level(tcb_info: TcbInfo, pck: PckExtensions) -> TcbLevel | None:
    for level in tcb_info.levels:
        if pck.pce_svn >= level.pce_svn and all(
            mine >= theirs for mine, theirs in zip(pck.tcb_components, level.sgx_components, strict=True)
        ):
            return level
    return None


def match_tdx_level(tcb_info: TcbInfo, pck: PckExtensions, tee_tcb_svn: bytes) -> TcbLevel | None:
    start = 2 if tee_tcb_svn[1] > 0 else 0
    for level in tcb_info.levels:
        if level.tdx_components is None:
            continue
        if pck.pce_svn < level.pce_svn or any(
            mine < theirs for mine, theirs in zip(pck.tcb_components, level.sgx_components, strict=True)
        ):
            continue
        if all(tee_tcb_svn[i] >= level.tdx_components[i] for i in range(start, 16)):
            return level
    return None


def identity_level(levels: tuple[IdentityLevel, ...], isv_svn: int) -> IdentityLevel | None:
    return next((lv for lv in levels if isv_svn >= lv.isv_svn), None)


def check_qe_identity(identity: EnclaveIdentity, qe: SgxReportBody, check: str) -> IdentityLevel:
    """QE report vs QE identity (4.1.2.9.5-10); the matching identity TCB level."""
    misc = qe.misc_select.to_bytes(4, "little")
    if bytes(a & m for a, m in zip(misc, identity.miscselect_mask, strict=True)) != identity.miscselect:
        raise VerificationFailed(check, "QE MISCSELECT does not match the QE identity")
    if bytes(a & m for a, m in zip(qe.attributes, identity.attributes_mask, strict=True)) != identity.attributes:
        raise VerificationFailed(check, "QE ATTRIBUTES do not match the QE identity")
    if qe.mr_signer != identity.mr_signer:
        raise VerificationFailed(check, f"QE MRSIGNER {qe.mr_signer.hex()} is not {identity.mr_signer.hex()}")
    if qe.isv_prod_id != identity.isv_prod_id:
        raise VerificationFailed(check, f"QE ISVPRODID {qe.isv_prod_id} is not {identity.isv_prod_id}")
    level = identity_level(identity.levels, qe.isv_svn)
    if level is None:
        raise VerificationFailed(check, f"QE ISVSVN {qe.isv_svn} is below every QE identity TCB level (not supported)")
    return level


def tdx_module_identity(tcb_info: TcbInfo, version: int) -> TdxModuleIdentity | None:
    wanted = f"TDX_{version:02X}"
    return next((m for m in tcb_info.tdx_module_identities if m.id.upper() == wanted), None)


def converge_qe(status: TcbStatus, qe: TcbStatus) -> TcbStatus:
    if qe == S.OUT_OF_DATE:
        return _out_of_date(status)
    return S.REVOKED if qe == S.REVOKED else status


def converge_module(status: TcbStatus, module: TcbStatus) -> TcbStatus:
    if module == S.OUT_OF_DATE:
        return _out_of_date(status)
    return S.REVOKED if module == S.REVOKED else status


def _out_of_date(status: TcbStatus) -> TcbStatus:
    if status in (S.UP_TO_DATE, S.SW_HARDENING_NEEDED):
        return S.OUT_OF_DATE
    if status in (S.CONFIGURATION_NEEDED, S.CONFIGURATION_AND_SW_HARDENING_NEEDED):
        return S.OUT_OF_DATE_CONFIGURATION_NEEDED
    return status


def relaunch_advice(
    tee_tcb_svn2: bytes, tcb_info: TcbInfo, sgx: TcbStatus, tdx: TcbStatus, module: TcbStatus, qe: TcbStatus, check: str
) -> TcbStatus:
    """QVL ``checkForRelaunch`` (4.1.2.4.17.4.3, TD report 1.5 only): would relaunching the TD fix it?"""
    if qe != S.UP_TO_DATE or sgx not in (
        S.UP_TO_DATE,
        S.SW_HARDENING_NEEDED,
        *_CONFIG - {S.OUT_OF_DATE_CONFIGURATION_NEEDED},
    ):
        return tdx
    if tdx not in (S.OUT_OF_DATE, S.OUT_OF_DATE_CONFIGURATION_NEEDED) or module != S.OUT_OF_DATE:
        return tdx
    latest = tcb_info.levels[0]
    if latest.tdx_components is None:
        return tdx
    if tee_tcb_svn2[1] == 0:
        fixed = tee_tcb_svn2[0] >= latest.tdx_components[0]
    else:
        ident = tdx_module_identity(tcb_info, tee_tcb_svn2[1])
        if ident is None or not ident.levels:
            raise VerificationFailed(check, f"no TDX module identity TDX_{tee_tcb_svn2[1]:02X} for TEE_TCB_SVN2")
        fixed = tee_tcb_svn2[0] >= ident.levels[0].isv_svn
    if not (fixed and tee_tcb_svn2[2] >= latest.tdx_components[2]):
        return tdx
    if sgx in _CONFIG or tdx in _CONFIG:
        return S.TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED
    return S.TD_RELAUNCH_ADVISED


def merge_advisories(*groups: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for group in groups:
        out.extend(a for a in group if a not in out)
    return tuple(out)
