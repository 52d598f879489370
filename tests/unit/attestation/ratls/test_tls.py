"""Attested TLS over loopback: server-only and mutual modes, and every way a peer is refused."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from inclavare.attestation import CollateralStore, Policy, PolicyRejected, VerificationFailed
from inclavare.attestation.errors import EvidenceFormatError
from inclavare.attestation.ratls import (
    PeerRefused,
    RatlsCertificate,
    RatlsContext,
    RatlsError,
    VerifyPolicy,
    build_certificate,
    client_context,
    connect,
    generate_key,
    report_data_for,
    server_context,
    spki_of,
)
from inclavare.attestation.ratls.peer import utc_now

from .world import CLIENT_IDENTITY, IDENTITY, Loopback, attester, self_signed, software_policy, trusted_store


@pytest.fixture
def loop():
    lb = Loopback()
    yield lb
    lb.close()


def refused(loop: Loopback, server: RatlsContext, client: RatlsContext) -> PeerRefused:
    done = loop.serve(server, echo=False)
    with pytest.raises(PeerRefused) as info:
        connect(loop.address, client, timeout=10)
    conn = done.result(10)
    assert conn is not None
    conn.close()
    return info.value


def test_server_attests_and_client_appraises(loop) -> None:
    policy = VerifyPolicy.reference_values(
        measurements=[b"M" * 32], signers=[b"S" * 32], min_svn=5, allow_software=True, collateral=trusted_store()
    )
    done = loop.serve(server_context(attester()))
    with connect(loop.address, client_context(policy), timeout=10) as conn:
        assert conn.version() == "TLSv1.3"
        assert conn.peer is not None
        assert (conn.peer.tee.value, conn.peer.claims.measurement, conn.peer.claims.svn) == ("software", b"M" * 32, 5)
        assert conn.peer.bound_key is not None
        conn.sendall(b"hi")
        assert conn.recv(100) == b"echo:hi"
    server_side = done.result(10)
    assert server_side is not None
    assert server_side.peer is None  # not mutual: the server does not ask for a client certificate


def test_mutual_mode_both_sides_appraise(loop) -> None:
    seen = []
    server_policy = software_policy(measurements=frozenset({b"C" * 32}))
    server_policy = VerifyPolicy(server_policy.policy, server_policy.collateral, callback=seen.append)
    done = loop.serve(server_context(attester(), verify_policy=server_policy))
    client = client_context(software_policy(measurements=frozenset({b"M" * 32})), attester=attester(CLIENT_IDENTITY))
    assert client.mutual
    with connect(loop.address, client, timeout=10) as conn:
        conn.sendall(b"m")
        assert conn.recv(100) == b"echo:m"
        assert conn.peer is not None
        assert conn.peer.claims.measurement == b"M" * 32
    server_side = done.result(10)
    assert server_side is not None
    assert server_side.peer is not None
    assert server_side.peer.claims.measurement == b"C" * 32
    assert seen == [server_side.peer]  # the verification callback saw the verified claims


def test_rsa_3072_certificates_work_too(loop) -> None:
    loop.serve(server_context(attester(), key_algorithm="rsa-3072"))
    with connect(loop.address, client_context(software_policy()), timeout=10) as conn:
        assert conn.peer is not None
        conn.sendall(b"r")
        assert conn.recv(100) == b"echo:r"


def test_evidence_bound_to_another_key_is_refused(loop) -> None:
    bound, served = generate_key(), generate_key()
    evidence = attester().collect_evidence(report_data_for(spki_of(bound)))
    der = build_certificate(served, evidence, now=utc_now())
    server = RatlsContext(server_side=True, certificate=RatlsCertificate(der, served, evidence), verify_policy=None)
    error = refused(loop, server, client_context(software_policy()))
    assert isinstance(error.__cause__, VerificationFailed)
    assert str(error) == (
        "ratls peer refused: ratls certificate: REPORT_DATA does not bind the certificate key "
        "(SHA-256(claims-buffer) || zeros)"
    )


def test_wrong_measurement_is_refused_by_policy(loop) -> None:
    error = refused(
        loop, server_context(attester()), client_context(software_policy(measurements=frozenset({b"X" * 32})))
    )
    assert isinstance(error.__cause__, PolicyRejected)
    assert str(error) == (
        "ratls peer refused: policy: measurements: software measurement " + "4d" * 32 + " is not a reference value"
    )


def test_software_evidence_needs_allow_software(loop) -> None:
    strict = VerifyPolicy(Policy(), trusted_store())
    error = refused(loop, server_context(attester()), client_context(strict))
    assert str(error) == "ratls peer refused: policy: allow_software: software evidence is not accepted by this policy"
    untrusted = VerifyPolicy(Policy(allow_software=True), CollateralStore())
    error = refused(loop, server_context(attester()), client_context(untrusted))
    assert "no trusted software-TEE host keys" in str(error)


def test_tampered_extension_is_refused(loop) -> None:
    key = generate_key()
    evidence = attester().collect_evidence(report_data_for(spki_of(key)))
    der = bytearray(build_certificate(key, evidence, now=utc_now()))
    at = bytes(der).index(b"M" * 32)  # the measurement inside the software evidence inside the extension
    der[at] ^= 1
    # Re-sign the TBS so TLS accepts the certificate: only the evidence signature can catch this.
    tampered = x509.load_der_x509_certificate(bytes(der))
    builder = (
        x509.CertificateBuilder()
        .subject_name(tampered.subject)
        .issuer_name(tampered.issuer)
        .public_key(tampered.public_key())
        .serial_number(1)
        .not_valid_before(tampered.not_valid_before_utc)
        .not_valid_after(tampered.not_valid_after_utc)
    )
    for ext in tampered.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    resigned = builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)
    server = RatlsContext(server_side=True, certificate=RatlsCertificate(resigned, key, evidence), verify_policy=None)
    error = refused(loop, server, client_context(software_policy()))
    assert str(error) == "ratls peer refused: software evidence: signature does not verify under the host key"
    # Not re-signed: the certificate's own signature fails first (TLS itself would not mind).
    server = RatlsContext(server_side=True, certificate=RatlsCertificate(bytes(der), key, evidence), verify_policy=None)
    error = refused(loop, server, client_context(software_policy()))
    assert str(error) == (
        "ratls peer refused: ratls certificate: 'O=Inclavare Containers,CN=RATS-TLS' is not self-signed by its own key"
    )


def test_plain_tls_peer_without_evidence_is_refused(loop) -> None:
    key = generate_key()
    now = utc_now()
    der = self_signed(key, {}, now - timedelta(hours=1), now + timedelta(days=1))
    evidence = attester().collect_evidence(bytes(64))
    server = RatlsContext(server_side=True, certificate=RatlsCertificate(der, key, evidence), verify_policy=None)
    error = refused(loop, server, client_context(software_policy()))
    assert isinstance(error.__cause__, EvidenceFormatError)
    assert str(error) == (
        "ratls peer refused: ratls certificate: needs exactly one evidence extension (2.23.133.5.4.9 or a legacy "
        "RA-TLS OID), found 0: the peer is unattested (rats-tls's nullattester sends no evidence)"
    )


def test_mutual_server_refuses_a_client_without_certificate(loop) -> None:
    done = loop.serve(server_context(attester(), verify_policy=software_policy()))
    client = client_context(software_policy())  # no attester: no client certificate
    try:
        conn = connect(loop.address, client, timeout=10)
        conn.sendall(b"x")
        conn.recv(10)  # TLS 1.3: the server's alert arrives after the client's handshake
        conn.close()
    except (RatlsError, OSError):
        pass
    with pytest.raises(RatlsError, match=r"^ratls handshake failed: peer did not return a certificate$"):
        done.result(10)


def test_mutual_server_refuses_a_client_with_the_wrong_measurement(loop) -> None:
    done = loop.serve(server_context(attester(), verify_policy=software_policy(measurements=frozenset({b"C" * 32}))))
    client = client_context(software_policy(), attester=attester(IDENTITY))  # claims M*32, the server wants C*32
    conn = connect(loop.address, client, timeout=10)
    assert conn.peer is not None
    conn.sendall(b"x")
    assert conn.recv(10) == b""  # the server closed without answering
    conn.close()
    with pytest.raises(PeerRefused, match="policy: measurements: software measurement 4d4d"):
        done.result(10)


def test_context_preconditions() -> None:
    with pytest.raises(RatlsError, match="a server needs an attester"):
        RatlsContext(server_side=True, certificate=None, verify_policy=None)
    with pytest.raises(RatlsError, match="a client always verifies the server"):
        RatlsContext(server_side=False, certificate=None, verify_policy=None)
    with pytest.raises(RatlsError, match=r"ratls connect to 127\.0\.0\.1:1: Connection refused"):
        connect(("127.0.0.1", 1), client_context(software_policy()), timeout=5)
    a, b = socket.socketpair()
    b.close()
    with pytest.raises(RatlsError, match="ratls handshake failed"):
        client_context(software_policy()).wrap(a)
