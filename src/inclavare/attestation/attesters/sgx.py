"""The SGX attester: a PAL's local REPORT, turned into a DCAP quote by the host's aesmd.

The flow is rune's ``attest`` (docs/ratls.md, "SGX: PAL local report and aesmd") with the quote types of
today (ECDSA/DCAP rather than EPID):

1. aesmd ``InitQuoteEx`` gives the quoting enclave's TARGETINFO (512 bytes);
2. the enclave runtime's ``local_report(targetinfo, report_data)`` runs
   EREPORT (PAL v3 ``pal_get_local_report``) and returns a 432-byte REPORT;
3. aesmd ``GetQuoteSizeEx`` + ``GetQuoteEx`` turn the REPORT into a quote.

Checks on the way: the REPORT carries the requested REPORTDATA (the PAL API
v3 call has no report-data parameter, so a C PAL can only report zeros and
is refused here with the runtime's own message), and the quote's body is
that REPORT's body. Without aesmd the attester says "not supported on this
platform"; the wire format is in :mod:`.aesm`.
"""

from __future__ import annotations

from ...errors import InclavareError
from ..claims import Evidence, EvidenceKind, Tee
from ..errors import AttestationError, AttesterError, EvidenceFormatError
from ..formats import detect
from ..report_data import check_report_data
from .aesm import REPORT_SIZE, AesmClient
from .interface import AttesterOptions, LocalReporter
from .peek import claimed

REPORT_BODY_SIZE = 384  # sgx_report_body_t; REPORTDATA at +320 (Intel SDM Vol. 3D 38.15)
QUOTE_BODY_OFFSET = 48  # after the quote header (sgx_quote_3.h)


class SgxAttester:
    """DCAP quotes for the enclave behind ``runtime``."""

    name = "sgx"
    tee = Tee.SGX

    def __init__(self, runtime: LocalReporter, aesm: AesmClient | None = None) -> None:
        self.runtime = runtime
        self.aesm = aesm if aesm is not None else AesmClient()

    def __repr__(self) -> str:
        return f"SgxAttester({self.aesm!r})"

    @classmethod
    def from_options(cls, options: AttesterOptions) -> SgxAttester:
        if options.runtime is None:
            raise AttesterError("sgx attester: needs an SGX enclave runtime (a PAL v3 with pal_get_local_report)")
        return cls(options.runtime, AesmClient(options.aesm_socket))

    def collect_evidence(self, report_data: bytes) -> Evidence:
        data = check_report_data(self.name, report_data)
        target_info = self.aesm.qe_target_info()  # first: without aesmd there is nothing to do
        try:
            report = bytes(self.runtime.local_report(target_info, data))
        except AttestationError:
            raise
        except InclavareError as exc:
            raise AttesterError(f"sgx attester: local report: {exc}") from None
        if len(report) != REPORT_SIZE:
            raise AttesterError(f"sgx attester: local report is {len(report)} bytes, not {REPORT_SIZE}")
        if report[320:REPORT_BODY_SIZE] != data:
            raise AttesterError("sgx attester: the enclave's REPORT does not carry the requested report data")
        quote = self.aesm.get_quote(report)
        try:
            if detect(quote) != EvidenceKind.SGX_QUOTE:
                raise AttesterError(f"sgx attester: aesmd returned a {detect(quote).value}, not an SGX quote")
            carried = claimed(Evidence(EvidenceKind.SGX_QUOTE, quote)).report_data
        except EvidenceFormatError as exc:
            raise AttesterError(f"sgx attester: aesmd quote: {exc}") from None
        body = quote[QUOTE_BODY_OFFSET : QUOTE_BODY_OFFSET + REPORT_BODY_SIZE]
        if carried != data or body != report[:REPORT_BODY_SIZE]:
            raise AttesterError("sgx attester: the quote's report body is not the enclave's REPORT")
        return Evidence(EvidenceKind.SGX_QUOTE, quote)
