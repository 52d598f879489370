"""The Intel DCAP appraisal shared by the SGX and TDX verifiers.

Order of checks (Intel "ECDSA Quote Verification" 4.1.2.4, evidence-internal
checks first so a tampered quote is reported as such even without collateral):

1. PCK chain from the quote's certification data (type 5): leaf <- PCK
   Platform/Processor CA <- pinned Intel SGX Root CA, every link and
   validity window at the instant; a root inside the quote must be the
   pinned one.
2. QE report signature under the PCK leaf key; QE report data =
   SHA-256(attestation key || QE auth data) || 32 zero bytes.
3. Quote signature (header [+ v5 body descriptor] + body) under the
   attestation key.
4. Root CA CRL (signed by the root) and PCK CRL (issuer = the PCK leaf's
   issuer, signed by the PCK CA from the quote); neither PCK CA nor PCK leaf
   revoked. A revoked PCK yields status Revoked.
5. TCB info (SGX or TDX, for the PCK's FMSPC) and QE identity (QE or TD_QE):
   signed by Intel SGX TCB Signing (chain to the pinned root, not revoked),
   issued before the instant; FMSPC/PCE-ID/TEE type consistent.
6. QE identity match, TDX module identity, TCB-level matching and
   convergence (:mod:`..hazmat.tcb`).

Collateral past its nextUpdate is collected in ``expired`` (Intel's QVL
reports it as "collateral expiration status"); the recipe rejects it unless
the policy opts in. Everything else raises.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..claims import IntelPlatform, TcbResult, TcbStatus
from ..collateral import CollateralStore
from ..errors import CollateralError, EvidenceFormatError, VerificationFailed
from ..hazmat import certs as xc
from ..hazmat import roots, tcb
from ..hazmat.intel_collateral import EnclaveIdentity, Signed, TcbInfo
from ..hazmat.pck import PckExtensions, pck_extensions
from ..hazmat.quote import BODY_TD15, CERT_PCK_CHAIN, Quote
from ..hazmat.reports import TdReportBody

TCB_SIGNING_CN = "Intel SGX TCB Signing"
S = TcbStatus


@dataclass(frozen=True)
class DcapResult:
    pck: PckExtensions
    platform: IntelPlatform
    tcb: TcbResult
    expired: tuple[str, ...]


def appraise(quote: Quote, store: CollateralStore, at: datetime, anchor: x509.Certificate | None = None) -> DcapResult:
    """Run every DCAP check on a parsed quote (see the module docstring); ``anchor`` is for tests only."""
    anchor = anchor or roots.root("intel-sgx")
    t = quote.tee
    leaf, ca = _pck_chain(quote, anchor, at, t)
    pck = pck_extensions(leaf)
    _quote_signatures(quote, leaf, t)
    expired: list[str] = []
    root_crl = _crl(store, anchor, at, f"{t} root ca crl", expired)
    pck_crl = _crl(store, ca, at, f"{t} pck crl", expired)
    if xc.is_revoked(root_crl, ca):
        raise VerificationFailed(f"{t} pck chain", f"{xc.common_name(ca.subject)!r} is revoked by the root CA CRL")
    signer = _tcb_signer(store, anchor, root_crl, at, t)
    tcb_info = _tcb_info(store, t, pck, signer, at, expired)
    identity = _qe_identity(store, t, signer, at, expired)
    level = tcb.check_qe_identity(identity, quote.qe_report, f"{t} qe identity")
    result = _tcb_status(quote, pck, tcb_info, level.status, t)
    components = result[1] + (("qe", level.status),)
    advisories = tcb.merge_advisories(result[2], level.advisory_ids)
    status = S.REVOKED if xc.is_revoked(pck_crl, leaf) else result[0]
    return DcapResult(
        pck=pck,
        platform=IntelPlatform(
            fmspc=pck.fmspc,
            pce_id=pck.pce_id,
            pce_svn=pck.pce_svn,
            cpu_svn=pck.cpu_svn,
            tcb_components=pck.tcb_components,
            ca="processor" if "Processor" in xc.common_name(ca.subject) else "platform",
        ),
        tcb=TcbResult(
            status=status,
            advisory_ids=advisories,
            tcb_date=result[3],
            components=components,
            evaluation_data_number=tcb_info.evaluation_data_number,
        ),
        expired=tuple(expired),
    )


def _pck_chain(
    quote: Quote, anchor: x509.Certificate, at: datetime, t: str
) -> tuple[x509.Certificate, x509.Certificate]:
    check = f"{t} pck chain"
    if quote.cert_data_type != CERT_PCK_CHAIN:
        raise EvidenceFormatError(
            f"{t} quote: certification data type {quote.cert_data_type} is not supported "
            "(offline verification needs type 5, the PEM PCK certificate chain)"
        )
    chain = xc.load_certificates(quote.cert_data, f"{t} quote: PCK certificate chain", EvidenceFormatError)
    if len(chain) == 3:
        if chain[2] != anchor:  # DER equality
            raise VerificationFailed(check, "the root certificate in the quote is not the pinned Intel SGX Root CA")
        chain = chain[:2]
    if len(chain) != 2:
        raise EvidenceFormatError(f"{t} quote: PCK chain must be leaf, PCK CA [, root], not {len(chain)} certificates")
    leaf, ca = chain
    if "SGX PCK Certificate" not in xc.common_name(leaf.subject):
        raise VerificationFailed(check, f"leaf {xc.common_name(leaf.subject)!r} is not an SGX PCK certificate")
    xc.check_chain(chain, anchor, at, check)
    return leaf, ca


def _quote_signatures(quote: Quote, leaf: x509.Certificate, t: str) -> None:
    pck_key = leaf.public_key()
    if not isinstance(pck_key, ec.EllipticCurvePublicKey) or not xc.ecdsa_raw_verify(
        pck_key, quote.qe_report_signature, quote.qe_report.raw, hashes.SHA256()
    ):
        raise VerificationFailed(f"{t} quote", "QE report signature does not verify under the PCK certificate")
    digest = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    if quote.qe_report.report_data != digest + bytes(32):
        raise VerificationFailed(
            f"{t} quote", "QE report data is not SHA-256(attestation key || QE auth data) || zeros"
        )
    att_key = xc.p256_from_raw(quote.attestation_key)
    if att_key is None or not xc.ecdsa_raw_verify(att_key, quote.signature, quote.signed_data, hashes.SHA256()):
        raise VerificationFailed(f"{t} quote", "quote signature does not verify under the attestation key")


def _crl(
    store: CollateralStore, issuer: x509.Certificate, at: datetime, check: str, expired: list[str]
) -> x509.CertificateRevocationList:
    crl = store.crl(issuer, at)
    if crl is None:
        raise CollateralError(f"{check}: no CRL issued by {xc.common_name(issuer.subject)!r} in the collateral")
    if not xc.check_crl(crl, issuer, at, check) and crl.next_update_utc is not None:
        expired.append(f"{check.split(' ', 1)[1]} (nextUpdate {xc.iso(crl.next_update_utc)})")
    return crl


def _tcb_signer(
    store: CollateralStore, anchor: x509.Certificate, root_crl: x509.CertificateRevocationList, at: datetime, t: str
) -> x509.Certificate:
    """The Intel SGX TCB Signing certificate valid at ``at`` (it was re-issued with the same key)."""
    check = f"{t} tcb signing chain"
    candidates = [c for c in store.certificates_named(TCB_SIGNING_CN) if c != anchor]
    if not candidates:
        raise CollateralError(f"{check}: no {TCB_SIGNING_CN!r} certificate in the collateral")
    failure: VerificationFailed | None = None
    for cert in sorted(candidates, key=lambda c: c.not_valid_before_utc, reverse=True):
        try:
            xc.check_chain([cert], anchor, at, check)
        except VerificationFailed as exc:
            failure = failure or exc
            continue
        if xc.is_revoked(root_crl, cert):
            raise VerificationFailed(check, f"{TCB_SIGNING_CN!r} is revoked by the root CA CRL")
        return cert
    assert failure is not None
    raise failure


@lru_cache(maxsize=1024)
def _signed_by(signed: Signed, signer: x509.Certificate) -> bool:
    """TCB info / QE identity signature (memoised: a pure function of the bytes)."""
    key = signer.public_key()
    return isinstance(key, ec.EllipticCurvePublicKey) and xc.ecdsa_raw_verify(
        key, signed.signature, signed.body, hashes.SHA256()
    )


def _check_signed(signed: Signed, signer: x509.Certificate, check: str) -> None:
    if not _signed_by(signed, signer):
        raise VerificationFailed(check, f"signature does not verify under {TCB_SIGNING_CN!r}")


def _window(issue: datetime, next_update: datetime, at: datetime, check: str, name: str, expired: list[str]) -> None:
    if issue > at:
        raise VerificationFailed(check, f"issued {xc.iso(issue)}, after the verification instant {xc.iso(at)}")
    if at > next_update:
        expired.append(f"{name} (nextUpdate {xc.iso(next_update)})")


def _tcb_info(
    store: CollateralStore, t: str, pck: PckExtensions, signer: x509.Certificate, at: datetime, expired: list[str]
) -> TcbInfo:
    check = f"{t} tcb info"
    info = store.tcb_info(t.upper(), pck.fmspc, at)
    if info is None:
        raise CollateralError(f"{check}: no {t.upper()} TCB info for FMSPC {pck.fmspc.hex().upper()} in the collateral")
    _check_signed(info.signed, signer, check)
    _window(info.issue_date, info.next_update, at, check, "tcb_info", expired)
    if info.pce_id != pck.pce_id:
        raise VerificationFailed(check, f"PCE-ID {info.pce_id.hex()} is not the PCK certificate's {pck.pce_id.hex()}")
    if t == "tdx" and info.version < 3:
        raise VerificationFailed(check, f"version {info.version} cannot appraise a TDX quote")
    return info


def _qe_identity(
    store: CollateralStore, t: str, signer: x509.Certificate, at: datetime, expired: list[str]
) -> EnclaveIdentity:
    check = f"{t} qe identity"
    ident = "TD_QE" if t == "tdx" else "QE"
    identity = store.qe_identity(ident, at)
    if identity is None:
        raise CollateralError(f"{check}: no {ident} identity in the collateral")
    _check_signed(identity.signed, signer, check)
    _window(identity.issue_date, identity.next_update, at, check, "qe_identity", expired)
    return identity


_Status = tuple[TcbStatus, tuple[tuple[str, TcbStatus], ...], tuple[str, ...], datetime]


def _tcb_status(quote: Quote, pck: PckExtensions, info: TcbInfo, qe: TcbStatus, t: str) -> _Status:
    check = f"{t} tcb"
    sgx_level = tcb.match_sgx_level(info, pck)
    if sgx_level is None:
        raise VerificationFailed(check, "no TCB level of the TCB info matches the platform (TCB not supported)")
    if t == "sgx":
        return (
            tcb.converge_qe(sgx_level.status, qe),
            (("platform", sgx_level.status),),
            sgx_level.advisory_ids,
            sgx_level.date,
        )
    body = quote.body
    assert isinstance(body, TdReportBody)
    module_status, module_advisories = _tdx_module(info, body, check)
    tdx_level = tcb.match_tdx_level(info, pck, body.tee_tcb_svn)
    if tdx_level is None:
        raise VerificationFailed(
            check, "no TCB level of the TCB info matches the platform and TEE TCB SVN (TCB not supported)"
        )
    status = tcb.converge_module(tdx_level.status, module_status)
    if status != S.REVOKED and quote.body_type == BODY_TD15 and body.tee_tcb_svn2 is not None:
        status = tcb.relaunch_advice(body.tee_tcb_svn2, info, sgx_level.status, status, module_status, qe, check)
    components = (("platform", tdx_level.status), ("tdx_module", module_status))
    return (
        tcb.converge_qe(status, qe),
        components,
        tcb.merge_advisories(tdx_level.advisory_ids, module_advisories),
        tdx_level.date,
    )


def _tdx_module(info: TcbInfo, body: TdReportBody, check: str) -> tuple[TcbStatus, tuple[str, ...]]:
    """TDX module identity (QVL 4.1.2.4.11 and TdxModuleCheck): signer, attributes, module TCB level."""
    version = body.tee_tcb_svn[1]
    identity = tcb.tdx_module_identity(info, version) if version > 0 else info.tdx_module
    if identity is None:
        wanted = f"TDX_{version:02X}" if version > 0 else "tdxModule"
        raise VerificationFailed(check, f"the TCB info has no TDX module identity {wanted}")
    if body.mr_signer_seam != identity.mr_signer:
        raise VerificationFailed(check, f"MRSIGNERSEAM does not match TDX module identity {identity.id}")
    masked = bytes(a & m for a, m in zip(body.seam_attributes, identity.attributes_mask, strict=True))
    if any(body.seam_attributes) or masked != identity.attributes:
        raise VerificationFailed(check, f"SEAM attributes do not match TDX module identity {identity.id}")
    if version == 0:
        return S.UP_TO_DATE, ()
    level = tcb.identity_level(identity.levels, body.tee_tcb_svn[0])
    if level is None:
        raise VerificationFailed(
            check, f"TDX module SVN {body.tee_tcb_svn[0]} is below every level of {identity.id} (not supported)"
        )
    return level.status, level.advisory_ids


def reject_revoked(result: DcapResult, t: str) -> None:
    """Revoked is never acceptable, whatever the policy says (Intel: SGX_QL_QV_RESULT_REVOKED)."""
    if result.tcb.status != S.REVOKED:
        return
    revoked = [name for name, status in result.tcb.components if status == S.REVOKED]
    why = (
        f"TCB status is Revoked ({', '.join(revoked)})" if revoked else "the PCK certificate is revoked by the PCK CRL"
    )
    raise VerificationFailed(f"{t} tcb", why)
