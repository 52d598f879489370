"""X.509 building blocks: loading, issued-by checks, validity at an instant, CRLs, raw ECDSA.

Chains are always checked link by link against a pinned trust anchor (see
:mod:`.roots`): a root that arrives with the evidence is only accepted if it
is byte-identical to the pinned one. Every time check takes the verification
instant as an argument; nothing here reads the clock (RFC 5280 6.1.3 (a)(2):
"the certificate validity period includes the current time" — the "current
time" is an input).

Results that are pure functions of immutable bytes — parsing a certificate,
"this certificate is signed by that one", "this CRL is signed by that CA" —
are memoised in bounded LRU caches, so a long-lived verifier does not redo
them for every quote. Validity windows and revocation are checked every time.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import AttestationError, OutsideValidity, VerificationFailed
from .guard import attempt, contained, holds, succeeds

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----[A-Za-z0-9+/=\s]+?-----END X509 CRL-----")
MAX_CHAIN = 8


@lru_cache(maxsize=1024)
def _load_one(der_or_pem: bytes, pem: bool) -> x509.Certificate:
    # AMD VCEK/VLEK certificates have serial number 0, which RFC 5280 forbids;
    # cryptography >= 42 warns about it. They are genuine, so load them quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cert = x509.load_pem_x509_certificate(der_or_pem) if pem else x509.load_der_x509_certificate(der_or_pem)
        # cryptography parses some fields lazily and raises (ValueError,
        # DuplicateExtension, ...) on first access; touch them all here so
        # later code never meets a foreign error.
        _ = (cert.extensions, cert.subject, cert.issuer, cert.serial_number, cert.signature_hash_algorithm)
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.public_key())
    # X.690 8.6.2.2: the signatureValue BIT STRING (the certificate's last
    # element) starts with its count of unused bits. RSA and ECDSA signatures
    # are whole octets (RFC 5280 4.1.1.3, RFC 3279 2.2), but cryptography
    # accepts a count of 1..7 when the padding bits happen to be zero, so the
    # same signature verifies inside a second encoding of the certificate.
    # Evidence must be the only encoding of what was signed (see the
    # trailing-bytes rule in .quote): refuse it.
    if not cert.public_bytes(Encoding.DER).endswith(b"\0" + cert.signature):
        raise ValueError("signatureValue BIT STRING has unused bits")
    return cert


def load_certificates(data: bytes, what: str, error: type[AttestationError]) -> list[x509.Certificate]:
    """Certificates from PEM (one or more blocks; NULs and whitespace around them allowed) or one DER.

    A certificate that does not load raises ``error`` naming it
    (``<what>: certificate 2 of 3: not a valid X.509 certificate (<why>)``),
    whatever `cryptography` raised (see :mod:`.guard`).
    """
    blocks = _PEM_BLOCK.findall(data) if data.lstrip(b" \t\r\n\0").startswith(b"-----BEGIN") else []
    if not blocks:
        return [_load(bytes(data), False, what, error)]
    leftover = _PEM_BLOCK.sub(b"", data).strip(b" \t\r\n\0")
    if leftover:
        raise error(f"{what}: unexpected data between PEM certificates")
    if len(blocks) > MAX_CHAIN:
        raise error(f"{what}: more than {MAX_CHAIN} certificates")
    return [_load(b, True, f"{what}: certificate {i} of {len(blocks)}", error) for i, b in enumerate(blocks, 1)]


def _load(data: bytes, pem: bool, what: str, error: type[AttestationError]) -> x509.Certificate:
    with contained(what, error, "not a valid X.509 certificate"):
        cert = _load_one(data, pem)
    return cert


def load_crl(data: bytes, what: str, error: type[AttestationError]) -> x509.CertificateRevocationList:
    with contained(what, error, "not a valid X.509 CRL"):
        if _PEM_CRL.search(data):
            crl = x509.load_pem_x509_crl(data.strip(b"\0"))
        else:
            crl = x509.load_der_x509_crl(bytes(data))
        # Parse every lazily decoded part now (see _load_one).
        _ = (crl.issuer, crl.last_update_utc, crl.next_update_utc, crl.extensions, crl.signature_hash_algorithm)
        _ = [(r.serial_number, r.revocation_date_utc, r.extensions) for r in crl]
        _ = crl.fingerprint(hashes.SHA256())
    return crl


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def spki_der(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@lru_cache(maxsize=1024)
def subject_der(cert: x509.Certificate) -> bytes:
    """The DER of the subject Name (memoised; building Name objects is slow)."""
    return cert.subject.public_bytes()


def common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else name.rfc4514_string()
    return value if isinstance(value, str) else value.decode(errors="replace")


def check_validity(cert: x509.Certificate, at: datetime, check: str) -> None:
    """RFC 5280 4.1.2.5: notBefore <= at <= notAfter."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= at <= end:
        raise OutsideValidity(
            check,
            f"certificate {common_name(cert.subject)!r} is not valid at {_iso(at)} "
            f"(valid {_iso(start)} .. {_iso(end)})",
        )


