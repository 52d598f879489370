"""The category a refused peer sees: named by the check that failed, from a fixed set, and audited with it.

Genuine SGX/SNP vectors (tests/vectors) verified at an instant past their
certificates, or without the collateral they need; the reason stays in the
log and the audit record, the wire carries only the category.
"""

from __future__ import annotations

import json

import pytest

from inclavare.kbs.errors import AttestationFailed

from .helpers import make_broker
from .test_hardware import vector

YEAR = 365 * 24 * 3600.0


@pytest.mark.parametrize(
    ("set_id", "tee", "change", "category"),
    [
        ("sgx-dcapqvl", "sgx", "later", "evidence expired"),
        ("snp-trustee-milan", "snp", "later", "evidence expired"),
        ("sgx-dcapqvl", "sgx", "no-collateral", "collateral missing"),
        ("snp-trustee-milan", "snp", "no-collateral", "collateral missing"),
    ],
)
def test_the_category_names_the_failed_check(tmp_path, set_id, tee, change, category):
    evidence, collateral, at = vector(set_id)
    if change == "no-collateral":
        collateral = []
    b = make_broker(str(tmp_path), {"attestation": {"collateral": collateral, "policy": "default"}})
    b.clock.now = at + (30 * YEAR if change == "later" else 0)
    cookie, hs, _ = b.auth(tee)
    with pytest.raises(AttestationFailed) as exc:
        b.service.rcar.attest(json.dumps(hs.attestation(evidence)).encode(), cookie, "t")
    assert exc.value.public_detail == f"attestation failed: {category}"
    audited = [r for r in b.service.deps.storage.audit_log() if r.event == "attest"]
    assert audited[-1].outcome == "failed"
    assert audited[-1].detail.startswith(f"{category}: evidence: ")  # the reason, for the operator
    b.service.close()


def test_no_host_key_at_all_is_no_trusted_host_key(tmp_path):
    b = make_broker(str(tmp_path), {"attestation": {"collateral": []}})
    b.setup_release()
    with pytest.raises(AttestationFailed) as exc:
        b.attest()
    assert exc.value.category == "no trusted host key"
    b.service.close()
