"""Software evidence: what the built-in (software, no hardware protection) enclave runtimes produce.

There is no hardware root of trust here: the host signs a report about the
enclave with its own Ed25519 "software-TEE" key, and a verifier accepts it
only if that key is in its trusted host-key list *and* its policy explicitly
allows software TEEs. Both sides are here: :func:`sign_report` builds the
evidence for an enclave identity (the built-in runtimes' ``local_report``
and :class:`~.attesters.SoftwareAttester` call it), :func:`verify_report`
checks it. The identity and the host key come from the caller
(:mod:`inclavare.enclave.identity` has both), through the two protocols
below, so this layer imports nothing of the enclave layer above it.

Exact byte layout (a tagged COSE_Sign1, RFC 9052 section 4.2, in the
deterministic CBOR encoding of RFC 8949 section 4.2.1; every report has
exactly one valid encoding, anything else is refused)::

    offset  bytes                 meaning
    0       D2                    CBOR tag 18 (COSE_Sign1)
    1       84                    array of 4
    2       43 A1 01 27           protected header: bstr(3) = {1: -8}   (alg EdDSA, RFC 9053 2.2)
    6       A0                    unprotected header: {}
    7       59 LL LL              payload: bstr, LL LL = big-endian length L (296..300)
    10      <payload, L bytes>    the report, below
    10+L    58 40 <64 bytes>      Ed25519 signature
                                  total: 76 + L bytes (372..376)

    payload = A8 (map of 8), keys in this order (deterministic: shorter key first, then bytewise):
      63 "svn"          uint 0..65535
      66 "format"       text "inclavare-software-evidence/1"
      66 "signer"       bstr(32)  58 20 ..   the enclave signer (MRSIGNER-like)
      6A "attributes"   map {65 "debug": F4 false | F5 true, 68 "software": F5 true}
      6A "product_id"   uint 0..65535
      6B "host_key_id"  bstr(32)  SHA-256 of the raw 32-byte Ed25519 host public key
      6B "measurement"  bstr(32)  the enclave measurement (MRENCLAVE-like)
      6B "report_data"  bstr(64)  58 40 ..   caller data bound into the report

The Ed25519 signature is over the COSE ``Sig_structure``
``["Signature1", h'A10127', h'', payload]`` = ``84 6A "Signature1" 43 A1 01 27
40 59 LL LL <payload>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import EvidenceFormatError, UntrustedKey, VerificationFailed
from .hazmat.cose import ALG_EDDSA, COSE_SIGN1_TAG, decode_exact, sig_structure
from .hazmat.guard import guarded
from .report_data import check_report_data

FORMAT = "inclavare-software-evidence/1"
PROTECTED = cbor2.dumps({1: ALG_EDDSA})  # A1 01 27
WHAT = "software evidence"
_KEYS = ("svn", "format", "signer", "attributes", "product_id", "host_key_id", "measurement", "report_data")


@dataclass(frozen=True)
class SoftwareReport:
    measurement: bytes
    signer: bytes
    product_id: int
    svn: int
    debug: bool
    report_data: bytes
    host_key_id: bytes
    payload: bytes
    signature: bytes
    software: bool = True


class SoftwareIdentity(Protocol):
    """What a report asserts about an enclave (:class:`inclavare.enclave.identity.EnclaveIdentity`)."""

    @property
    def measurement(self) -> bytes: ...
    @property
    def signer(self) -> bytes: ...
    @property
    def isv_prod_id(self) -> int: ...
    @property
    def isv_svn(self) -> int: ...
    @property
    def debug(self) -> bool: ...


class HostSigningKey(Protocol):
    """The host's software-TEE key (:class:`inclavare.enclave.identity.HostKey`)."""

    def private_key(self) -> Ed25519PrivateKey: ...


def sign_report(identity: SoftwareIdentity, report_data: bytes, host_key: HostSigningKey) -> bytes:
    """Software evidence for ``identity`` binding ``report_data`` (exactly 64 bytes).

    The software analogue of EREPORT (Intel SDM Vol. 3D, 38.15): the enclave's
    identity and the caller's data, signed by the host key instead of MACed
    by the CPU, so any verifier that trusts the key can check it and the
    report doubles as a quote. The report asserts whatever identity it is
    given: pass only one a verified signature proved
    (:func:`inclavare.enclave.identity.verify_signature`).
    """
    return encode_report(
        measurement=identity.measurement,
        signer=identity.signer,
        product_id=identity.isv_prod_id,
        svn=identity.isv_svn,
        debug=identity.debug,
        report_data=check_report_data("software", report_data),
        host_key=host_key.private_key(),
    )


