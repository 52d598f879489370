"""Reading is kept for every certificate form rats-tls (and this project) wrote before: a test per form.

Forms (docs/ratls.md, "Certificate forms"; rats-tls commits): ``dice``
(15724cf onwards, tag 60000 since defec92, 0x1A7501 before it),
``dice-2022`` (7a32b54 .. 15724cf: ``tag([evidence])``, REPORT_DATA = CBOR
``[1, SHA-256(SPKI)]``), ``legacy-oid`` (before 7a32b54: raw evidence under
1.2.840.113741.1337.6/.8/.20, REPORT_DATA = SHA-256(SPKI)). Gramine's
certificate is verified in full in test_peer.py. A genuine quote binds the
vector's own data, so each hardware form is shown to reach its binding rule.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import cbor2
import pytest

from inclavare.attestation import Policy, VerificationFailed, inspect, verify
from inclavare.attestation.ratls import claims_buffer, generate_key, pubkey_hash_value, spki_of

from . import gramine
from .test_certificate import ALLOW_SOFTWARE, NOW
from .world import attester, self_signed, trusted_store

DICE = "2.23.133.5.4.9"
KEY = generate_key()
SPKI = spki_of(KEY)
CLAIMS = claims_buffer(SPKI)
FORMS = {  # name: (extension OID, extnValue, evidence_form, binding rule in the refusal)
    "dice, tag 60000": (
        DICE, cbor2.dumps(cbor2.CBORTag(60000, [gramine.QUOTE, CLAIMS])), "dice", "SHA-256(claims-buffer)"
    ),
    "dice, tag 0x1A7501 (2023-01)": (
        DICE, cbor2.dumps(cbor2.CBORTag(0x1A7501, [gramine.QUOTE, CLAIMS])), "dice", "SHA-256(claims-buffer)"
    ),
    "dice-2022": (DICE, cbor2.dumps(cbor2.CBORTag(0x1A7501, [gramine.QUOTE])), "dice-2022", "CBOR [1, SHA-256(SPKI)]"),
    "legacy-oid": ("1.2.840.113741.1337.6", gramine.QUOTE, "legacy-oid", "SHA-256(SPKI)"),
}  # fmt: skip


@pytest.mark.parametrize("form", FORMS)
def test_each_form_is_read_and_reaches_its_binding_rule(form: str) -> None:
    oid, value, name, rule = FORMS[form]
    der = self_signed(KEY, {oid: value}, gramine.AT - timedelta(hours=1), gramine.AT + timedelta(days=1))
    assert inspect(der)["evidence_form"] == name
    with pytest.raises(VerificationFailed) as info:
        verify(der, at=gramine.AT, collateral=gramine.store(), policy=Policy.genuine_only())
    assert str(info.value).endswith(f"does not bind the certificate key ({rule} || zeros)")


@pytest.mark.parametrize(
    ("form", "report_data", "value"),
    [
        ("dice", hashlib.sha256(CLAIMS).digest(), lambda ev: cbor2.CBORTag(0x1A75F0, [ev, CLAIMS])),
        ("dice-2022", pubkey_hash_value(SPKI), lambda ev: cbor2.CBORTag(0x1A75F0, [ev])),  # ours before 2026-12
    ],
)
def test_software_evidence_in_each_dice_form_verifies_in_full(form, report_data, value) -> None:  # type: ignore[no-untyped-def]
    evidence = attester().collect_evidence(report_data.ljust(64, b"\0")).data
    der = self_signed(KEY, {DICE: cbor2.dumps(value(evidence))}, NOW - timedelta(hours=1), NOW + timedelta(days=1))
    result = verify(der, at=NOW, collateral=trusted_store(), policy=ALLOW_SOFTWARE)
    assert (result.bound_key, inspect(der)["evidence_form"]) == (SPKI, form)
