"""What the SGX and TDX quote verifiers share: one DCAP quote, two kinds of report body.

Both parse the quote, insist on their body type, run the whole DCAP
appraisal (:mod:`._dcap`), refuse a revoked TCB whatever the policy says,
and map the body to claims; only that last step differs, so a subclass names
its evidence kind, TEE and body type and writes :meth:`DcapQuoteVerifier.claims`.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Generic, TypeVar

from ..claims import EvidenceKind, IntelPlatform, Tee, TeeClaims, VerifiedClaims
from ..collateral import CollateralStore
from ..errors import EvidenceFormatError
from ..hazmat.quote import parse_quote
from ..hazmat.reports import SgxReportBody, TdReportBody
from . import _dcap
from ._describe import describe_quote

Body = TypeVar("Body", SgxReportBody, TdReportBody)


class DcapQuoteVerifier(Generic[Body]):
    kind: EvidenceKind
    tee: ClassVar[Tee]
    body_type: type[Body]
    wrong_body: ClassVar[str]  # the refusal of a quote that carries the other kind of body

    def inspect(self, data: bytes) -> dict[str, object]:
        return describe_quote(parse_quote(data, allow_trailing_garbage=True))

    def verify(self, data: bytes, *, at: datetime, collateral: CollateralStore) -> VerifiedClaims:
        quote = parse_quote(data)
        body = quote.body
        if not isinstance(body, self.body_type):
            raise EvidenceFormatError(self.wrong_body)
        result = _dcap.appraise(quote, collateral, at)
        _dcap.reject_revoked(result, self.tee.value)
        return VerifiedClaims(
            kind=self.kind,
            tee=self.tee,
            claims=self.claims(body, result.platform),
            tcb=result.tcb,
            verified_at=at,
            expired_collateral=result.expired,
        )

    def claims(self, body: Body, platform: IntelPlatform) -> TeeClaims:
        raise NotImplementedError
