"""Azure SEV-SNP confidential VMs: an HCL report wrapping an SNP report and the vTPM runtime data.

Checks: everything the SNP verifier checks on the embedded report, plus the
binding REPORT_DATA = hash(runtime data) || zeros (:mod:`..hazmat.hcl`).
The claims carry the runtime data (the vTPM attestation key ``HCLAkPub``
as a JWK) so a relying party can go on to check vTPM quotes with that key.
TDX HCL reports embed a TDREPORT, which is not signed evidence; verify the
TD quote instead (:func:`..hazmat.hcl.binds` checks its binding).
"""

from __future__ import annotations

from datetime import datetime

from ..claims import EvidenceKind, TcbResult, Tee, VerifiedClaims, jsonable
from ..collateral import CollateralStore
from ..errors import EvidenceFormatError, VerificationFailed
from ..hazmat.hcl import REPORT_TYPE_SNP, binds, parse_hcl_report
from ..hazmat.snp import parse_report, product_from_cpuid
from .snp import claims_of, verify_report


class AzureHclVerifier:
    kind = EvidenceKind.AZURE_HCL_REPORT

    def inspect(self, data: bytes) -> dict[str, object]:
        hcl = parse_hcl_report(data)
        out: dict[str, object] = {
            "version": hcl.version,
            "report_type": "sev-snp" if hcl.report_type == REPORT_TYPE_SNP else "tdx",
            "runtime_data": hcl.runtime_data.decode("utf-8", "replace"),
            "runtime_data_digest": hcl.runtime_data_digest.hex(),
        }
        if hcl.report_type == REPORT_TYPE_SNP:
            report = parse_report(hcl.hardware_report)
            out["snp_report"] = jsonable(claims_of(report, product_from_cpuid(report.cpuid) or "Milan"))
            out["runtime_data_bound"] = binds(hcl, report.report_data)
        return out

    def verify(self, data: bytes, *, at: datetime, collateral: CollateralStore) -> VerifiedClaims:
        hcl = parse_hcl_report(data)
        if hcl.report_type != REPORT_TYPE_SNP:
            raise EvidenceFormatError(
                "azure hcl report: a TDX HCL report carries an unsigned TDREPORT; verify the TD quote instead"
            )
        report = parse_report(hcl.hardware_report)
        product = verify_report(report, collateral, at)
        if not binds(hcl, report.report_data):
            raise VerificationFailed("azure hcl report", "REPORT_DATA is not the hash of the HCL runtime data")
        return VerifiedClaims(
            kind=self.kind,
            tee=Tee.SEV_SNP,
            claims=claims_of(report, product, hcl.runtime_data),
            tcb=TcbResult(status=None),
            verified_at=at,
        )
