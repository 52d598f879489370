"""The error tree drawn in kbs/errors.py's docstring is what the classes answer on the wire."""

from __future__ import annotations

import re

import pytest

from inclavare.kbs import errors

ROW = re.compile(r"^\s+[├└]── (\w+)\s+(\d{3}|--)\s+(\w+|\(not a wire error\))")


def test_the_docstring_tree_is_the_wire_table():
    rows = [ROW.match(line) for line in (errors.__doc__ or "").splitlines()]
    table = {m[1]: (m[2], m[3]) for m in rows if m}
    assert len(table) == 18
    for name, (status, problem) in table.items():
        cls = getattr(errors, name)
        assert issubclass(cls, errors.KbsError), name
        if status != "--":
            assert (cls.status, cls.problem) == (int(status), problem), name


def test_the_peer_sees_a_fixed_detail_only_where_the_reason_is_an_oracle():
    fixed = {
        errors.TokenInvalid: "the attestation token is invalid or has expired",
        errors.PolicyDeny: "access denied by policy",
        errors.StorageUnavailable: "storage is unavailable; retry",
        errors.StoredDataCorrupt: "stored data failed its integrity check",
    }
    ours = [c for c in vars(errors).values() if isinstance(c, type) and c.__module__ == errors.__name__]
    for cls in set(ours) - {errors.KbsError, errors.RateLimited, errors.ConfigError, errors.AttestationFailed}:
        exc = cls("why, in detail")
        assert exc.public_detail == fixed.get(cls, "why, in detail"), cls
        assert exc.type_url == errors.ERROR_TYPE_PREFIX + cls.problem
    refused = errors.AttestationFailed("policy rego line 3: input.measurement not in data.reference", "policy: denied")
    assert refused.public_detail == "attestation failed: policy: denied"  # the category, never the reason
    assert errors.RateLimited(2).public_detail == "rate limit exceeded for this client; retry after 2.0 s"
    assert errors.InvalidRequest("x").title == "Malformed request"


def test_an_attestation_failure_category_is_one_of_a_fixed_set():
    """Free text cannot reach the wire through the category (an oracle on policy or resource names)."""
    with pytest.raises(ValueError, match="not an attestation failure category"):
        errors.AttestationFailed("x", "policy: default.rego allows measurement 1234")
    assert all(len(c) <= 24 and c.replace(":", "").replace(" ", "").isalpha() for c in errors.ATTESTATION_CATEGORIES)
