"""RCAR message parsing: located 400s, version and tee checks, evidence encodings."""

from __future__ import annotations

import base64

import pytest

from inclavare.attestation.claims import Tee
from inclavare.kbs.errors import AuthFailed, InvalidRequest
from inclavare.kbs.protocol.messages import (
    KBS_TEE,
    PROTOCOL_VERSION,
    TEE_EVIDENCE,
    Attestation,
    Challenge,
    Request,
    check_version,
    decode_b64,
    encode_evidence,
    parse_json,
)

RUNTIME = {"nonce": "abc", "tee-pubkey": {"kty": "EC"}}


def test_request_round_trip_and_hash_algorithms():
    req = Request.parse(
        {"version": PROTOCOL_VERSION, "tee": "tdx", "extra-params": {"supported-hash-algorithms": ["SHA384"]}}
    )
    assert req.supported_hash_algorithms == ("sha384",)
    assert Request.parse(req.to_json()) == req
    assert Request.parse({"version": "0.4.0", "tee": "sgx", "extra-params": ""}).supported_hash_algorithms is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"tee": "tdx"}, "request: version: missing"),
        ({"version": 4, "tee": "tdx"}, "request: version: must be a non-empty string"),
        ({"version": "0.4.0", "tee": "tdx", "extra-params": []}, "request: extra-params: must be an object"),
        (
            {"version": "0.4.0", "tee": "tdx", "extra-params": {"supported-hash-algorithms": "sha384"}},
            "supported-hash-algorithms: must be a list of strings",
        ),
    ],
)
def test_malformed_requests_name_the_field(doc, message):
    with pytest.raises(InvalidRequest, match=message):
        Request.parse(doc).supported_hash_algorithms  # noqa: B018 - the property validates


def test_unknown_tee_is_an_auth_failure():
    with pytest.raises(AuthFailed, match="tee 'cca' is not supported"):
        Request.parse({"version": "0.4.0", "tee": "cca"})


@pytest.mark.parametrize("version", ["0.4.0", "0.4.7"])
def test_compatible_versions(version):
    check_version(version)


@pytest.mark.parametrize(
    ("version", "error"),
    [("0.1.1", AuthFailed), ("1.4.0", AuthFailed), ("0.4", InvalidRequest), ("x.y.z", InvalidRequest)],
)
def test_incompatible_versions(version, error):
    with pytest.raises(error):
        check_version(version)


def test_challenge_selected_algorithm():
    assert (
        Challenge.parse({"nonce": "n", "extra-params": {"selected-hash-algorithm": "SHA512"}}).selected_hash_algorithm
        == "sha512"
    )
    assert Challenge.parse({"nonce": "n", "extra-params": ""}).selected_hash_algorithm is None


def test_attestation_parse_and_runtime_data():
    doc = {"runtime-data": RUNTIME, "tee-evidence": {"primary_evidence": "AAEC", "additional_evidence": ""}}
    att = Attestation.parse(doc)
    assert att.runtime_data() == {"tee-pubkey": {"kty": "EC"}, "nonce": "abc", "additional-evidence": ""}
    assert Attestation.parse(att.to_json()) == att


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"tee-evidence": {"primary_evidence": ""}}, "attestation: runtime-data: missing"),
        (
            {"runtime-data": {"tee-pubkey": {}}, "tee-evidence": {"primary_evidence": ""}},
            "runtime-data: nonce: missing",
        ),
        (
            {"runtime-data": {"nonce": "n", "tee-pubkey": "k"}, "tee-evidence": {"primary_evidence": ""}},
            "tee-pubkey: must be an object",
        ),
        ({"runtime-data": RUNTIME, "tee-evidence": {}}, "primary_evidence: missing"),
        (
            {"runtime-data": RUNTIME, "tee-evidence": {"primary_evidence": "", "additional_evidence": {}}},
            "additional_evidence: must be a string",
        ),
        (
            {"runtime-data": RUNTIME, "tee-evidence": {"primary_evidence": ""}, "init-data": "x"},
            "init-data: must be an object",
        ),
    ],
)
def test_malformed_attestations_name_the_field(doc, message):
    with pytest.raises(InvalidRequest, match=message):
        Attestation.parse(doc)


@pytest.mark.parametrize(
    "primary",
    [
        base64.b64encode(b"\xfb\xff evidence").decode(),
        base64.urlsafe_b64encode(b"\xfb\xff evidence").decode().rstrip("="),
        {"evidence": base64.b64encode(b"\xfb\xff evidence").decode()},
        {"quote": base64.b64encode(b"\xfb\xff evidence").decode()},  # trustee's SGX/TDX shape
        encode_evidence(b"\xfb\xff evidence"),
    ],
)
def test_evidence_encodings(primary):
    assert Attestation("n", {}, primary).evidence_bytes() == b"\xfb\xff evidence"


@pytest.mark.parametrize("primary", ["not base64!", {"other": "AAAA"}, 42, None])
def test_bad_evidence_encodings(primary):
    with pytest.raises(InvalidRequest, match="primary_evidence"):
        Attestation("n", {}, primary).evidence_bytes()


def test_parse_json_requires_an_object():
    assert parse_json(b'{"a": 1}', "x") == {"a": 1}
    for body in (b"[]", b"nope", b"\xff"):
        with pytest.raises(InvalidRequest, match=r"^x: "):
            parse_json(body, "x")


def test_decode_b64_is_strict():
    with pytest.raises(ValueError, match=r"(?i)base64|invalid"):
        decode_b64("ab$d")


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a": NaN}', b'{"a": -Infinity}', b"{"])
def test_bodies_that_are_not_json_are_a_400(body):
    """Deep nesting used to escape as RecursionError (a 500); NaN is not JSON."""
    with pytest.raises(InvalidRequest, match="request: not valid JSON"):
        parse_json(body, "request")


def test_every_attester_tee_has_the_kbs_types_name_the_broker_accepts():
    """The client declares ``KBS_TEE[attester.tee]``: each one must pass /auth (kbs-types spells SEV-SNP ``snp``)."""
    assert set(KBS_TEE) == set(Tee)
    assert KBS_TEE[Tee.SEV_SNP] == "snp"
    for name in KBS_TEE.values():
        assert Request.parse({"version": PROTOCOL_VERSION, "tee": name}).tee in TEE_EVIDENCE
