"""SGX ECDSA (DCAP) quotes: v3, and v4/v5 with an SGX enclave report body.

Evidence: a quote as produced by the Intel Quoting Enclave
(``sgx_quote_3.h``; ``sgx_quote_4.h``/``sgx_quote_5.h`` for v4/v5 with
tee_type 0). Checks: everything in :mod:`._dcap`. Claims: the ISV enclave
report body (MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN, ATTRIBUTES with the
DEBUG flag decoded, REPORTDATA...) and the platform described by the PCK
certificate.
"""

from __future__ import annotations

from ..claims import EvidenceKind, IntelPlatform, SgxClaims, Tee
from ..hazmat.reports import SGX_FLAG_KSS, SGX_FLAG_MODE64BIT, SGX_FLAG_PROVISIONKEY, SgxReportBody
from ._quote import DcapQuoteVerifier


class SgxQuoteVerifier(DcapQuoteVerifier[SgxReportBody]):
    kind = EvidenceKind.SGX_QUOTE
    tee = Tee.SGX
    body_type = SgxReportBody
    wrong_body = "sgx quote: the quote carries a TD report, not an SGX enclave report"

    def claims(self, body: SgxReportBody, platform: IntelPlatform) -> SgxClaims:
        return SgxClaims(
            mr_enclave=body.mr_enclave,
            mr_signer=body.mr_signer,
            isv_prod_id=body.isv_prod_id,
            isv_svn=body.isv_svn,
            config_svn=body.config_svn,
            config_id=body.config_id,
            isv_ext_prod_id=body.isv_ext_prod_id,
            isv_family_id=body.isv_family_id,
            attributes=body.attributes,
            debug=body.debug,
            mode64=bool(body.flags & SGX_FLAG_MODE64BIT),
            provision_key=bool(body.flags & SGX_FLAG_PROVISIONKEY),
            kss=bool(body.flags & SGX_FLAG_KSS),
            misc_select=body.misc_select,
            cpu_svn=body.cpu_svn,
            report_data=body.report_data,
            platform=platform,
        )
