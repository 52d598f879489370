"""TDX quotes: v4 (TD report 1.0) and v5 (TD report 1.0 or 1.5).

Evidence: a quote from the TD Quoting Enclave (``sgx_quote_4.h``,
``sgx_quote_5.h``; tee_type 0x81). Checks: everything in :mod:`._dcap`,
including the TDX TCB components, the TDX module identity and, for TD 1.5
bodies, Intel's TD-relaunch advice. Claims: MRTD, RTMR0-3, MRCONFIGID,
MROWNER, MROWNERCONFIG, MRSEAM, TD attributes (DEBUG decoded), XFAM,
TEE_TCB_SVN, REPORTDATA and, for TDX 1.5, TEE_TCB_SVN2 and MRSERVICETD.
"""

from __future__ import annotations

from ..claims import EvidenceKind, IntelPlatform, TdxClaims, Tee
from ..hazmat.reports import TD_ATTR_PERFMON, TD_ATTR_SEPT_VE_DISABLE, TdReportBody
from ._quote import DcapQuoteVerifier


class TdxQuoteVerifier(DcapQuoteVerifier[TdReportBody]):
    kind = EvidenceKind.TDX_QUOTE
    tee = Tee.TDX
    body_type = TdReportBody
    wrong_body = "tdx quote: the quote carries an SGX enclave report, not a TD report"

    def claims(self, body: TdReportBody, platform: IntelPlatform) -> TdxClaims:
        attrs = body.td_attributes_value
        return TdxClaims(
            mr_td=body.mr_td,
            rtmrs=body.rtmrs,
            mr_config_id=body.mr_config_id,
            mr_owner=body.mr_owner,
            mr_owner_config=body.mr_owner_config,
            mr_seam=body.mr_seam,
            mr_signer_seam=body.mr_signer_seam,
            seam_attributes=body.seam_attributes,
            td_attributes=body.td_attributes,
            debug=body.debug,
            sept_ve_disable=bool(attrs & TD_ATTR_SEPT_VE_DISABLE),
            perfmon=bool(attrs & TD_ATTR_PERFMON),
            xfam=body.xfam,
            tee_tcb_svn=body.tee_tcb_svn,
            report_data=body.report_data,
            platform=platform,
            tee_tcb_svn2=body.tee_tcb_svn2,
            mr_servicetd=body.mr_servicetd,
        )
