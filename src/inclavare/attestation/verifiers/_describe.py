"""JSON descriptions of parsed (unverified) DCAP quotes, for ``inspect``."""

from __future__ import annotations

from ..claims import jsonable
from ..errors import AttestationError
from ..hazmat import certs as xc
from ..hazmat.pck import pck_extensions
from ..hazmat.quote import CERT_PCK_CHAIN, Quote
from ..hazmat.reports import SgxReportBody, TdReportBody


def describe_quote(q: Quote) -> dict[str, object]:
    out: dict[str, object] = {
        "header": jsonable(q.header),
        "body_type": q.body_type,
        "body": _body(q.body),
        "qe_report": _body(q.qe_report),
        "qe_auth_data": q.qe_auth_data.hex(),
        "attestation_key": q.attestation_key.hex(),
        "certification_data_type": q.cert_data_type,
        "size": len(q.raw),
        "trailing_bytes": len(q.trailing),
        "trailing_bytes_all_zero": not any(q.trailing),
    }
    if q.cert_data_type == CERT_PCK_CHAIN:
        out["pck_chain"] = _chain(q.cert_data)
    return out


def _body(body: SgxReportBody | TdReportBody) -> dict[str, object]:
    fields = jsonable(body)
    assert isinstance(fields, dict)
    fields.pop("raw", None)
    fields["debug"] = body.debug
    return fields


def _chain(data: bytes) -> object:
    try:
        chain = xc.load_certificates(data, "PCK chain", AttestationError)
    except AttestationError as exc:
        return {"error": str(exc)}
    out: list[dict[str, object]] = []
    for cert in chain:
        subject = xc.common_name(cert.subject)
        item: dict[str, object] = {
            "subject": subject,
            "issuer": xc.common_name(cert.issuer),
            "not_before": xc.iso(cert.not_valid_before_utc),
            "not_after": xc.iso(cert.not_valid_after_utc),
            "sha256": xc.fingerprint(cert),
        }
        if "PCK Certificate" in subject:
            try:
                item["sgx_extensions"] = jsonable(pck_extensions(cert))
            except AttestationError as exc:
                item["sgx_extensions"] = {"error": str(exc)}
        out.append(item)
    return out
