"""AWS Nitro Enclaves attestation documents.

Checks (AWS "Attestation document specification", 3.2 and 3.3):

1. syntax of the COSE_Sign1 and its payload (:mod:`..hazmat.nitro`);
2. ``cabundle[0]`` is the pinned AWS Nitro Enclaves root G1 (byte for byte);
   the chain root -> cabundle[1] -> ... -> cabundle[-1] -> certificate links
   by signature, every intermediate is a CA, and every certificate is valid
   at the verification instant (leaf certificates live about three hours);
3. the COSE_Sign1 ES384 signature verifies under the leaf's P-384 key over
   ``Sig_structure = ["Signature1", protected, h'', payload]``;
4. the document timestamp lies inside the leaf certificate's validity.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..claims import EvidenceKind, NitroClaims, TcbResult, Tee, VerifiedClaims, jsonable
from ..collateral import CollateralStore
from ..errors import EvidenceFormatError, VerificationFailed
from ..hazmat import certs as xc
from ..hazmat import roots
from ..hazmat.nitro import NitroDocument, parse_document


class NitroDocumentVerifier:
    kind = EvidenceKind.NITRO_DOCUMENT

    def inspect(self, data: bytes) -> dict[str, object]:
        doc = parse_document(data)
        out = jsonable(claims_of(doc))
        assert isinstance(out, dict)
        out["certificate_sha256"] = xc.fingerprint(_load(doc.certificate, "certificate"))
        out["cabundle"] = [xc.common_name(_load(c, "cabundle").subject) for c in doc.cabundle]
        return out

    def verify(self, data: bytes, *, at: datetime, collateral: CollateralStore) -> VerifiedClaims:
        doc = parse_document(data)
        leaf = _chain(doc, at)
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise VerificationFailed("nitro signature", "the leaf certificate key is not ECDSA P-384")
        if not xc.ecdsa_raw_verify(key, doc.cose.signature, doc.cose.to_be_signed(), hashes.SHA384()):
            raise VerificationFailed(
                "nitro signature", "COSE_Sign1 signature does not verify under the leaf certificate"
            )
        claims = claims_of(doc)
        if not leaf.not_valid_before_utc <= claims.timestamp <= leaf.not_valid_after_utc:
            raise VerificationFailed(
                "nitro timestamp", f"{xc.iso(claims.timestamp)} is outside the leaf certificate's validity"
            )
        return VerifiedClaims(kind=self.kind, tee=Tee.NITRO, claims=claims, tcb=TcbResult(status=None), verified_at=at)


def _load(der: bytes, what: str) -> x509.Certificate:
    return xc.load_certificates(der, f"nitro document: {what}", EvidenceFormatError)[0]


def _chain(doc: NitroDocument, at: datetime) -> x509.Certificate:
    anchor = roots.root("aws-nitro")
    bundle = [_load(c, f"cabundle[{i}]") for i, c in enumerate(doc.cabundle)]
    if not roots.is_pinned(bundle[0], "aws-nitro"):
        raise VerificationFailed("nitro chain", "cabundle[0] is not the pinned AWS Nitro Enclaves root G1")
    leaf = _load(doc.certificate, "certificate")
    xc.check_chain([leaf, *reversed(bundle[1:])], anchor, at, "nitro chain")
    return leaf


def claims_of(doc: NitroDocument) -> NitroClaims:
    stamp = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=doc.timestamp_ms)
    return NitroClaims(
        module_id=doc.module_id,
        digest=doc.digest,
        timestamp=stamp,
        pcrs=tuple(sorted(doc.pcrs.items())),
        user_data=doc.user_data,
        nonce=doc.nonce,
        public_key=doc.public_key,
    )
