"""Hash-algorithm negotiation and the report-data binding (nonce + TEE public key), as trustee computes it."""

from __future__ import annotations

import hashlib

import pytest

from inclavare.kbs.errors import AuthFailed, ConfigError
from inclavare.kbs.protocol.binding import (
    binds,
    check_algorithm,
    report_data_for,
    runtime_data_digest,
    select_hash_algorithm,
)
from inclavare.kbs.protocol.messages import Attestation

JWK = {"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW", "x": "eA", "y": "eQ"}


@pytest.mark.parametrize(
    ("offered", "preferred", "chosen"),
    [
        (None, "sha384", "sha384"),  # no list: trustee's default
        (("sha256", "sha384", "sha512"), "sha384", "sha384"),
        (("sha256",), "sha384", "sha256"),
        (("sha256", "sha512"), "sha384", "sha512"),  # strongest shared
        (("sha256", "sha512"), "sha256", "sha256"),  # preference honoured when offered
    ],
)
def test_negotiation(offered, preferred, chosen):
    assert select_hash_algorithm(offered, preferred) == chosen


def test_no_common_algorithm():
    with pytest.raises(AuthFailed, match="no common hash algorithm"):
        select_hash_algorithm(("md5", "sm3"))


def test_configured_algorithm_is_checked():
    with pytest.raises(ConfigError, match=r"attestation.hash_algorithm: 'md5'"):
        check_algorithm("md5")


def test_digest_is_the_hash_of_the_canonical_runtime_data():
    att = Attestation(nonce="bm9uY2U=", tee_pubkey=JWK, primary_evidence="")
    expected = (
        b'{"additional-evidence":"","nonce":"bm9uY2U=",'
        b'"tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"eA","y":"eQ"}}'
    )
    for name in ("sha256", "sha384", "sha512"):
        assert runtime_data_digest(att.runtime_data(), name) == hashlib.new(name, expected).digest()
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        runtime_data_digest(att.runtime_data(), "md5")


def test_report_data_is_zero_extended():
    digest = hashlib.sha384(b"x").digest()
    assert report_data_for(digest) == digest + bytes(16)
    with pytest.raises(ValueError, match="does not fit"):
        report_data_for(bytes(65))


@pytest.mark.parametrize(
    ("report_data", "ok"),
    [
        (hashlib.sha384(b"x").digest() + bytes(16), True),
        (hashlib.sha384(b"x").digest() + bytes(15) + b"\x01", False),  # a non-zero tail smuggles data
        (hashlib.sha384(b"y").digest() + bytes(16), False),
        (hashlib.sha384(b"x").digest()[:40], False),
        (None, False),
    ],
)
def test_binds(report_data, ok):
    assert binds(report_data, hashlib.sha384(b"x").digest()) is ok
