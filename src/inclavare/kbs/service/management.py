"""The admin API: resources, policies, reference values and the audit log.

Every call starts with :meth:`AdminService.authenticate` (Ed25519 JWT, see
:mod:`inclavare.kbs.admin`) and checks the admin's scopes: resources and
resource policies need a scope covering their path or scope; the
attestation policy, reference values, collateral and the audit log need ``*``. Every
change writes an audit record in the same transaction. Request bodies
follow trustee where it has one:

    POST /kbs/v0/attestation-policy  {"type": "rego", "policy_id": "default", "policy": "<base64>"}
                                     or {"builtin": "allow-software", "policy_id": "default"}
    POST /kbs/v0/resource-policy     {"policy": "<base64>", "scope": "tenant-a/*"} (scope defaults to "*")
                                     or {"builtin": "affirming", "scope": ...}
    POST /kbs/v0/reference-value     {"name": "software.measurement", "values": ["<hex>"], "expires": <epoch s> | null}
    POST /kbs/v0/reference-value/<name>/expire  {"value": "<hex>" (optional), "at": <epoch s> (default: now)}
    POST /kbs/v0/collateral[?kind=host-key]     the bytes of one collateral file (service/collateral.py)

Reference values of byte claims (``<tee>.measurement``, ``.signer``,
``.report_data``, ``.mr_enclave``, ``.host_data``...) are stored the way the
attestation policy sees the claims: lower-case hex without a prefix. They
are accepted as dcap-qvl and Automata print them too (``0x``, upper case);
a value that is not hex is refused rather than stored to never match.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from ...attestation import claims
from ...attestation.hazmat.hextext import canonical_hex
from ..admin import GLOBAL, Admin, valid_scope
from ..errors import AdminForbidden, InvalidRequest, PolicyInvalid
from ..policy import ATTESTATION_POLICIES, RESOURCE_POLICIES, check_module, check_path
from ..protocol.messages import decode_b64, parse_json
from ..storage import AuditRecord
from .collateral import classify
from .deps import Deps

_RV_NAME = re.compile(r"^[a-z0-9-]{1,32}\.[a-z0-9_]{1,64}$")
_ITEM_ID = re.compile(r"^[0-9a-f]{64}$")
_POLICY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_VALUES = 1024
# Claims that are byte strings: the policy input renders them as lower-case hex (VerifiedClaims.to_json).
BYTE_CLAIMS = frozenset(
    {"measurement", "signer", "report_data"}
    | {
        f.name
        for cls in (claims.SgxClaims, claims.TdxClaims, claims.SnpClaims, claims.NitroClaims, claims.SoftwareClaims)
        for f in dataclasses.fields(cls)
        if str(f.type).startswith("bytes")
    }
)


class AdminService:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def authenticate(self, authorization: str | None) -> Admin:
        return self.d.admins.authenticate(authorization, self.d.clock())

    def _record(self, admin: Admin, event: str, source: str, **fields: object) -> AuditRecord:
        return self.d.audit.record(self.d.clock(), event, "ok", subject=f"admin:{admin.name}", source=source, **fields)

    # -- resources -----------------------------------------------------------
    def set_resource(self, admin: Admin, parts: tuple[str, str, str], value: bytes, source: str) -> str:
        path = check_path(*parts)
        admin.require(path)
        if not value:
            raise InvalidRequest(f"resource {path}: must not be empty")
        record = self._record(admin, "resource.set", source, resource=path, detail=f"{len(value)} bytes")
        self.d.storage.put_resource(path, value, self.d.clock(), record)
        self.d.metrics.resource_writes.labels(path.split("/", 1)[0]).inc()
        self.d.audit.emit(record)
        return path

    def delete_resource(self, admin: Admin, parts: tuple[str, str, str], source: str) -> bool:
        path = check_path(*parts)
        admin.require(path)
        record = self._record(admin, "resource.delete", source, resource=path)
        gone = self.d.storage.delete_resource(path, record)
        self.d.audit.emit(record)
        return gone

    def list_resources(self, admin: Admin) -> list[str]:
        return [p for p in self.d.storage.list_resources() if _visible(admin, p)]

    # -- policies ------------------------------------------------------------
    def set_attestation_policy(self, admin: Admin, body: bytes, source: str) -> str:
        admin.require(GLOBAL)
        doc = parse_json(body, "attestation-policy")
        policy_id = _string(doc, "policy_id", "attestation-policy", "default")
        if not _POLICY_ID.fullmatch(policy_id):
            raise InvalidRequest("attestation-policy: policy_id: 1-64 of A-Z a-z 0-9 . _ -")
        if doc.get("type", "rego") != "rego":
            raise InvalidRequest("attestation-policy: type: only 'rego' is supported")
        text = _policy_text(doc, ATTESTATION_POLICIES, "attestation-policy")
        self._store_policy(admin, "attestation", policy_id, text, source)
        return policy_id

    def set_resource_policy(self, admin: Admin, body: bytes, source: str) -> str:
        doc = parse_json(body, "resource-policy")
        scope = _string(doc, "scope", "resource-policy", GLOBAL)
        if not valid_scope(scope):
            raise InvalidRequest(f"resource-policy: scope: {scope[:40]!r} is not '*', 'repo/*' or a resource path")
        admin.require(scope)
        self._store_policy(admin, "resource", scope, _policy_text(doc, RESOURCE_POLICIES, "resource-policy"), source)
        return scope

    def _store_policy(self, admin: Admin, kind: str, name: str, text: str, source: str) -> None:
        check_module(text, f"{kind} policy {name}")
        record = self._record(admin, "policy.set", source, resource=f"{kind}:{name}")
        self.d.storage.put_policy(kind, name, text, self.d.clock(), record)
        self.d.audit.emit(record)

    def resource_policies(self, admin: Admin) -> dict[str, str]:
        return {s: t for s, t in self.d.storage.policies("resource").items() if _visible(admin, s)}

    def delete_resource_policy(self, admin: Admin, scope: str, source: str) -> bool:
        admin.require(scope)
        record = self._record(admin, "policy.delete", source, resource=f"resource:{scope}")
        gone = self.d.storage.delete_policy("resource", scope, record)
        self.d.audit.emit(record)
        return gone

    def attestation_policies(self, admin: Admin) -> dict[str, str]:
        admin.require(GLOBAL)
        return {**ATTESTATION_POLICIES, **self.d.storage.policies("attestation")}

    # -- reference values ------------------------------------------------------
    def add_reference_values(self, admin: Admin, body: bytes, source: str) -> dict[str, object]:
        admin.require(GLOBAL)
        doc = parse_json(body, "reference-value")
        name = _rv_name(_string(doc, "name", "reference-value"))
        values = doc.get("values")
        if not isinstance(values, list) or not values or len(values) > MAX_VALUES:
            raise InvalidRequest(f"reference-value: values: 1 to {MAX_VALUES} strings")
        if not all(isinstance(v, str) and 0 < len(v) <= 512 for v in values):
            raise InvalidRequest("reference-value: values: each a non-empty string of at most 512 characters")
        values = [reference_value(name, v, "reference-value: values") for v in values]
        expires = _time(doc.get("expires"), "reference-value: expires")
        record = self._record(admin, "reference.set", source, resource=name, detail=f"{len(values)} value(s)")
        self.d.storage.put_reference_values(name, list(values), expires, self.d.clock(), record)
        self.d.audit.emit(record)
        return {"name": name, "values": values, "expires": expires}

    def list_reference_values(self, admin: Admin, name: str | None = None) -> list[dict[str, object]]:
        admin.require(GLOBAL)
        now = self.d.clock()
        return [
            {
                "name": rv.name,
                "value": rv.value,
                "expires": rv.expires_at,
                "created": rv.created_at,
                "live": rv.live(now),
            }
            for rv in self.d.storage.reference_values(name)
        ]

    def expire_reference_values(self, admin: Admin, name: str, body: bytes, source: str) -> int:
        admin.require(GLOBAL)
        doc = parse_json(body or b"{}", "expire")
        value = doc.get("value")
        if value is not None and not isinstance(value, str):
            raise InvalidRequest("expire: value: must be a string")
        at = _time(doc.get("at"), "expire: at")
        record = self._record(admin, "reference.expire", source, resource=_rv_name(name))
        value = None if value is None else reference_value(name, value, "expire: value")
        count = self.d.storage.expire_reference_values(name, value, self.d.clock() if at is None else at, record)
        self.d.audit.emit(record)
        return count

    def delete_reference_values(self, admin: Admin, name: str, value: str | None, source: str) -> int:
        admin.require(GLOBAL)
        record = self._record(admin, "reference.delete", source, resource=_rv_name(name))
        value = None if value is None else reference_value(name, value, "value")
        count = self.d.storage.delete_reference_values(name, value, record)
        self.d.audit.emit(record)
        return count

    # -- collateral (service/collateral.py) --------------------------------------
    def add_collateral(self, admin: Admin, body: bytes, kind: str | None, source: str) -> dict[str, object]:
        """Classify and store one item; ``kind`` (``?kind=host-key``) refuses anything else."""
        admin.require(GLOBAL)
        item = classify(body, self.d.clock())
        if kind is not None and item.kind != kind:
            raise InvalidRequest(f"collateral: this is a {item.kind}, not a {kind[:20]}")
        record = self._record(admin, "collateral.add", source, resource=f"{item.kind}:{item.id[:16]}")
        added = self.d.storage.put_collateral(item, record)
        self.d.collateral.invalidate()
        self.d.audit.emit(record)
        return {**item.to_json(), "added": added}

    def list_collateral(self, admin: Admin, kind: str | None) -> list[dict[str, object]]:
        admin.require(GLOBAL)
        _, items = self.d.storage.collateral()
        return [i.to_json() for i in items if kind is None or i.kind == kind]

    def delete_collateral(self, admin: Admin, item_id: str, source: str) -> bool:
        admin.require(GLOBAL)
        if not _ITEM_ID.fullmatch(item_id):
            raise InvalidRequest(f"collateral id {item_id[:80]!r}: must be 64 lower-case hex digits")
        record = self._record(admin, "collateral.delete", source, resource=item_id[:16])
        gone = self.d.storage.delete_collateral(item_id, record)
        self.d.collateral.invalidate()
        self.d.audit.emit(record)
        return gone

    # -- audit -----------------------------------------------------------------
    def audit_log(self, admin: Admin, since: int, limit: int) -> list[dict[str, object]]:
        admin.require(GLOBAL)
        return [r.to_json() for r in self.d.storage.audit_log(since, max(1, min(limit, 1000)))]


def _visible(admin: Admin, target: str) -> bool:
    try:
        admin.require(target)
    except AdminForbidden:
        return False
    return True


def _string(doc: Mapping[str, object], key: str, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{where}: {key}: must be a non-empty string")
    return value


def _policy_text(doc: Mapping[str, object], builtins: Mapping[str, str], where: str) -> str:
    builtin = doc.get("builtin")
    if builtin is not None:
        if builtin not in builtins:
            raise PolicyInvalid(f"{where}: builtin: {str(builtin)[:40]!r} is not one of {', '.join(builtins)}")
        return builtins[str(builtin)]
    try:
        return decode_b64(_string(doc, "policy", where)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(f"{where}: policy: must be base64 of UTF-8 Rego text") from None


def reference_value(name: str, value: str, where: str) -> str:
    """A byte claim's value as the policy sees it (``0xAB..`` -> ``ab..``); other claims unchanged."""
    if name.partition(".")[2] not in BYTE_CLAIMS:
        return value
    try:
        return canonical_hex(value)
    except ValueError:
        raise InvalidRequest(f"{where}: {value[:40]!r} is not hex (a {name} reference value)") from None


def _rv_name(name: str) -> str:
    if not _RV_NAME.fullmatch(name):
        raise InvalidRequest(f"reference value name {name[:80]!r}: must be <tee>.<claim>, e.g. software.measurement")
    return name


def _time(value: object, where: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise InvalidRequest(f"{where}: seconds since the epoch, or null")
    return float(value)
