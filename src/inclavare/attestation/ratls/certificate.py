"""Issue RA-TLS certificates exactly as rats-tls writes them today (TCG DICE "Interoperable RA-TLS").

rats-tls ``rtls_core_generate_certificate`` (src/core/rtls_core_generate_certificate.c at
github.com/inclavare-containers/rats-tls 6675532, the current head; docs/ratls.md): generate a key
pair in the TEE, build the claims buffer, have the attester put SHA-256 of it in REPORT_DATA, and
issue a self-signed X.509 v3 certificate (src/crypto_wrappers/openssl/gen_cert.c):

* serial 1; subject = issuer = ``O=Inclavare Containers, CN=RATS-TLS``;
  validity now - 1 h .. now + 365 days; signed with SHA-256 by the key itself
  (ECDSA P-256, rats-tls's default, or RSA-3072);
* ``basicConstraints CA:FALSE``, ``subjectKeyIdentifier hash``,
  ``authorityKeyIdentifier keyid:always`` (all non-critical);
* **2.23.133.5.4.9** (tcg-dice-TaggedEvidence, non-critical since rats-tls
  2378719): CBOR ``tag([h'evidence', h'claims-buffer'])`` (src/core/dice.c,
  ``dice_generate_evidence_buffer_with_tag``), always two entries since
  15724cf. Tags (src/include/internal/dice.h since defec92): 60000 Intel TEE
  quote (SGX and TDX), 0x1A7504 SEV-SNP report; inclavare's private 0x1A75F0
  for software evidence (:mod:`..hazmat.ratls` says why it lies outside
  rats-tls's range);
* **2.23.133.5.4.2** (tcg-dice-endorsement-manifest), optional, SGX/TDX only
  (:mod:`.endorsements`).

The claims buffer (``dice_generate_claims_buffer``) is the CBOR map
``{"pubkey-hash": h'<[1, h'SHA-256(SPKI)']>', <name>: h'<value>', ...}``;
REPORT_DATA = SHA-256(claims buffer) || 32 zero bytes. Unlike rats-tls built
against libcbor before 0.10, no buffer here carries allocation slack.

:class:`~.null.NullAttester` (rats-tls's nullattester) gives a certificate
of the same shape with no evidence extension at all. Parsing and
verification is :mod:`..verifiers.ratls`'s job, not this module's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ..attesters.interface import Attester
from ..claims import Evidence, EvidenceKind
from ..errors import AttestationError
from ..hazmat.ratls import DICE_TAGGED_EVIDENCE, SOFTWARE_TAG, TAG_INTEL_QUOTE, TAG_SEV_SNP
from .endorsements import OID_ENDORSEMENTS, Endorsements
from .null import NullAttester, warn_unattested

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
TAGS = {
    EvidenceKind.SGX_QUOTE: TAG_INTEL_QUOTE,
    EvidenceKind.TDX_QUOTE: TAG_INTEL_QUOTE,
    EvidenceKind.SNP_REPORT: TAG_SEV_SNP,
    EvidenceKind.SOFTWARE: SOFTWARE_TAG,
}
SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Inclavare Containers"),
        x509.NameAttribute(NameOID.COMMON_NAME, "RATS-TLS"),
    ]
)
HASH_SHA256 = 1  # hash-alg-id of the pubkey-hash-value (IANA "Named Information Hash Algorithm")
RESERVED_CLAIMS = frozenset({"pubkey-hash", "nonce"})  # rats-tls reserves "nonce" (not implemented)
KEY_ALGORITHMS = ("ec-p256", "rsa-3072")  # rats-tls cert_algo ECC_256_SHA256, RSA_3072_SHA256


@dataclass(frozen=True)
class RatlsCertificate:
    """An issued certificate with its private key (never shown by ``repr``)."""

    der: bytes
    key: PrivateKey = field(repr=False)
    evidence: Evidence | None = field(repr=False)  # None: a null-attester certificate
    claims_buffer: bytes | None = field(default=None, repr=False)

    @property
    def spki(self) -> bytes:
        return spki_of(self.key)

    def pem_bundle(self) -> bytes:
        """Certificate and PKCS#8 key as PEM, for ``SSLContext.load_cert_chain``."""
        cert = x509.load_der_x509_certificate(self.der).public_bytes(serialization.Encoding.PEM)
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert + key


