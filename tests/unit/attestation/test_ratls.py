"""RA-TLS certificates: Gramine's genuine certificate, TCG DICE and legacy extensions, key binding."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from inclavare.attestation import EvidenceFormatError, EvidenceKind, Policy, VerificationFailed, detect, inspect, verify
from inclavare.attestation.hazmat import ratls, x509lite
from inclavare.attestation.hazmat.certs import spki_der

from .vectors import BY_ID, VECTORS, at, cli_args, run_cli, store

S = BY_ID["sgx-gramine-ratls"]
QUOTE = (VECTORS / "sgx/gramine-ratls/ratls_quote.bin").read_bytes()
POLICY = Policy.genuine_only()
KEY = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())


def certificate(extensions: list[tuple[str, bytes]], key: ec.EllipticCurvePrivateKey = KEY, signer=None) -> bytes:  # type: ignore[no-untyped-def]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "RATS-TLS")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC))
    )
    for oid, value in extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return builder.sign(signer or key, hashes.SHA256()).public_bytes(Encoding.DER)


def spki(key: ec.EllipticCurvePrivateKey = KEY) -> bytes:
    return spki_der(x509.load_der_x509_certificate(certificate([], key)))


@pytest.mark.parametrize("name", ["tlscert.der", "tlscert.pem"])
def test_gramine_certificate_verifies_and_binds_its_key(name: str) -> None:
    path = VECTORS / "sgx/gramine-ratls" / name
    data = path.read_bytes()
    assert detect(data) == EvidenceKind.RATLS_CERTIFICATE
    args = cli_args(S)
    args[1] = str(path)
    rc, out, err = run_cli(*args)
    assert rc == 0, err
    doc = json.loads(out)
    assert (doc["kind"], doc["inner_kind"], doc["tee"]) == ("ratls-certificate", "sgx-quote", "sgx")
    assert doc["claims"]["mr_enclave"] == "f94ccbe6a504676b2edbefdcb8781a512913f7d8864c6f88592a843d0f9d4a66"
    cert = x509lite.load((VECTORS / "sgx/gramine-ratls/tlscert.der").read_bytes())
    assert x509lite.self_signed(cert)
    assert bytes.fromhex(doc["bound_key"]) == cert.spki
    assert doc["claims"]["report_data"] == hashlib.sha256(cert.spki).hexdigest() + "00" * 32
    assert inspect(data)["evidence_oid"] == "0.6.9.42.840.113741.1337.6"


def test_gramine_certificate_outside_its_validity_is_rejected() -> None:
    data = (VECTORS / "sgx/gramine-ratls/tlscert.der").read_bytes()
    with pytest.raises(
        VerificationFailed, match="ratls certificate: 'CN=RATLS,O=GramineDevelopers,C=US' is not valid at 2031"
    ):
        verify(data, at=datetime(2031, 1, 1, tzinfo=UTC), collateral=store(S), policy=POLICY)


def rejected(cert: bytes) -> str:
    with pytest.raises((VerificationFailed, EvidenceFormatError)) as info:
        verify(cert, at=at(S), collateral=store(S), policy=POLICY)
    return str(info.value)


def test_dice_evidence_for_another_key_is_rejected_after_full_verification() -> None:
    tagged = cbor2.dumps(cbor2.CBORTag(60000, [QUOTE]))
    message = rejected(certificate([(ratls.DICE_TAGGED_EVIDENCE, tagged)]))
    assert (
        message == "ratls certificate: REPORT_DATA does not bind the certificate key (CBOR [1, SHA-256(SPKI)] || zeros)"
    )
    rats_tls_tag = cbor2.dumps(cbor2.CBORTag(0x1A7501, [QUOTE]))
    assert "does not bind the certificate key" in rejected(certificate([(ratls.DICE_TAGGED_EVIDENCE, rats_tls_tag)]))


def test_dice_claims_buffer_is_checked_against_the_key() -> None:
    good = cbor2.dumps({"pubkey-hash": cbor2.dumps([1, hashlib.sha256(spki()).digest()])})
    tagged = cbor2.dumps(cbor2.CBORTag(60000, [QUOTE, good]))
    assert "(SHA-256(claims-buffer) || zeros)" in rejected(certificate([(ratls.DICE_TAGGED_EVIDENCE, tagged)]))
    wrong = cbor2.dumps({"pubkey-hash": [7, hashlib.sha384(b"other key").digest()]})
    tagged = cbor2.dumps(cbor2.CBORTag(60000, [QUOTE, wrong]))
    assert "pubkey-hash is not the hash of the certificate key" in rejected(
        certificate([(ratls.DICE_TAGGED_EVIDENCE, tagged)])
    )


def test_legacy_oids_and_declared_tee_mismatch() -> None:
    assert "(SHA-256(SPKI) || zeros)" in rejected(certificate([("1.2.840.113741.1337.6", QUOTE)]))
    assert "declares tdx evidence but holds a sgx-quote" in rejected(certificate([("1.2.840.113741.1337.8", QUOTE)]))
    two = [("1.2.840.113741.1337.6", QUOTE), (ratls.DICE_TAGGED_EVIDENCE, cbor2.dumps(cbor2.CBORTag(60000, [QUOTE])))]
    assert "needs exactly one evidence extension" in rejected(certificate(two))
    assert "found 0" in rejected(certificate([]))


def test_certificate_must_be_self_signed() -> None:
    other = ec.derive_private_key(0xFEDCBA, ec.SECP256R1())
    message = rejected(certificate([("1.2.840.113741.1337.6", QUOTE)], signer=other))
    assert message == "ratls certificate: 'CN=RATS-TLS' is not self-signed by its own key"


def test_binding_rules() -> None:
    key = spki()
    legacy = ratls.RatlsEvidence("legacy", "1.2.840.113741.1337.6", "sgx", b"", None)
    prefix, _ = ratls.expected_binding(legacy, key)
    assert ratls.binds(hashlib.sha256(key).digest() + bytes(32), prefix)
    assert not ratls.binds(hashlib.sha256(key).digest() + b"\1" + bytes(31), prefix)
    dice = ratls.RatlsEvidence("tcg-dice", ratls.DICE_TAGGED_EVIDENCE, "intel", b"", None)
    prefix, _ = ratls.expected_binding(dice, key)
    assert prefix == b"\x82\x01\x58\x20" + hashlib.sha256(key).digest()  # 36-byte CBOR [1, h'...']
    buffer = cbor2.dumps({"pubkey-hash": [8, hashlib.sha512(key).digest()], "nonce": b"n"})
    with_claims = ratls.RatlsEvidence("tcg-dice", ratls.DICE_TAGGED_EVIDENCE, "intel", b"", buffer)
    prefix, _ = ratls.expected_binding(with_claims, key)
    assert ratls.binds(hashlib.sha256(buffer).digest() + bytes(32), prefix)


def test_not_before_is_enforced() -> None:
    data = certificate([("1.2.840.113741.1337.6", QUOTE)])
    with pytest.raises(VerificationFailed, match="ratls certificate: 'CN=RATS-TLS' is not valid at 2019"):
        verify(data, at=datetime(2020, 1, 1, tzinfo=UTC) - timedelta(days=1), collateral=store(S), policy=POLICY)
