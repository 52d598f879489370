"""Against a peer that follows rats-tls's current wire format (:mod:`.ratspeer`): null mode, refusals, slack.

The rats-tls C library cannot be built here; the peer is written from its
sources (docs/ratls.md, "Compatibility"), and :mod:`.test_libcbor_model`
checks its CBOR against the real libcbor 0.8 where that library is installed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from concurrent.futures import Future

import cbor2
import pytest

from inclavare.attestation import Policy, VerificationFailed, inspect
from inclavare.attestation.errors import EvidenceFormatError
from inclavare.attestation.ratls import (
    AttestedSocket,
    Endorsements,
    NullAttester,
    NullVerifier,
    PeerRefused,
    RatlsContext,
    VerifyPolicy,
    client_context,
    connect,
    server_context,
)

from . import gramine
from . import libcbor_model as cb
from . import ratspeer as rp
from .world import Loopback, attester, software_policy

HOST_HELLO = rp.GREETING


@pytest.fixture
def loop():
    lb = Loopback()
    yield lb
    lb.close()


@pytest.fixture
def peer_server():
    made: list[rp.RatsTlsServer] = []

    def make(*args: object, **kw: object) -> rp.RatsTlsServer:
        made.append(rp.RatsTlsServer(*args, **kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for server in made:
        server.close()


def software(hash32: bytes) -> tuple[str, bytes]:
    """Our software attester behind rats-tls's attester interface (hash -> REPORT_DATA[0:32])."""
    return "software", attester().collect_evidence(hash32.ljust(64, b"\0")).data


# --- null mode: rats-tls nullattester / nullverifier against --attester null / --verifier null ---


def test_null_rats_tls_server_to_our_null_verifier(peer_server, caplog) -> None:
    server = peer_server()
    done = server.serve()
    with (
        caplog.at_level(logging.WARNING, "inclavare.ratls"),
        connect(server.address, client_context(NullVerifier()), timeout=10) as conn,
    ):
        assert (conn.peer, conn.unattested) == (None, True)
        conn.sendall(HOST_HELLO)
        assert conn.recv(300) == HOST_HELLO  # the host sample server echoes
    assert done.result(10).error is None
    assert [r.getMessage() for r in caplog.records] == [
        "UNATTESTED: accepted a peer without appraisal (--verifier null); its certificate carries no evidence"
    ]


def echo(loop: Loopback, context: RatlsContext) -> Future[AttestedSocket]:
    """One connection served like rats-tls's host sample server: the record comes back unchanged."""

    def serve() -> AttestedSocket:
        with context.wrap(loop.listener.accept()[0]) as conn:
            conn.sendall(conn.recv(256))
        return conn

    return loop.pool.submit(serve)


def settle(done: Future[AttestedSocket]) -> None:
    """The refusing client closed; our side saw an end of file or a reset."""
    try:
        done.result(10)
    except OSError:
        pass


def test_our_null_server_to_a_rats_tls_client(loop, caplog) -> None:
    with caplog.at_level(logging.WARNING, "inclavare.ratls"):
        done = echo(loop, server_context(NullAttester()))
        result = rp.rats_tls_client(loop.address)
        assert done.result(10).unattested
    # rats-tls found no evidence, so it chose its nullverifier; the host client's check passed
    assert (result.verdict.evidence_type, result.verdict.verifier, result.reply) == ("", "nullverifier", HOST_HELLO)
    assert result.verdict.log == ["No evidence available in peer's certificate"]
    assert [r.getMessage() for r in caplog.records] == [
        "UNATTESTED: issued a certificate without evidence (--attester null)"
    ]


def test_mutual_null_both_directions(loop, peer_server) -> None:
    server = peer_server(mutual=True)  # rats-tls server -m, nullattester, no -v
    done = server.serve()
    with connect(server.address, client_context(NullVerifier(), attester=NullAttester()), timeout=10) as conn:
        assert conn.unattested
        conn.sendall(b"m")
        assert conn.recv(10) == b"m"
    served = done.result(10)
    assert served.error is None
    assert served.verdict is not None
    assert served.verdict.verifier == "nullverifier"  # our client's certificate carried no evidence
    ours = echo(loop, server_context(NullAttester(), verify_policy=NullVerifier()))
    result = rp.rats_tls_client(loop.address, mutual=True)
    conn = ours.result(10)
    assert (conn.unattested, conn.peer) == (True, None)
    assert (result.verdict.verifier, result.reply) == ("nullverifier", HOST_HELLO)


def test_null_is_refused_unless_named(loop, peer_server) -> None:
    server = peer_server()
    server.serve()
    with pytest.raises(PeerRefused) as info:
        connect(server.address, client_context(software_policy()), timeout=10)
    assert str(info.value).endswith("found 0: the peer is unattested (rats-tls's nullattester sends no evidence)")
    # A rats-tls client that names its verifier refuses our evidence-less certificate.
    done = echo(loop, server_context(NullAttester()))
    with pytest.raises(rp.Refused, match="failed to verify evidence"):
        rp.rats_tls_client(loop.address, verifier="sgx_ecdsa")
    settle(done)


# --- attested certificates across the two implementations ---