def generate_key(algorithm: str = "ec-p256") -> PrivateKey:
    if algorithm == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise AttestationError(f"ratls: key algorithm {algorithm!r} is not one of {', '.join(KEY_ALGORITHMS)}")


def spki_of(key: PrivateKey) -> bytes:
    """DER SubjectPublicKeyInfo (what rats-tls hashes: ``i2d_PUBKEY``)."""
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def pubkey_hash_value(spki: bytes) -> bytes:
    """CBOR ``[1, h'SHA-256(SPKI)']``: 36 bytes."""
    return cbor2.dumps([HASH_SHA256, hashlib.sha256(spki).digest()])


def claims_buffer(spki: bytes, custom: Mapping[str, bytes] | None = None) -> bytes:
    """The CBOR claims map: ``pubkey-hash`` first, then the custom claims in the given order."""
    custom = custom or {}
    reserved = RESERVED_CLAIMS & set(custom)
    if reserved:
        raise AttestationError(f"ratls: custom claim {sorted(reserved)[0]!r} is reserved")
    if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in custom.items()):
        raise AttestationError("ratls: custom claims map text names to byte values")
    return cbor2.dumps({"pubkey-hash": pubkey_hash_value(spki), **custom})


def report_data_for(spki: bytes, claims: bytes | None = None) -> bytes:
    """The 64-byte REPORT_DATA binding ``spki``: SHA-256 of its claims buffer (no custom claims if None)."""
    return hashlib.sha256(claims if claims is not None else claims_buffer(spki)).digest().ljust(64, b"\0")


def tagged_evidence(evidence: Evidence, claims: bytes) -> bytes:
    """The 2.23.133.5.4.9 extnValue: ``tag([h'evidence', h'claims-buffer'])``."""
    tag = TAGS.get(evidence.kind)
    if tag is None:
        raise AttestationError(f"ratls: {evidence.kind.value} cannot be carried in an RA-TLS certificate")
    return cbor2.dumps(cbor2.CBORTag(tag, [evidence.data, claims]))


def build_certificate(
    key: PrivateKey,
    evidence: Evidence | None,
    *,
    now: datetime,
    claims: bytes | None = None,
    endorsements: Endorsements | None = None,
) -> bytes:
    """The DER certificate for ``key`` carrying ``evidence`` (which the caller has bound to the key).

    ``claims`` defaults to the claims buffer without custom claims; with
    ``evidence`` None the certificate has no evidence extension (rats-tls's
    nullattester) and endorsements are refused.
    """
    public = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    builder = (
        x509.CertificateBuilder()
        .serial_number(1)
        .subject_name(SUBJECT)
        .issuer_name(SUBJECT)
        .public_key(public)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    if evidence is None:
        if endorsements is not None:
            raise AttestationError("ratls: endorsements accompany evidence; a null-attester certificate has none")
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    claims = claims if claims is not None else claims_buffer(spki_of(key))
    builder = builder.add_extension(_raw(DICE_TAGGED_EVIDENCE, tagged_evidence(evidence, claims)), critical=False)
    if endorsements is not None:
        builder = builder.add_extension(
            _raw(OID_ENDORSEMENTS, endorsements.encode(TAGS[evidence.kind])), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def issue(
    attester: Attester | NullAttester,
    key: PrivateKey | None = None,
    *,
    now: datetime,
    key_algorithm: str = "ec-p256",
    custom_claims: Mapping[str, bytes] | None = None,
    endorsements: Endorsements | None = None,
) -> RatlsCertificate:
    """rats-tls's certificate step: key (given or fresh), claims buffer, evidence, certificate."""
    key = key if key is not None else generate_key(key_algorithm)
    spki = spki_of(key)
    if isinstance(attester, NullAttester):
        if custom_claims or endorsements is not None:
            raise AttestationError("ratls: the null attester carries no claims or endorsements (no evidence)")
        warn_unattested("issued a certificate without evidence (--attester null)")
        return RatlsCertificate(build_certificate(key, None, now=now), key, None)
    claims = claims_buffer(spki, custom_claims)
    evidence = attester.collect_evidence(report_data_for(spki, claims))
    der = build_certificate(key, evidence, now=now, claims=claims, endorsements=endorsements)
    return RatlsCertificate(der, key, evidence, claims)


def _raw(oid: str, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value)
