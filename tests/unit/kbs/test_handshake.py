"""The client side of RCAR, checked against the server's own parsing and binding."""

from __future__ import annotations

import pytest

from inclavare.kbs.errors import InvalidRequest
from inclavare.kbs.jwe import TeeKey
from inclavare.kbs.protocol.binding import binds, runtime_data_digest
from inclavare.kbs.protocol.handshake import ClientHandshake, HandshakeError
from inclavare.kbs.protocol.messages import Attestation, Request, check_version


def test_messages_are_what_the_server_expects():
    key = TeeKey.generate().public_jwk()
    hs = ClientHandshake("software", key, hash_algorithms=("sha256", "sha512"))
    request = Request.parse(hs.request())
    check_version(request.version)
    assert request.supported_hash_algorithms == ("sha256", "sha512")
    report_data = hs.challenge({"nonce": "Tk9OQ0U=", "extra-params": {"selected-hash-algorithm": "sha512"}})
    assert hs.hash_algorithm == "sha512"
    att = Attestation.parse(hs.attestation(b"evidence bytes"))
    assert (att.nonce, dict(att.tee_pubkey), att.evidence_bytes()) == ("Tk9OQ0U=", key, b"evidence bytes")
    assert len(report_data) == 64
    assert binds(report_data, runtime_data_digest(att.runtime_data(), "sha512"))


def test_default_algorithm_without_selection():
    hs = ClientHandshake("software", TeeKey.generate().public_jwk())
    hs.challenge({"nonce": "bg==", "extra-params": ""})
    assert hs.hash_algorithm == "sha384"


@pytest.mark.parametrize(
    "challenge",
    [[], {"extra-params": {}}, {"nonce": "bg==", "extra-params": {"selected-hash-algorithm": "sha1"}}],
)
def test_unusable_challenges(challenge):
    hs = ClientHandshake("software", TeeKey.generate().public_jwk(), hash_algorithms=("sha384",))
    with pytest.raises(InvalidRequest, match="challenge"):
        hs.challenge(challenge)


def test_order_is_enforced():
    hs = ClientHandshake("software", TeeKey.generate().public_jwk())
    with pytest.raises(HandshakeError, match="no challenge yet"):
        hs.attestation(b"x")
    for bad in ({}, {"token": "not-a-jwt"}, []):
        with pytest.raises(HandshakeError, match="no token"):
            ClientHandshake.token(bad)
    assert ClientHandshake.token({"token": "a.b.c"}) == "a.b.c"
