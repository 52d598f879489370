"""EAR-shaped attestation results: the AR4SI trust vector and the token's claims.

The attestation token is an EAT Attestation Result (draft-ietf-rats-ear),
as trustee's attestation service issues it since its EAR work::

    {"eat_profile": "tag:github.com,2023:veraison/ear", "iat", "exp", "iss", "jti", "eat_nonce",
     "ear.verifier-id": {"developer", "build"},
     "submods": {"cpu0": {"ear.status": "affirming" | "warning" | "contraindicated" | "none",
                          "ear.trustworthiness-vector": {"executables": 3, "hardware": 2, ...},
                          "ear.appraisal-policy-id": "policy:default",
                          "ear.veraison.annotated-evidence": {..., "runtime_data_claims": {"nonce", "tee-pubkey"}}}}}

The TEE public key sits where trustee's token verifier looks for EAR tokens
(``TOKEN_TEE_PUBKEY_PATH_EAR``), so a passport-model relying party can find it.

AR4SI (draft-ietf-rats-ar4si §2.3) claim values are signed 8-bit integers
whose magnitude gives the tier: -1..1 none, 2..31 affirming, 32..95
warning, 96..127 contraindicated (negative values mirror them). The
submodule status is the worst tier of its vector, as Veraison's EAR library
computes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from ..errors import TokenInvalid

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
SUBMOD = "cpu0"
# Ref: trustee kbs/src/token/mod.rs TOKEN_TEE_PUBKEY_PATH_EAR
ANNOTATED = "ear.veraison.annotated-evidence"
TRUST_CLAIMS = (
    "instance-identity",
    "configuration",
    "executables",
    "file-system",
    "hardware",
    "runtime-opaque",
    "storage-opaque",
    "sourced-data",
)


class Tier(StrEnum):
    NONE = "none"
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"


_RANK = {Tier.NONE: 0, Tier.AFFIRMING: 1, Tier.WARNING: 2, Tier.CONTRAINDICATED: 3}


def tier(value: int) -> Tier:
    """The AR4SI tier of one trustworthiness claim value (-128..127)."""
    magnitude = -value - 1 if value < 0 else value  # -2..-32 mirrors 2..31, and so on
    if value in (-1, 0, 1):
        return Tier.NONE
    if magnitude <= 31:
        return Tier.AFFIRMING
    if magnitude <= 95:
        return Tier.WARNING
    return Tier.CONTRAINDICATED


def trust_vector(policy_output: Mapping[str, object]) -> dict[str, int]:
    """The AR4SI vector from an attestation policy's result (Rego names use ``_`` for ``-``).

    Absent claims are left out (AR4SI: "no claim"); a present claim must be
    an integer in -128..127, anything else is a policy bug and raises ValueError.
    """
    vector: dict[str, int] = {}
    for name in TRUST_CLAIMS:
        value = policy_output.get(name.replace("-", "_"), policy_output.get(name))
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not -128 <= value <= 127:
            raise ValueError(f"trust claim {name}: {value!r} is not an AR4SI value (-128..127)")
        vector[name] = value
    return vector


def status(vector: Mapping[str, int]) -> Tier:
    """The worst tier over the vector (``none`` for an empty vector)."""
    worst = Tier.NONE
    for value in vector.values():
        t = tier(value)
        if _RANK[t] > _RANK[worst]:
            worst = t
    return worst


def ear_claims(
    *,
    issuer: str,
    iat: int,
    exp: int,
    jti: str,
    nonce: str,
    tee_pubkey: Mapping[str, object],
    vector: Mapping[str, int],
    policy_id: str,
    annotated: Mapping[str, object],
    build: str,
) -> dict[str, object]:
    """The token's claim set (RFC 7519 registered claims + EAR)."""
    evidence = {**annotated, "runtime_data_claims": {"nonce": nonce, "tee-pubkey": dict(tee_pubkey)}}
    return {
        "eat_profile": EAR_PROFILE,
        "iss": issuer,
        "iat": iat,
        "exp": exp,
        "jti": jti,
        "eat_nonce": nonce,
        "ear.verifier-id": {"developer": "https://github.com/inclavare-containers", "build": build},
        "submods": {
            SUBMOD: {
                "ear.status": status(vector).value,
                "ear.trustworthiness-vector": dict(vector),
                "ear.appraisal-policy-id": f"policy:{policy_id}",
                ANNOTATED: evidence,
            }
        },
    }


def tee_pubkey_of(claims: Mapping[str, object]) -> Mapping[str, object]:
    """The TEE public key recorded in an EAR token (``/submods/cpu0/<annotated>/runtime_data_claims/tee-pubkey``)."""
    node: object = claims
    for step in ("submods", SUBMOD, ANNOTATED, "runtime_data_claims", "tee-pubkey"):
        if not isinstance(node, Mapping) or step not in node:
            raise TokenInvalid("token: no tee-pubkey claim")
        node = node[step]
    if not isinstance(node, Mapping):
        raise TokenInvalid("token: tee-pubkey claim is not a JWK object")
    return node
