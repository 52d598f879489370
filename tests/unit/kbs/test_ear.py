"""AR4SI tiers, trust vectors and EAR-shaped token claims."""

from __future__ import annotations

import pytest

from inclavare.kbs.errors import TokenInvalid
from inclavare.kbs.protocol.ear import EAR_PROFILE, Tier, ear_claims, status, tee_pubkey_of, tier, trust_vector


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, Tier.NONE), (1, Tier.NONE), (-1, Tier.NONE),
        (2, Tier.AFFIRMING), (31, Tier.AFFIRMING), (-2, Tier.AFFIRMING), (-32, Tier.AFFIRMING),
        (32, Tier.WARNING), (95, Tier.WARNING), (-33, Tier.WARNING), (-96, Tier.WARNING),
        (96, Tier.CONTRAINDICATED), (127, Tier.CONTRAINDICATED),
        (-97, Tier.CONTRAINDICATED), (-128, Tier.CONTRAINDICATED),
    ],
)  # fmt: skip
def test_tiers(value, expected):
    assert tier(value) is expected


def test_status_is_the_worst_tier():
    assert status({}) is Tier.NONE
    assert status({"executables": 3, "hardware": 2}) is Tier.AFFIRMING
    assert status({"executables": 3, "hardware": 32, "configuration": 2}) is Tier.WARNING
    assert status({"executables": 33, "hardware": 97}) is Tier.CONTRAINDICATED


def test_trust_vector_from_policy_output():
    out = {"executables": 3, "file_system": 2, "hardware": 97, "svn_ok": True, "helper": "x"}
    assert trust_vector(out) == {"executables": 3, "file-system": 2, "hardware": 97}
    for bad in (128, -129, "3", True, 2.5):
        with pytest.raises(ValueError, match="executables"):
            trust_vector({"executables": bad})


def test_claims_shape_and_tee_pubkey_path():
    jwk = {"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW", "x": "a", "y": "b"}
    claims = ear_claims(
        issuer="kbs", iat=10, exp=20, jti="j", nonce="n", tee_pubkey=jwk,
        vector={"executables": 3, "hardware": 32}, policy_id="default", annotated={"tee": "software"}, build="b",
    )  # fmt: skip
    assert claims["eat_profile"] == EAR_PROFILE
    assert (claims["iss"], claims["iat"], claims["exp"], claims["jti"], claims["eat_nonce"]) == (
        "kbs",
        10,
        20,
        "j",
        "n",
    )
    cpu0 = claims["submods"]["cpu0"]
    assert cpu0["ear.status"] == "warning"
    assert cpu0["ear.trustworthiness-vector"] == {"executables": 3, "hardware": 32}
    assert cpu0["ear.appraisal-policy-id"] == "policy:default"
    # trustee's TOKEN_TEE_PUBKEY_PATH_EAR
    assert cpu0["ear.veraison.annotated-evidence"]["runtime_data_claims"]["tee-pubkey"] == jwk
    assert tee_pubkey_of(claims) == jwk


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"submods": {"cpu0": {}}},
        {"submods": {"cpu0": {"ear.veraison.annotated-evidence": {"runtime_data_claims": {"tee-pubkey": "k"}}}}},
    ],
)
def test_missing_tee_pubkey(claims):
    with pytest.raises(TokenInvalid):
        tee_pubkey_of(claims)
