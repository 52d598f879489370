"""RA-TLS certificates: a self-signed X.509 certificate whose extension carries TEE evidence.

Checks: the certificate is self-signed (its own key verifies it, over the
TBS bytes as received; :mod:`..hazmat.x509lite` reads certificates that
strict parsers refuse) and valid at the instant; exactly one evidence extension (:mod:`..hazmat.ratls`); the
evidence inside passes its own verifier in full (SGX/TDX quote, SNP
report or software evidence, with the same collateral and instant); the extension's declared TEE
matches the evidence; and the evidence's REPORT_DATA binds the certificate's
public key (rats-tls's current form: SHA-256 of the DICE claims buffer, whose
``pubkey-hash`` is the key's hash; older forms in :mod:`..hazmat.ratls`).
The result carries the inner claims and ``bound_key`` = the SPKI.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from datetime import datetime

from ..claims import EvidenceKind, VerifiedClaims
from ..collateral import CollateralStore
from ..errors import EvidenceFormatError, VerificationFailed
from ..formats import detect
from ..hazmat import certs as xc
from ..hazmat import ratls, x509lite
from .interface import Verifier

_INNER = {
    "sgx": {EvidenceKind.SGX_QUOTE},
    "tdx": {EvidenceKind.TDX_QUOTE},
    "intel": {EvidenceKind.SGX_QUOTE, EvidenceKind.TDX_QUOTE},
    "sev-snp": {EvidenceKind.SNP_REPORT},
    "software": {EvidenceKind.SOFTWARE},
}


class RatlsCertificateVerifier:
    """Verifies the certificate, then hands the evidence inside to ``inner`` (kind -> verifier).

    The registry passes its verifiers of plain evidence, so this module needs
    no import of the registry, and a certificate inside a certificate has no
    verifier at all.
    """

    kind = EvidenceKind.RATLS_CERTIFICATE

    def __init__(self, inner: Mapping[EvidenceKind, Verifier]) -> None:
        self._inner = inner

    def inspect(self, data: bytes) -> dict[str, object]:
        cert = x509lite.load(data)
        ev = ratls.extract(cert)
        inner_kind = _inner_kind(ev)
        return {
            "subject": cert.subject_text,
            "not_before": xc.iso(cert.not_before),
            "not_after": xc.iso(cert.not_after),
            "self_signed": x509lite.self_signed(cert),
            "public_key_sha256": hashlib.sha256(cert.spki).hexdigest(),
            "evidence_encoding": ev.encoding,
            "evidence_form": ev.form,
            "evidence_oid": ev.oid,
            "evidence_tag": None if ev.tag is None else hex(ev.tag),
            "libcbor_slack": ev.slack,
            "custom_claims": {k: v.hex() for k, v in ratls.custom_claims(ev).items()},
            "evidence_kind": inner_kind.value,
            "evidence": self._inner[inner_kind].inspect(ev.evidence),
        }

    def verify(self, data: bytes, *, at: datetime, collateral: CollateralStore) -> VerifiedClaims:
        cert = x509lite.load(data)
        if not x509lite.self_signed(cert):
            raise VerificationFailed("ratls certificate", f"{cert.subject_text!r} is not self-signed by its own key")
        if not cert.not_before <= at <= cert.not_after:
            raise VerificationFailed(
                "ratls certificate",
                f"{cert.subject_text!r} is not valid at {xc.iso(at)} "
                f"(valid {xc.iso(cert.not_before)} .. {xc.iso(cert.not_after)})",
            )
        ev = ratls.extract(cert)
        inner_kind = _inner_kind(ev)
        inner = self._inner[inner_kind].verify(ev.evidence, at=at, collateral=collateral)
        spki = cert.spki
        prefix, rule = ratls.expected_binding(ev, spki)
        report_data = inner.claims.report_data or b""
        if not ratls.binds(report_data, prefix):
            raise VerificationFailed(
                "ratls certificate", f"REPORT_DATA does not bind the certificate key ({rule} || zeros)"
            )
        return dataclasses.replace(inner, kind=self.kind, inner_kind=inner_kind, bound_key=spki)


def _inner_kind(ev: ratls.RatlsEvidence) -> EvidenceKind:
    kind = detect(ev.evidence)
    if kind not in _INNER[ev.tee_hint]:
        raise EvidenceFormatError(
            f"ratls certificate: extension {ev.oid} declares {ev.tee_hint} evidence but holds a {kind.value}"
        )
    return kind
