"""RA-TLS certificates as rats-tls writes them: layout, binding, custom claims, endorsements."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from inclavare.attestation import (
    AttestationError,
    CollateralError,
    CollateralStore,
    Evidence,
    EvidenceFormatError,
    EvidenceKind,
    Policy,
    VerificationFailed,
    inspect,
    verify,
)
from inclavare.attestation.attesters import AttesterOptions, create
from inclavare.attestation.ratls import (
    OID_ENDORSEMENTS,
    Endorsements,
    VerifyPolicy,
    build_certificate,
    claims_buffer,
    generate_key,
    issue,
    pubkey_hash_value,
    report_data_for,
    spki_of,
    tagged_evidence,
)
from inclavare.enclave.identity import HostKey

from . import gramine
from .world import IDENTITY, attester, self_signed, trusted_store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DICE = x509.ObjectIdentifier("2.23.133.5.4.9")
ALLOW_SOFTWARE = Policy(allow_software=True)


def test_layout_matches_rats_tls() -> None:
    cert = issue(attester(), now=NOW)
    x = x509.load_der_x509_certificate(cert.der)
    assert (x.version, x.serial_number, x.subject.rfc4514_string(), x.issuer.rfc4514_string()) == (
        x509.Version.v3, 1, "CN=RATS-TLS,O=Inclavare Containers", "CN=RATS-TLS,O=Inclavare Containers"
    )  # fmt: skip
    assert x.not_valid_before_utc == NOW - timedelta(hours=1)
    assert x.not_valid_after_utc == NOW + timedelta(days=365)
    assert isinstance(x.signature_hash_algorithm, hashes.SHA256)
    assert isinstance(x.public_key(), ec.EllipticCurvePublicKey)
    assert x.public_key().curve.name == "secp256r1"
    oids = [(e.oid.dotted_string, e.critical) for e in x.extensions]
    assert oids == [("2.5.29.19", False), ("2.5.29.14", False), ("2.5.29.35", False), ("2.23.133.5.4.9", False)]
    assert x.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ski = x.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert x.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    value = x.extensions.get_extension_for_oid(DICE).value.value
    assert cert.evidence is not None
    assert cert.claims_buffer is not None
    # raw CBOR as extnValue, always [evidence, claims-buffer] (rats-tls 15724cf onwards)
    assert value == cbor2.dumps(cbor2.CBORTag(0x1A75F0, [cert.evidence.data, cert.claims_buffer]))
    assert repr(cert) == f"RatlsCertificate(der={cert.der!r})"  # no key, ever


def test_binding_is_sha256_of_the_claims_buffer() -> None:
    cert = issue(attester(), now=NOW)
    spki = cert.spki
    value = pubkey_hash_value(spki)
    assert value == b"\x82\x01\x58\x20" + hashlib.sha256(spki).digest()  # [1, h'SHA-256(SPKI)'], 36 bytes
    # {"pubkey-hash": h'<value>'}: map(1), text(11), bytes(36)
    assert cert.claims_buffer == b"\xa1\x6bpubkey-hash\x58\x24" + value
    assert report_data_for(spki) == hashlib.sha256(cert.claims_buffer).digest() + bytes(32)
    store = trusted_store()
    result = verify(cert.der, at=NOW, collateral=store, policy=ALLOW_SOFTWARE)
    assert result.bound_key == spki
    assert result.claims.report_data == hashlib.sha256(cert.claims_buffer).digest() + bytes(32)
    assert result.inner_kind == EvidenceKind.SOFTWARE
    shown = inspect(cert.der)
    assert (shown["evidence_form"], shown["evidence_tag"], shown["libcbor_slack"]) == ("dice", "0x1a75f0", 0)


def test_custom_claims_go_through_the_claims_buffer() -> None:
    cert = issue(attester(), now=NOW, custom_claims={"app": b"v1", "tenant": b"\x00\x01"})
    spki = cert.spki
    assert cert.claims_buffer == cbor2.dumps({"pubkey-hash": pubkey_hash_value(spki), "app": b"v1", "tenant": b"\0\1"})
    assert list(cbor2.loads(cert.claims_buffer)) == ["pubkey-hash", "app", "tenant"]
    result = verify(cert.der, at=NOW, collateral=trusted_store(), policy=ALLOW_SOFTWARE)
    assert result.claims.report_data == hashlib.sha256(cert.claims_buffer).digest() + bytes(32)
    value = x509.load_der_x509_certificate(cert.der).extensions.get_extension_for_oid(DICE).value.value
    assert list(cbor2.loads(value).value) == [cert.evidence.data, cert.claims_buffer]
    with pytest.raises(AttestationError, match="custom claim 'nonce' is reserved"):
        claims_buffer(spki, {"nonce": b"n"})
    with pytest.raises(AttestationError, match="custom claims map text names to byte values"):
        claims_buffer(spki, {"app": "text"})  # type: ignore[dict-item]


def test_rsa_keys_and_unknown_algorithms() -> None:
    cert = issue(attester(), now=NOW, key_algorithm="rsa-3072")
    key = x509.load_der_x509_certificate(cert.der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 3072
    assert verify(cert.der, at=NOW, collateral=trusted_store(), policy=ALLOW_SOFTWARE).bound_key == cert.spki
    with pytest.raises(AttestationError, match="key algorithm 'ed25519' is not one of ec-p256, rsa-3072"):
        generate_key("ed25519")
    with pytest.raises(AttestationError, match="nitro-document cannot be carried"):
        tagged_evidence(Evidence(EvidenceKind.NITRO_DOCUMENT, b""), b"")


def test_intel_quotes_use_tag_60000_and_are_verified_in_full() -> None:
    key = generate_key()
    der = build_certificate(key, Evidence(EvidenceKind.SGX_QUOTE, gramine.QUOTE), now=gramine.AT)
    value = x509.load_der_x509_certificate(der).extensions.get_extension_for_oid(DICE).value.value
    assert value[:3] == b"\xd9\xea\x60"  # tag 60000 (rats-tls defec92), not 0x1A7501
    # The genuine quote passes every check (signatures, PCK chain, CRLs, TCB); it binds Gramine's key, not ours.
    with pytest.raises(VerificationFailed, match=r"does not bind the certificate key \(SHA-256\(claims-buffer\)"):
        verify(der, at=gramine.AT, collateral=gramine.store(), policy=Policy.genuine_only())


def test_endorsements_travel_in_2_23_133_5_4_2() -> None:
    endorsements = gramine.endorsements()
    raw = endorsements.encode(60000)
    assert Endorsements.decode(raw) == endorsements
    # tag 60000, array(8), version as a five-byte uint32: rats-tls's reader refuses any other width
    assert raw[:9] == b"\xd9\xea\x60\x88\x1a\x00\x00\x00\x03"
    assert len(cbor2.loads(raw).value) == 8
    key = generate_key()
    der = build_certificate(
        key, Evidence(EvidenceKind.SGX_QUOTE, gramine.QUOTE), now=gramine.AT, endorsements=endorsements
    )
    ext = x509.load_der_x509_certificate(der).extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_ENDORSEMENTS))
    assert ext.critical is False
    assert ext.value.value == raw
    # With nothing in the relying party's store, the certificate's own endorsements carry the
    # verification up to the key binding; without them it stops at the missing collateral.
    peer = VerifyPolicy(Policy.genuine_only(), clock=lambda: gramine.AT)
    with pytest.raises(VerificationFailed, match="REPORT_DATA does not bind the certificate key"):
        peer.verify_certificate(der)
    blind = VerifyPolicy(Policy.genuine_only(), use_endorsements=False, clock=lambda: gramine.AT)
    with pytest.raises(CollateralError):
        blind.verify_certificate(der)
    with pytest.raises(AttestationError, match="rats-tls defines them for SGX/TDX quotes only"):
        endorsements.encode(0x1A75F0)


def test_malformed_endorsements_are_refused() -> None:
    with pytest.raises(EvidenceFormatError, match=r"must be \[version, 7 byte strings\]"):
        Endorsements.decode(cbor2.dumps(cbor2.CBORTag(0x1A7501, [3, b"a"])))
    with pytest.raises(EvidenceFormatError, match="not a CBOR tag of an Intel TEE quote"):
        Endorsements.decode(cbor2.dumps(cbor2.CBORTag(0x1A7504, [3] + [b""] * 7)))
    bad = Endorsements(3, b"{not json", b"", b"", b"", b"", b"", b"")
    key = generate_key()
    der = build_certificate(key, Evidence(EvidenceKind.SGX_QUOTE, gramine.QUOTE), now=gramine.AT, endorsements=bad)
    with pytest.raises(CollateralError, match="ratls certificate: endorsements: tcb_info"):
        VerifyPolicy(Policy.genuine_only(), clock=lambda: gramine.AT).verify_certificate(der)


def test_endorsements_cannot_vouch_for_a_host_key() -> None:
    """A peer must not be able to make its own software host key trusted by
    shipping it as 'collateral' next to its evidence."""
    rogue_key = HostKey.from_seed(b"\x22" * 32)
    rogue = create("software", AttesterOptions(identity=IDENTITY, host_key=rogue_key))
    cert = issue(rogue, now=NOW)
    dice = x509.load_der_x509_certificate(cert.der).extensions.get_extension_for_oid(DICE).value.value
    pem = rogue_key.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    smuggled = Endorsements(3, pem, b"", b"", b"", b"", b"", b"").encode(0x1A7501)
    der = self_signed(cert.key, {DICE.dotted_string: dice, OID_ENDORSEMENTS: smuggled}, NOW - timedelta(hours=1), NOW)
    peer = VerifyPolicy(ALLOW_SOFTWARE, CollateralStore(), clock=lambda: NOW)
    with pytest.raises(EvidenceFormatError, match="endorsements accompany SGX/TDX quotes only"):
        peer.verify_certificate(der)
    with pytest.raises(EvidenceFormatError, match="a public key is not collateral"):
        Endorsements.decode(smuggled).add_to(CollateralStore())


def test_evidence_must_carry_the_binding_the_certificate_claims() -> None:
    key = generate_key()
    evidence = attester().collect_evidence(bytes(64))
    der = build_certificate(key, evidence, now=NOW)
    with pytest.raises(VerificationFailed, match="does not bind the certificate key"):
        verify(der, at=NOW, collateral=trusted_store(), policy=ALLOW_SOFTWARE)
    assert spki_of(key) != spki_of(generate_key())