def host_key_id(public_key: Ed25519PublicKey) -> bytes:
    """SHA-256 of the raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key.public_bytes_raw()).digest()


def encode_report(
    *,
    measurement: bytes,
    signer: bytes,
    product_id: int,
    svn: int,
    debug: bool,
    report_data: bytes,
    host_key: Ed25519PrivateKey,
) -> bytes:
    """Build and sign software evidence with the host's software-TEE key."""
    payload = cbor2.dumps(
        {
            "svn": svn,
            "format": FORMAT,
            "signer": signer,
            "attributes": {"debug": debug, "software": True},
            "product_id": product_id,
            "host_key_id": host_key_id(host_key.public_key()),
            "measurement": measurement,
            "report_data": report_data,
        },
        canonical=True,
    )
    _fields(payload, b"")  # refuse to sign anything decode_report would refuse
    signature = host_key.sign(sig_structure(PROTECTED, payload))
    return _envelope(payload, signature)


@guarded(WHAT)
def decode_report(data: bytes) -> SoftwareReport:
    """Parse software evidence (no signature check)."""
    item = decode_exact(data, WHAT)
    if not isinstance(item, cbor2.CBORTag) or item.tag != COSE_SIGN1_TAG:
        raise EvidenceFormatError(f"{WHAT}: not a CBOR tag 18 COSE_Sign1")
    value = item.value
    if not isinstance(value, list | tuple) or len(value) != 4 or value[0] != PROTECTED or value[1] != {}:
        raise EvidenceFormatError(f"{WHAT}: COSE_Sign1 header must be protected {{1: -8}} and unprotected {{}}")
    payload, signature = value[2], value[3]
    if not isinstance(payload, bytes) or not isinstance(signature, bytes) or len(signature) != 64:
        raise EvidenceFormatError(f"{WHAT}: payload must be a byte string and the signature 64 bytes")
    report = _fields(payload, signature)
    if _envelope(payload, signature) != bytes(data):
        raise EvidenceFormatError(f"{WHAT}: not in the deterministic CBOR encoding")
    return report


@guarded(WHAT)
def verify_report(data: bytes, trusted_host_keys: Iterable[Ed25519PublicKey]) -> SoftwareReport:
    """Parse and check the Ed25519 signature against the trusted host keys (by host key id)."""
    report = decode_report(data)
    keys = {host_key_id(k): k for k in trusted_host_keys}
    key = keys.get(report.host_key_id)
    if key is None:
        raise UntrustedKey(WHAT, f"host key {report.host_key_id.hex()[:16]}... is not a trusted software-TEE host key")
    try:
        key.verify(report.signature, sig_structure(PROTECTED, report.payload))
    except InvalidSignature:
        raise VerificationFailed(WHAT, "signature does not verify under the host key") from None
    return report


def _envelope(payload: bytes, signature: bytes) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [PROTECTED, {}, payload, signature]), canonical=True)


def _fields(payload: bytes, signature: bytes) -> SoftwareReport:
    doc = decode_exact(payload, f"{WHAT} payload")
    if not isinstance(doc, Mapping) or list(doc) != list(_KEYS):
        raise EvidenceFormatError(f"{WHAT}: payload must be a map with exactly the keys {', '.join(_KEYS)}")
    if doc["format"] != FORMAT:
        raise EvidenceFormatError(f"{WHAT}: format {doc['format']!r:.40} is not {FORMAT!r}")
    attrs = doc["attributes"]
    if not isinstance(attrs, Mapping) or list(attrs) != ["debug", "software"] or attrs["software"] is not True:
        raise EvidenceFormatError(f"{WHAT}: attributes must be {{debug: bool, software: true}}")
    if not isinstance(attrs["debug"], bool):
        raise EvidenceFormatError(f"{WHAT}: attributes.debug must be a boolean")
    if cbor2.dumps({**doc, "attributes": dict(attrs)}, canonical=True) != payload:
        raise EvidenceFormatError(f"{WHAT}: payload is not in the deterministic CBOR encoding")
    return SoftwareReport(
        measurement=_bstr(doc, "measurement", 32),
        signer=_bstr(doc, "signer", 32),
        product_id=_u16(doc, "product_id"),
        svn=_u16(doc, "svn"),
        debug=attrs["debug"],
        report_data=_bstr(doc, "report_data", 64),
        host_key_id=_bstr(doc, "host_key_id", 32),
        payload=payload,
        signature=signature,
    )


def _bstr(doc: Mapping[str, object], key: str, size: int) -> bytes:
    value = doc[key]
    if not isinstance(value, bytes) or len(value) != size:
        raise EvidenceFormatError(f"{WHAT}: {key} must be {size} bytes")
    return value


def _u16(doc: Mapping[str, object], key: str) -> int:
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise EvidenceFormatError(f"{WHAT}: {key} must be an integer 0..65535")
    return value
