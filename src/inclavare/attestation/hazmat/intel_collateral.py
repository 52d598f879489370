"""Intel PCS collateral: TCB info (SGX v2/v3, TDX v3) and enclave (QE / TD_QE) identity v2.

Formats: Intel PCS API v4, "Get TCB Info" and "Get Quoting Enclave Identity"
response bodies, ``{"tcbInfo": {...}, "signature": "<hex r||s>"}`` and
``{"enclaveIdentity": {...}, "signature": "..."}``. The signature is ECDSA
P-256/SHA-256 by the Intel SGX TCB Signing key over the exact bytes of the
``tcbInfo``/``enclaveIdentity`` value (see :mod:`.jsonspan`). Parsing is
strict: unknown statuses, wrong types and wrong lengths are CollateralError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..claims import TcbStatus
from ..errors import CollateralError
from .guard import contained
from .jsonspan import loads_strict, member_spans

LEVEL_STATUSES = frozenset(
    s for s in TcbStatus if s not in (TcbStatus.TD_RELAUNCH_ADVISED, TcbStatus.TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED)
)
IDENTITY_STATUSES = frozenset({TcbStatus.UP_TO_DATE, TcbStatus.OUT_OF_DATE, TcbStatus.REVOKED})


@dataclass(frozen=True)
class TcbLevel:
    sgx_components: tuple[int, ...]
    pce_svn: int
    tdx_components: tuple[int, ...] | None
    status: TcbStatus
    date: datetime
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class IdentityLevel:
    isv_svn: int
    status: TcbStatus
    date: datetime
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class TdxModuleIdentity:
    id: str
    mr_signer: bytes
    attributes: bytes
    attributes_mask: bytes
    levels: tuple[IdentityLevel, ...]


@dataclass(frozen=True)
class Signed:
    """The exact signed bytes and the raw r||s signature over them."""

    body: bytes
    signature: bytes


@dataclass(frozen=True)
class TcbInfo:
    signed: Signed
    id: str  # "SGX" or "TDX"
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    evaluation_data_number: int
    levels: tuple[TcbLevel, ...]
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]


@dataclass(frozen=True)
class EnclaveIdentity:
    signed: Signed
    id: str  # "QE", "TD_QE", "QVE"
    version: int
    issue_date: datetime
    next_update: datetime
    evaluation_data_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mr_signer: bytes
    isv_prod_id: int
    levels: tuple[IdentityLevel, ...]


def split_pcs_body(data: bytes, member: str, what: str) -> Signed:
    """``{"<member>": {...}, "signature": "hex"}`` -> the exact member bytes and the signature."""
    with contained(what, CollateralError):
        return _split(data, member, what)


def _split(data: bytes, member: str, what: str) -> Signed:
    spans = member_spans(data, what)
    if set(spans) != {member, "signature"}:
        raise CollateralError(f"{what}: members must be exactly {member!r} and 'signature', not {sorted(spans)}")
    sig = loads_strict(spans["signature"], what)
    return Signed(spans[member], _hex(sig, f"{what}: signature", 64))


def parse_tcb_info(signed: Signed, what: str = "tcb info") -> TcbInfo:
    with contained(what, CollateralError):
        return _tcb_info(signed, what)


def _tcb_info(signed: Signed, what: str) -> TcbInfo:
    doc = _obj(loads_strict(signed.body, what), what)
    version = _int(doc, "version", what)
    if version not in (2, 3):
        raise CollateralError(f"{what}: version {version} is not supported (2, 3)")
    if doc.get("tcbType", 0) != 0:
        raise CollateralError(
            f"{what}: tcbType {doc.get('tcbType')!r} is not supported (0: components compared as SVNs)"
        )
    tcb_id = doc.get("id", "SGX") if version == 3 else "SGX"
    if tcb_id not in ("SGX", "TDX"):
        raise CollateralError(f"{what}: id {tcb_id!r} is not SGX or TDX")
    levels = tuple(
        _tcb_level(lv, version, f"{what}: tcbLevels[{i}]") for i, lv in enumerate(_list(doc, "tcbLevels", what))
    )
    if not levels:
        raise CollateralError(f"{what}: tcbLevels is empty")
    module = _module(doc["tdxModule"], "TDX", f"{what}: tdxModule", False) if "tdxModule" in doc else None
    idents = tuple(
        _module(m, None, f"{what}: tdxModuleIdentities[{i}]", True)
        for i, m in enumerate(_list(doc, "tdxModuleIdentities", what) if "tdxModuleIdentities" in doc else [])
    )
    return TcbInfo(
        signed=signed,
        id=tcb_id,
        version=version,
        issue_date=_date(doc, "issueDate", what),
        next_update=_date(doc, "nextUpdate", what),
        fmspc=_hex(doc.get("fmspc"), f"{what}: fmspc", 6),
        pce_id=_hex(doc.get("pceId"), f"{what}: pceId", 2),
        evaluation_data_number=_int(doc, "tcbEvaluationDataNumber", what),
        levels=levels,
        tdx_module=module,
        tdx_module_identities=idents,
    )


def parse_enclave_identity(signed: Signed, what: str = "qe identity") -> EnclaveIdentity:
    with contained(what, CollateralError):
        return _enclave_identity(signed, what)


def _enclave_identity(signed: Signed, what: str) -> EnclaveIdentity:
    doc = _obj(loads_strict(signed.body, what), what)
    version = _int(doc, "version", what)
    if version != 2:
        raise CollateralError(f"{what}: version {version} is not supported (2)")
    ident = doc.get("id")
    if ident not in ("QE", "TD_QE", "QVE"):
        raise CollateralError(f"{what}: id {ident!r} is not QE, TD_QE or QVE")
    levels = tuple(
        _identity_level(lv, f"{what}: tcbLevels[{i}]", IDENTITY_STATUSES)
        for i, lv in enumerate(_list(doc, "tcbLevels", what))
    )
    return EnclaveIdentity(
        signed=signed,
        id=ident,
        version=version,
        issue_date=_date(doc, "issueDate", what),
        next_update=_date(doc, "nextUpdate", what),
        evaluation_data_number=_int(doc, "tcbEvaluationDataNumber", what),
        miscselect=_hex(doc.get("miscselect"), f"{what}: miscselect", 4),
        miscselect_mask=_hex(doc.get("miscselectMask"), f"{what}: miscselectMask", 4),
        attributes=_hex(doc.get("attributes"), f"{what}: attributes", 16),
        attributes_mask=_hex(doc.get("attributesMask"), f"{what}: attributesMask", 16),
        mr_signer=_hex(doc.get("mrsigner"), f"{what}: mrsigner", 32),
        isv_prod_id=_int(doc, "isvprodid", what),
        levels=levels,
    )


def _tcb_level(raw: object, version: int, what: str) -> TcbLevel:
    lv = _obj(raw, what)
    tcb = _obj(lv.get("tcb"), f"{what}.tcb")
    if version == 2:
        sgx = tuple(_int(tcb, f"sgxtcbcomp{i:02d}svn", f"{what}.tcb") for i in range(1, 17))
        tdx = None
    else:
        sgx = _components(tcb, "sgxtcbcomponents", f"{what}.tcb")
        tdx = _components(tcb, "tdxtcbcomponents", f"{what}.tcb") if "tdxtcbcomponents" in tcb else None
    return TcbLevel(
        sgx_components=sgx,
        pce_svn=_int(tcb, "pcesvn", f"{what}.tcb"),
        tdx_components=tdx,
        status=_status(lv, what, LEVEL_STATUSES),
        date=_date(lv, "tcbDate", what),
        advisory_ids=_advisories(lv, what),
    )


def _identity_level(raw: object, what: str, allowed: frozenset[TcbStatus]) -> IdentityLevel:
    lv = _obj(raw, what)
    return IdentityLevel(
        isv_svn=_int(_obj(lv.get("tcb"), f"{what}.tcb"), "isvsvn", f"{what}.tcb"),
        status=_status(lv, what, allowed),
        date=_date(lv, "tcbDate", what),
        advisory_ids=_advisories(lv, what),
    )


def _module(raw: object, default_id: str | None, what: str, with_levels: bool) -> TdxModuleIdentity:
    m = _obj(raw, what)
    ident = m.get("id", default_id)
    if not isinstance(ident, str):
        raise CollateralError(f"{what}: id must be a string")
    levels = (
        tuple(
            _identity_level(lv, f"{what}.tcbLevels[{i}]", IDENTITY_STATUSES)
            for i, lv in enumerate(_list(m, "tcbLevels", what))
        )
        if with_levels
        else ()
    )
    return TdxModuleIdentity(
        id=ident,
        mr_signer=_hex(m.get("mrsigner"), f"{what}: mrsigner", 48),
        attributes=_hex(m.get("attributes"), f"{what}: attributes", 8),
        attributes_mask=_hex(m.get("attributesMask"), f"{what}: attributesMask", 8),
        levels=levels,
    )


def _components(tcb: dict[str, object], key: str, what: str) -> tuple[int, ...]:
    items = _list(tcb, key, what)
    if len(items) != 16:
        raise CollateralError(f"{what}.{key}: must have 16 entries, not {len(items)}")
    return tuple(_int(_obj(c, f"{what}.{key}[{i}]"), "svn", f"{what}.{key}[{i}]") for i, c in enumerate(items))


def _obj(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise CollateralError(f"{what}: must be a JSON object")
    return value


def _list(doc: dict[str, object], key: str, what: str) -> list[object]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise CollateralError(f"{what}: {key} must be an array")
    return value


def _int(doc: dict[str, object], key: str, what: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
        raise CollateralError(f"{what}: {key} must be a non-negative integer")
    return value


def _hex(value: object, what: str, size: int) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * size:
        raise CollateralError(f"{what}: must be {size} bytes of hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise CollateralError(f"{what}: must be {size} bytes of hex") from None


def _date(doc: dict[str, object], key: str, what: str) -> datetime:
    value = doc.get(key)
    try:
        if not isinstance(value, str) or not value.endswith("Z"):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value[:-1])
    except ValueError:
        raise CollateralError(f"{what}: {key} must be an RFC 3339 UTC time like 2025-01-01T00:00:00Z") from None
    if parsed.tzinfo is not None:
        raise CollateralError(f"{what}: {key} must be UTC")
    return parsed.replace(tzinfo=UTC)


def _status(doc: dict[str, object], what: str, allowed: frozenset[TcbStatus]) -> TcbStatus:
    value = doc.get("tcbStatus")
    for status in allowed:
        if status.value == value:
            return status
    raise CollateralError(f"{what}: tcbStatus {value!r} is not a known status")


def _advisories(doc: dict[str, object], what: str) -> tuple[str, ...]:
    value = doc.get("advisoryIDs", [])
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise CollateralError(f"{what}: advisoryIDs must be an array of strings")
    return tuple(value)
