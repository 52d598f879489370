"""RCAR messages: Request, Challenge, Attestation and the attestation-token Response.

Shapes follow trustee's KBS protocol 0.4 (kbs_attestation_protocol.md and
the ``kbs-types`` crate it uses; docs/kbs.md)::

    Request      POST /kbs/v0/auth    {"version": "0.4.0", "tee": "tdx", "extra-params": {...}}
    Challenge    200 + cookie         {"nonce": "<base64>", "extra-params": {"selected-hash-algorithm": "sha384"}}
    Attestation  POST /kbs/v0/attest  {"init-data"?: {...},
                                       "runtime-data": {"nonce": "<nonce>", "tee-pubkey": <JWK>},
                                       "tee-evidence": {"primary_evidence": ..., "additional_evidence": ""}}
    Response     200                  {"token": "<JWT>"}

Parsing is strict about what the broker relies on and names the failing
field (``attestation: runtime-data.tee-pubkey: must be an object``); every
parse error is an :class:`~inclavare.kbs.errors.InvalidRequest` (400).
Unknown members are ignored, as serde does for these structs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...attestation.claims import EvidenceKind, Tee
from ..errors import AuthFailed, InvalidRequest
from .canonical import loads

PROTOCOL_VERSION = "0.4.0"
# Ref: trustee kbs/src/attestation/backend.rs VERSION_REQ ("=0.4.0"); we accept any 0.4.x patch.
VERSION_MAJOR_MINOR = (0, 4)
MAX_EVIDENCE = 1 << 20

# The `tee` names of kbs-types that this broker can appraise, and the evidence each may carry.
# "sample" is trustee's test TEE; "software" is our name for the same thing: no hardware protection.
TEE_EVIDENCE: dict[str, frozenset[EvidenceKind]] = {
    "sgx": frozenset({EvidenceKind.SGX_QUOTE}),
    "tdx": frozenset({EvidenceKind.TDX_QUOTE}),
    "snp": frozenset({EvidenceKind.SNP_REPORT}),
    "nitro": frozenset({EvidenceKind.NITRO_DOCUMENT}),
    "sample": frozenset({EvidenceKind.SOFTWARE}),
    "software": frozenset({EvidenceKind.SOFTWARE}),
}
# What a KBC declares for an attester's TEE (:attr:`inclavare.attestation.attesters.Attester.tee`).
KBS_TEE: dict[Tee, str] = {
    Tee.SGX: "sgx",
    Tee.TDX: "tdx",
    Tee.SEV_SNP: "snp",
    Tee.NITRO: "nitro",
    Tee.SOFTWARE: "software",
}


def parse_json(body: bytes, what: str) -> dict[str, object]:
    """Decode a request body that must be a JSON object."""
    try:
        doc = loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(f"{what}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidRequest(f"{what}: must be a JSON object")
    return doc


def check_version(version: str) -> None:
    """Refuse a KBC that speaks another protocol version (trustee: semver requirement)."""
    parts = version.split(".")
    try:
        numbers = tuple(int(p) for p in parts[:3]) if len(parts) == 3 else ()
    except ValueError:
        numbers = ()
    if len(numbers) != 3:
        raise InvalidRequest(f"request: version: {version[:32]!r} is not a semantic version")
    if numbers[:2] != VERSION_MAJOR_MINOR:
        raise AuthFailed(f"KBS protocol version mismatch: expected ^{PROTOCOL_VERSION}, the request is {version[:32]}")


@dataclass(frozen=True)
class Request:
    version: str
    tee: str
    extra_params: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: Mapping[str, object]) -> Request:
        version = _text(doc, "version", "request")
        tee = _text(doc, "tee", "request")
        if tee not in TEE_EVIDENCE:
            raise AuthFailed(f"tee {tee[:32]!r} is not supported by this KBS (one of {', '.join(TEE_EVIDENCE)})")
        return cls(version, tee, _extra(doc, "request"))

    @property
    def supported_hash_algorithms(self) -> tuple[str, ...] | None:
        """What the KBC offered (``extra-params.supported-hash-algorithms``), lower-cased; None if absent."""
        offered = self.extra_params.get("supported-hash-algorithms")
        if offered is None:
            return None
        if not isinstance(offered, list) or not all(isinstance(a, str) for a in offered):
            raise InvalidRequest("request: extra-params.supported-hash-algorithms: must be a list of strings")
        return tuple(a.lower() for a in offered if isinstance(a, str))

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "tee": self.tee, "extra-params": dict(self.extra_params)}


@dataclass(frozen=True)
class Challenge:
    nonce: str
    extra_params: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: Mapping[str, object]) -> Challenge:
        return cls(_text(doc, "nonce", "challenge"), _extra(doc, "challenge"))

    @property
    def selected_hash_algorithm(self) -> str | None:
        chosen = self.extra_params.get("selected-hash-algorithm")
        return chosen.lower() if isinstance(chosen, str) else None

    def to_json(self) -> dict[str, object]:
        return {"nonce": self.nonce, "extra-params": dict(self.extra_params)}


@dataclass(frozen=True)
class Attestation:
    nonce: str
    tee_pubkey: Mapping[str, object]
    primary_evidence: object
    additional_evidence: str = ""
    init_data: Mapping[str, object] | None = None

    @classmethod
    def parse(cls, doc: Mapping[str, object]) -> Attestation:
        runtime = _object(doc, "runtime-data", "attestation")
        evidence = _object(doc, "tee-evidence", "attestation")
        if "primary_evidence" not in evidence:
            raise InvalidRequest("attestation: tee-evidence.primary_evidence: missing")
        additional = evidence.get("additional_evidence", "")
        if not isinstance(additional, str):
            raise InvalidRequest("attestation: tee-evidence.additional_evidence: must be a string")
        init = doc.get("init-data")
        if init is not None and not isinstance(init, dict):
            raise InvalidRequest("attestation: init-data: must be an object")
        return cls(
            nonce=_text(runtime, "nonce", "attestation: runtime-data"),
            tee_pubkey=_object(runtime, "tee-pubkey", "attestation: runtime-data"),
            primary_evidence=evidence["primary_evidence"],
            additional_evidence=additional,
            init_data=init,
        )

    def runtime_data(self) -> dict[str, object]:
        """The structure whose canonical hash the primary evidence must carry (see binding.py)."""
        return {
            "tee-pubkey": dict(self.tee_pubkey),
            "nonce": self.nonce,
            "additional-evidence": self.additional_evidence,
        }

    def evidence_bytes(self) -> bytes:
        """The raw evidence: a base64 string, or ``{"evidence": b64}``, or trustee's SGX/TDX ``{"quote": b64}``."""
        value = self.primary_evidence
        if isinstance(value, dict):
            value = value.get("evidence", value.get("quote"))
        if not isinstance(value, str) or len(value) > MAX_EVIDENCE * 2:
            raise InvalidRequest("attestation: tee-evidence.primary_evidence: must carry base64 evidence")
        try:
            return decode_b64(value)
        except ValueError:
            raise InvalidRequest("attestation: tee-evidence.primary_evidence: not valid base64") from None

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "runtime-data": {"nonce": self.nonce, "tee-pubkey": dict(self.tee_pubkey)},
            "tee-evidence": {
                "primary_evidence": self.primary_evidence,
                "additional_evidence": self.additional_evidence,
            },
        }
        if self.init_data is not None:
            doc["init-data"] = dict(self.init_data)
        return doc


def encode_evidence(evidence: bytes) -> dict[str, str]:
    """The ``primary_evidence`` this broker's clients send."""
    return {"evidence": base64.b64encode(evidence).decode("ascii")}


def decode_b64(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not; anything outside the alphabet is an error."""
    altchars = b"-_" if ("-" in text or "_" in text) else None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def _text(doc: Mapping[str, object], key: str, where: str) -> str:
    value = doc.get(key)
    if value is None:
        raise InvalidRequest(f"{where}: {key}: missing")
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise InvalidRequest(f"{where}: {key}: must be a non-empty string")
    return value


def _object(doc: Mapping[str, object], key: str, where: str) -> dict[str, object]:
    value = doc.get(key)
    if value is None:
        raise InvalidRequest(f"{where}: {key}: missing")
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: {key}: must be an object")
    return value


def _extra(doc: Mapping[str, object], where: str) -> dict[str, object]:
    # kbs-types: extra-params is any JSON value; older KBCs send "" for "nothing".
    value = doc.get("extra-params", {})
    if value in ("", None):
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: extra-params: must be an object or an empty string")
    return value
