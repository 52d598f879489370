"""Genuine hardware evidence through the broker: verified in full by inclavare.attestation, then bound or refused.

No genuine vector binds a nonce this broker issued, so every one must be
refused — *after* verification passed: the internal reason is the binding,
not the evidence. That shows the SGX, TDX, SNP and Nitro paths run the
library's complete verification at the broker's (injected) instant.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from inclavare.kbs.errors import AttestationFailed

from .helpers import make_broker

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
CASES = [("sgx-dcapqvl", "sgx"), ("tdx-dcapqvl", "tdx"), ("snp-trustee-milan", "snp"), ("nitro-evervault-ga", "nitro")]


def vector(set_id: str) -> tuple[bytes, list[str], float]:
    s = next(x for x in json.loads((VECTORS / "sets.json").read_text()) if x["id"] == set_id)
    files = {k: v for k, v in s["files"].items() if k != "report_offset"}
    role = next(r for r in ("quote", "report", "document") if r in files)
    collateral = [str(VECTORS / p) for r, v in files.items() if r != role for p in ([v] if isinstance(v, str) else v)]
    at = datetime.fromisoformat(s["verify_at"].replace("Z", "+00:00")).timestamp()
    return (VECTORS / files[role]).read_bytes(), collateral, at


@pytest.mark.parametrize(("set_id", "tee"), CASES)
def test_genuine_evidence_is_verified_then_refused_for_its_binding(tmp_path, set_id, tee):
    evidence, collateral, at = vector(set_id)
    b = make_broker(str(tmp_path), {"attestation": {"collateral": collateral, "policy": "default"}})
    b.clock.now = at
    cookie, hs, _ = b.auth(tee)
    with pytest.raises(AttestationFailed, match="report data does not bind") as exc:
        b.service.rcar.attest(json.dumps(hs.attestation(evidence)).encode(), cookie, "t")
    assert exc.value.public_detail == "attestation failed: report data mismatch"
    b.service.close()


def test_evidence_outside_its_validity_is_refused_by_verification(tmp_path):
    evidence, collateral, at = vector("sgx-dcapqvl")
    b = make_broker(str(tmp_path), {"attestation": {"collateral": collateral}})
    b.clock.now = at + 5 * 365 * 86400  # certificates and collateral long expired
    cookie, hs, _ = b.auth("sgx")
    with pytest.raises(AttestationFailed, match=r"^evidence: "):
        b.service.rcar.attest(json.dumps(hs.attestation(evidence)).encode(), cookie, "t")
    b.service.close()


def test_a_quote_declared_as_another_tee_is_refused(tmp_path):
    evidence, collateral, at = vector("sgx-dcapqvl")
    b = make_broker(str(tmp_path), {"attestation": {"collateral": collateral}})
    b.clock.now = at
    cookie, hs, _ = b.auth("tdx")
    with pytest.raises(AttestationFailed, match="tee tdx may not carry sgx-quote"):
        b.service.rcar.attest(json.dumps(hs.attestation(evidence)).encode(), cookie, "t")
    b.service.close()
