"""The attestation policy: verified claims + reference values -> an AR4SI trust vector.

The input is built from :class:`~inclavare.attestation.VerifiedClaims`
(after *every* check of :func:`inclavare.attestation.verify` passed)::

    {"tee": "sgx", "evidence_kind": "sgx-quote",
     "measurement": "<hex>", "signer": "<hex>" | null, "svn": 3 | null, "product_id": 0 | null,
     "debug": false, "report_data": "<hex>", "tcb_status": "UpToDate" | null, "advisory_ids": [...],
     "sgx": {... every claim of that TEE, bytes as hex ...}}

``data.reference`` maps reference-value names to the values valid at the
evaluation instant (expiry is applied before the policy sees them). The
policy's result (``data.policy``) must define some of the AR4SI claims
(``executables``, ``hardware``, ``configuration``, ``instance_identity``,
``file_system``, ``runtime_opaque``, ``storage_opaque``, ``sourced_data``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...attestation import VerifiedClaims
from ..protocol.ear import trust_vector
from .engine import PolicyEngine, PolicyEvaluationError


def policy_input(result: VerifiedClaims) -> dict[str, object]:
    """The JSON the attestation policy sees for a verification result."""
    doc = result.to_json()
    claims = doc["claims"]
    assert isinstance(claims, dict)
    tcb = doc.get("tcb")
    status = tcb.get("status") if isinstance(tcb, dict) else None
    advisories = tcb.get("advisory_ids", []) if isinstance(tcb, dict) else []
    common = {name: claims.get(name) for name in ("measurement", "signer", "svn", "product_id", "debug", "report_data")}
    return {
        "tee": result.tee.value,
        "evidence_kind": result.kind.value,
        **common,
        "tcb_status": status,
        "advisory_ids": advisories,
        result.tee.value: claims,
    }


def appraise(
    engine: PolicyEngine,
    module: str,
    result: VerifiedClaims,
    reference: Mapping[str, Sequence[str]],
) -> dict[str, int]:
    """Evaluate the attestation policy; the trust vector, or PolicyEvaluationError."""
    data = {"reference": {name: list(values) for name, values in reference.items()}}
    output = engine.evaluate(module, "data.policy", policy_input(result), data)
    if not isinstance(output, dict):
        raise PolicyEvaluationError("attestation policy: data.policy is not an object")
    try:
        return trust_vector(output)
    except ValueError as exc:
        raise PolicyEvaluationError(f"attestation policy: {exc}") from None
