"""AMD SEV-SNP attestation reports signed by a VCEK or a VLEK.

Checks, in order, for the signing certificate found in the collateral
(``SEV-VCEK`` or ``SEV-VLEK``, as the report's signing-key field says):

1. chain: VCEK <- ASK (``SEV-<product>``) or VLEK <- ASVK
   (``SEV-VLEK-<product>``) <- the pinned ARK of that product, RSASSA-PSS
   signatures, every certificate valid at the instant (VCEK spec 57230);
2. report signature: ECDSA P-384/SHA-384 over bytes 0x000-0x29F, r and s
   little-endian (SEV-SNP ABI spec, "Signature Format");
3. reported TCB equals the certificate's TCB extensions, field by field;
4. VCEK only: CHIP_ID equals the hwID extension (and is not masked);
5. v3+ reports: the CPUID family matches the product of the chain.

With several candidate certificates (a cache keeps many VCEKs) the one whose
hwID and TCB match the report is tried first; the first that passes every
check wins, otherwise the best candidate's failure is reported.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..claims import EvidenceKind, SnpClaims, TcbResult, Tee, VerifiedClaims, jsonable
from ..collateral import CollateralStore
from ..errors import AttestationError, CollateralError, VerificationFailed
from ..hazmat import amd, roots
from ..hazmat import certs as xc
from ..hazmat.snp import SnpReport, decode_policy, decode_tcb, parse_report, product_from_cpuid


class SnpReportVerifier:
    kind = EvidenceKind.SNP_REPORT

    def inspect(self, data: bytes) -> dict[str, object]:
        report = parse_report(data, allow_trailing_garbage=True)
        product = product_from_cpuid(report.cpuid) or "Milan"
        out = jsonable(claims_of(report, product))
        assert isinstance(out, dict)
        out["product_assumed_from"] = "cpuid" if report.cpuid else "default (v2 report has no CPUID)"
        out["trailing_bytes"] = len(data) - len(report.raw)
        return out

    def verify(self, data: bytes, *, at: datetime, collateral: CollateralStore) -> VerifiedClaims:
        report = parse_report(data)
        product = verify_report(report, collateral, at)
        return VerifiedClaims(
            kind=self.kind,
            tee=Tee.SEV_SNP,
            claims=claims_of(report, product),
            tcb=TcbResult(status=None),
            verified_at=at,
        )


def verify_report(report: SnpReport, store: CollateralStore, at: datetime) -> str:
    """Every check of a parsed report; returns the product (Milan, Genoa, Turin)."""
    key = report.signing_key
    if key not in ("VCEK", "VLEK"):
        raise VerificationFailed("sev-snp report", "the report is not signed (signing key field says none)")
    candidates = store.certificates_named(f"SEV-{key}")
    if not candidates:
        raise CollateralError(f"sev-snp {key.lower()}: no {key} certificate in the collateral")
    candidates.sort(key=lambda c: _rank(c, report), reverse=True)
    first: AttestationError | None = None
    for cert in candidates:
        try:
            return _verify_with(report, cert, store, at, key)
        except AttestationError as exc:
            first = first or exc
    assert first is not None
    raise first


def _rank(cert: x509.Certificate, report: SnpReport) -> tuple[bool, bool]:
    try:
        info = amd.cert_info(cert, "vcek")
    except AttestationError:
        return False, False
    hwid_ok = info.hwid is not None and report.chip_id[: len(info.hwid)] == info.hwid
    return hwid_ok, info.spl.get("microcode") == report.reported_tcb[7]


def _verify_with(report: SnpReport, cert: x509.Certificate, store: CollateralStore, at: datetime, key: str) -> str:
    product = _chain(cert, store, at, key)
    _signature(report, cert, key)
    info = amd.cert_info(cert, key.lower())
    _tcb(report, info, product, key)
    if key == "VCEK":
        _chip_id(report, info)
    cpu_product = product_from_cpuid(report.cpuid)
    if cpu_product is not None and cpu_product != product:
        raise VerificationFailed("sev-snp report", f"CPUID says {cpu_product} but the {key} chain is {product}")
    return product


def _chain(cert: x509.Certificate, store: CollateralStore, at: datetime, key: str) -> str:
    check = f"sev-snp {key.lower()} chain"
    issuer_cn = xc.common_name(cert.issuer)
    found = amd.product_of(issuer_cn)
    if found is None or found[1] != key:
        raise VerificationFailed(
            check, f"{key} issuer {issuer_cn!r} is not an AMD {'ASK' if key == 'VCEK' else 'ASVK'}"
        )
    product = found[0]
    ark = roots.amd_ark(product)
    intermediates = [
        c for c in store.certificates_named(cert.issuer) if not roots.is_pinned(c, f"amd-{product.lower()}")
    ]
    if not intermediates:
        raise CollateralError(f"{check}: no {issuer_cn!r} certificate in the collateral")
    failure: VerificationFailed | None = None
    for ask in intermediates:
        try:
            xc.check_chain([cert, ask], ark, at, check)
            return product
        except VerificationFailed as exc:
            failure = failure or exc
    assert failure is not None
    raise failure


def _signature(report: SnpReport, cert: x509.Certificate, key: str) -> None:
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp384r1":
        raise VerificationFailed("sev-snp report signature", f"the {key} key is not ECDSA P-384")
    try:
        signature = encode_dss_signature(report.signature_r, report.signature_s)
        public.verify(signature, report.signed, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        raise VerificationFailed("sev-snp report signature", f"does not verify under the {key}") from None


def _tcb(report: SnpReport, info: amd.AmdCertInfo, product: str, key: str) -> None:
    for index, name in enumerate(amd.tcb_fields(product)):
        if name not in info.spl:
            raise VerificationFailed("sev-snp tcb", f"the {key} has no {name} SPL extension")
        if info.spl[name] != report.reported_tcb[index]:
            raise VerificationFailed(
                "sev-snp tcb",
                f"reported TCB {name} {report.reported_tcb[index]} is not the {key}'s {info.spl[name]}",
            )


def _chip_id(report: SnpReport, info: amd.AmdCertInfo) -> None:
    if report.chip_id_masked:
        raise VerificationFailed("sev-snp chip id", "CHIP_ID is masked, so the report cannot be tied to a VCEK")
    if info.hwid is None or report.chip_id[: len(info.hwid)] != info.hwid:
        raise VerificationFailed("sev-snp chip id", "CHIP_ID is not the VCEK's hwID")


def claims_of(report: SnpReport, product: str, runtime_data: bytes | None = None) -> SnpClaims:
    return SnpClaims(
        version=report.version,
        product=product,
        signing_key=report.signing_key,
        guest_svn=report.guest_svn,
        policy=decode_policy(report.policy),
        family_id=report.family_id,
        image_id=report.image_id,
        vmpl=report.vmpl,
        measurement=report.measurement,
        host_data=report.host_data,
        id_key_digest=report.id_key_digest,
        author_key_digest=report.author_key_digest,
        report_id=report.report_id,
        report_id_ma=report.report_id_ma,
        report_data=report.report_data,
        chip_id=report.chip_id,
        platform_info=report.platform_info,
        reported_tcb=decode_tcb(report.reported_tcb, product),
        committed_tcb=decode_tcb(report.committed_tcb, product),
        current_tcb=decode_tcb(report.current_tcb, product),
        launch_tcb=decode_tcb(report.launch_tcb, product),
        current_version="{}.{}.{}".format(*report.current_version),
        committed_version="{}.{}.{}".format(*report.committed_version),
        host_runtime_data=runtime_data,
    )
