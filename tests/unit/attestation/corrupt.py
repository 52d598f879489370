"""Single-byte corruptions of the genuine certificates inside evidence vectors.

Intel quotes carry their PCK chain as PEM: a corrupted DER byte is
re-encoded in place (the base64 keeps its length and line breaks, so every
length field of the quote stays right). Nitro documents carry DER in the
CBOR payload: the payload is re-encoded around the changed certificate.
Either way only the one certificate byte differs, and the evidence still
parses up to the certificate.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass

import cbor2

_PEM = re.compile(rb"(-----BEGIN CERTIFICATE-----)([A-Za-z0-9+/=\s]+?)(-----END CERTIFICATE-----)")


@dataclass(frozen=True)
class Site:
    """Where a certificate sits in the evidence: ``label`` for messages, ``der`` its bytes."""

    label: str
    der: bytes


def certificates(evidence: bytes) -> list[Site]:
    """The certificates of a quote (PEM chain, leaf first) or a Nitro document (certificate, cabundle[i])."""
    if evidence[:1] in (b"\x84", b"\xd2"):
        payload = cbor2.loads(cbor2.loads(evidence)[2])
        sites = [Site("certificate", payload["certificate"])]
        return sites + [Site(f"cabundle[{i}]", c) for i, c in enumerate(payload["cabundle"])]
    return [Site(f"certificate {i}", _der(m.group(2))) for i, m in enumerate(_PEM.finditer(evidence), 1)]


def replace(evidence: bytes, index: int, der: bytes) -> bytes:
    """``evidence`` with certificate ``index`` (as :func:`certificates` counts) replaced by ``der``."""
    if evidence[:1] in (b"\x84", b"\xd2"):
        cose = cbor2.loads(evidence)
        payload = cbor2.loads(cose[2])
        if index == 0:
            payload["certificate"] = der
        else:
            payload["cabundle"][index - 1] = der
        cose[2] = cbor2.dumps(payload)
        return cbor2.dumps(cose)
    match = list(_PEM.finditer(evidence))[index]
    body = match.group(2)
    encoded = base64.b64encode(der)
    assert len(encoded) == len(re.sub(rb"\s", b"", body)), "same-length DER only (the quote's lengths stay valid)"
    out, k = bytearray(), 0
    for ch in body:
        if chr(ch).isspace():
            out.append(ch)
        else:
            out.append(encoded[k])
            k += 1
    return evidence[: match.start(2)] + bytes(out) + evidence[match.end(2) :]


def with_byte(evidence: bytes, index: int, offset: int, value: int) -> bytes:
    der = bytearray(certificates(evidence)[index].der)
    der[offset] = value
    return replace(evidence, index, bytes(der))


def every_byte_flipped(evidence: bytes, mask: int = 0x01) -> Iterator[tuple[str, bytes]]:
    """Each certificate byte XORed with ``mask``, one at a time: (location, evidence)."""
    for index, site in enumerate(certificates(evidence)):
        for offset in range(len(site.der)):
            der = bytearray(site.der)
            der[offset] ^= mask
            yield f"{site.label} byte {offset}", replace(evidence, index, bytes(der))


# -- corruptions that made `cryptography` raise something other than ValueError -------------


def bad_version(der: bytes) -> bytes:
    """X.509 version field v3 (2) -> 3: cryptography raises x509.InvalidVersion."""
    at = der.index(b"\xa0\x03\x02\x01\x02") + 4
    return der[:at] + b"\x03" + der[at + 1 :]


def duplicate_extension(der: bytes) -> bytes:
    """The second id-ce extension OID made equal to the first: x509.DuplicateExtension on access."""
    first, second = [i for i in range(len(der)) if der.startswith(b"\x06\x03\x55\x1d", i)][:2]
    return der[: second + 4] + der[first + 4 : first + 5] + der[second + 5 :]


def x400_crl_point(der: bytes) -> bytes:
    """The CRL distribution point's URI GeneralName retagged [3]: x509.UnsupportedGeneralNameType."""
    uri = der.index(b"\x86", der.index(b"\x55\x1d\x1f"))
    return der[:uri] + b"\xa3" + der[uri + 1 :]


def unused_signature_bits(der: bytes, signature: bytes) -> bytes | None:
    """signatureValue with 1 unused bit (the same signature, a second encoding); None if the last bit is set."""
    if signature[-1] & 1:
        return None
    at = len(der) - len(signature) - 1
    return der[:at] + b"\x01" + der[at + 1 :]


def _der(pem_body: bytes) -> bytes:
    return base64.b64decode(re.sub(rb"\s", b"", pem_body))