@lru_cache(maxsize=4096)
def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Pure function of the two DER encodings, so it is memoised (bounded)."""
    return succeeds(lambda: cert.verify_directly_issued_by(issuer))


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, check: str) -> None:
    """Issuer name matches and ``issuer``'s key verifies ``cert``'s signature (ECDSA, RSA, RSA-PSS)."""
    if not issued_by(cert, issuer):
        raise VerificationFailed(
            check,
            f"certificate {common_name(cert.subject)!r} is not signed by {common_name(issuer.subject)!r}",
        )


def check_is_ca(cert: x509.Certificate, check: str) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise VerificationFailed(check, f"certificate {common_name(cert.subject)!r} is not a CA certificate")


def check_chain(chain: Sequence[x509.Certificate], anchor: x509.Certificate, at: datetime, check: str) -> None:
    """``chain`` is leaf first, ending just below ``anchor`` (the pinned root); verify every link and window."""
    links = [*chain, anchor]
    for child, parent in itertools.pairwise(links):
        check_issued_by(child, parent, check)
        check_is_ca(parent, check)
    for cert in links:
        check_validity(cert, at, check)


def check_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate, at: datetime, check: str) -> bool:
    """Verify a CRL's issuer and signature; return whether it is fresh at ``at`` (RFC 5280 6.3.3 (a)).

    A CRL whose thisUpdate is after ``at`` is rejected; one past nextUpdate is
    reported as stale (False) so the caller can decide (see CollateralExpired).
    """
    if crl.issuer.public_bytes() != subject_der(issuer):
        raise VerificationFailed(
            check, f"CRL issuer {common_name(crl.issuer)!r} is not {common_name(issuer.subject)!r}"
        )
    if not _crl_signed_by(crl, issuer):
        raise VerificationFailed(check, f"CRL signature does not verify under {common_name(issuer.subject)!r}")
    if crl.last_update_utc > at:
        raise VerificationFailed(check, f"CRL thisUpdate {_iso(crl.last_update_utc)} is after {_iso(at)}")
    nxt = crl.next_update_utc
    return nxt is None or at <= nxt


_CRL_MEMO: dict[tuple[bytes, x509.Certificate], bool] = {}
# The keys a CRL issuer may have here. The vendors' CRLs are ECDSA (Intel) and RSA-PSS
# (AMD); a key-agreement key (X25519, X448, ML-KEM) signs nothing, and DSA is deprecated.
_SIGNING_KEYS = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Memoised by (CRL fingerprint, issuer); CRL objects are not hashable, so no lru_cache."""
    key = (crl.fingerprint(hashes.SHA256()), issuer)
    if key not in _CRL_MEMO:
        public = issuer.public_key()
        valid = isinstance(public, _SIGNING_KEYS) and holds(lambda: crl.is_signature_valid(public))
        if len(_CRL_MEMO) >= 1024:
            _CRL_MEMO.clear()
        _CRL_MEMO[key] = valid
    return _CRL_MEMO[key]


def is_revoked(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def ecdsa_raw_verify(
    public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, hash_alg: hashes.HashAlgorithm
) -> bool:
    """Verify a raw ``r || s`` ECDSA signature (big-endian halves)."""
    half = len(signature) // 2
    if half == 0 or len(signature) % 2:
        return False
    r = int.from_bytes(signature[:half], "big")
    s = int.from_bytes(signature[half:], "big")
    return succeeds(lambda: public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_alg)))


def p256_from_raw(xy: bytes) -> ec.EllipticCurvePublicKey | None:
    """An uncompressed P-256 point from raw ``x || y`` (64 bytes); None if not on the curve."""
    return attempt(lambda: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xy))


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


iso = _iso