def test_software_evidence_is_refused_cleanly_by_rats_tls(loop) -> None:
    """Tag 0x1A75F0 lies outside rats-tls's 60000..0x1A7506: a clean refusal, not its nullverifier."""
    done = echo(loop, server_context(attester()))
    with pytest.raises(rp.Refused, match=r"^Bad cbor data: invalid cbor tag got: 0x1a75f0$"):
        rp.rats_tls_client(loop.address)
    settle(done)


def test_the_hazards_of_the_old_format_for_a_rats_tls_reader() -> None:
    """Why the old format had to go (the model reproduces rats-tls's reader)."""
    one = rp.generate_certificate(lambda _h: ("sgx_ecdsa", gramine.QUOTE))
    evidence = gramine.QUOTE
    one_element = cb.tag(60000, cb.array(cb.bstr(evidence)))  # what this project wrote before
    with pytest.raises(rp.Crash, match=r"cbor_array_get\(array, 1\) == NULL"):
        rp.parse_evidence_buffer(one_element, [])
    old_tag = cb.tag(0x1A7501, cb.array(cb.bstr(evidence), cb.bstr(one.claims_buffer)))
    log: list[str] = []
    assert rp.parse_evidence_buffer(old_tag, log)[0] == ""  # an empty type: the nullverifier is chosen


def test_rats_tls_certificate_with_libcbor_slack_verifies_end_to_end(peer_server) -> None:
    """rats-tls built with libcbor < 0.10: slack in pubkey-hash, claims buffer and extension; sample claims."""
    server = peer_server(software, old_libcbor=True, tag=0x1A75F0)
    done = server.serve()
    shown = inspect(server.cert.der)
    assert shown["libcbor_slack"] > 0
    assert shown["custom_claims"] == {"key_0": b"value_0\0".hex(), "key_1": b"value_1\0".hex()}
    claims = cb.load(server.cert.claims_buffer)
    assert (len(server.cert.claims_buffer), len(claims.children[1].payload)) == (128, 64)  # 32 * 2^k buffers
    with connect(server.address, client_context(software_policy()), timeout=10) as conn:
        assert conn.peer is not None
        assert conn.peer.claims.report_data == hashlib.sha256(server.cert.claims_buffer).digest() + bytes(32)
        assert conn.custom_claims == {"key_0": b"value_0\0", "key_1": b"value_1\0"}
        conn.sendall(b"x")
        assert conn.recv(10) == b"x"
    assert done.result(10).error is None


def test_slack_that_is_not_libcbor_is_refused() -> None:
    cert = rp.generate_certificate(software, tag=0x1A75F0)
    assert cert.evidence_buffer is not None
    bad = rp.Certificate(cert.der, cert.key, cert.claims_buffer, cert.evidence_buffer + b"\0")
    der = _with_evidence(bad)
    with pytest.raises(EvidenceFormatError, match=r"1 bytes after the CBOR item, and \d+ is not the buffer size"):
        software_policy().verify_certificate(der)


def test_genuine_quote_in_a_rats_tls_certificate_is_read_up_to_the_binding() -> None:
    quote = gramine.QUOTE
    cert = rp.generate_certificate(lambda _h: ("sgx_ecdsa", quote), old_libcbor=True)
    peer = VerifyPolicy(Policy.genuine_only(), gramine.store(), clock=lambda: gramine.AT)
    with pytest.raises(VerificationFailed, match=r"\(SHA-256\(claims-buffer\) \|\| zeros\)"):
        peer.verify_certificate(_resigned(cert, gramine.AT))


def _resigned(cert: rp.Certificate, at: object) -> bytes:
    """The same certificate, valid at the vector's fixed verification date."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    old = x509.load_der_x509_certificate(cert.der)
    builder = (
        x509.CertificateBuilder().serial_number(1).subject_name(old.subject).issuer_name(old.issuer)
        .public_key(old.public_key()).not_valid_before(at - timedelta(hours=1))  # type: ignore[operator]
        .not_valid_after(at + timedelta(days=365))  # type: ignore[operator]
    )  # fmt: skip
    for ext in old.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(cert.key, hashes.SHA256()).public_bytes(Encoding.DER)


def _with_evidence(cert: rp.Certificate) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    old = x509.load_der_x509_certificate(cert.der)
    builder = (
        x509.CertificateBuilder().serial_number(1).subject_name(old.subject).issuer_name(old.issuer)
        .public_key(old.public_key()).not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )  # fmt: skip
    for ext in old.extensions:
        value = ext.value
        if ext.oid.dotted_string == rp.OID_EVIDENCE:
            value = x509.UnrecognizedExtension(ext.oid, cert.evidence_buffer or b"")
        builder = builder.add_extension(value, ext.critical)
    return builder.sign(cert.key, hashes.SHA256()).public_bytes(Encoding.DER)


def test_our_endorsements_are_read_by_rats_tls() -> None:
    endorsements = gramine.endorsements()
    rp.parse_endorsements("sgx_ecdsa", endorsements.encode(60000))  # the version is a 32-bit-wide integer
    shortest = cbor2.dumps(cbor2.CBORTag(60000, list(dataclasses.astuple(endorsements))))  # what cbor2 writes
    with pytest.raises(rp.Refused, match=r"cbor_int_get_width\(array_i\) == CBOR_INT_32"):
        rp.parse_endorsements("sgx_ecdsa", shortest)
    assert Endorsements.decode(shortest) == endorsements  # either width is read here
