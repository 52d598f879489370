"""Reference values of byte claims: ``0x``/upper-case hex is stored as the policy sees claims (lower-case, bare).

Before, ``0xAB..`` was stored verbatim and silently never matched the
claims' ``ab..``: the enclave was refused as running unapproved code.
"""

from __future__ import annotations

import json

import pytest

from inclavare.kbs.errors import InvalidRequest

from .helpers import OPS, SECRET, Broker


def add(broker: Broker, name: str, *values: str) -> dict[str, object]:
    return broker.service.admin.add_reference_values(
        OPS, json.dumps({"name": name, "values": list(values)}).encode(), "t"
    )


def test_a_0x_measurement_approves_the_enclave(broker: Broker) -> None:
    broker.setup_release()
    broker.service.admin.delete_reference_values(OPS, "software.measurement", None, "t")
    measurement = broker.world.identity.measurement.hex()
    assert add(broker, "software.measurement", "0x" + measurement.upper())["values"] == [measurement]
    listed = broker.service.admin.list_reference_values(OPS, "software.measurement")
    assert [rv["value"] for rv in listed] == [measurement]
    cookie, _, key = broker.attest()
    assert key.decrypt(broker.get(cookie=cookie)) == SECRET
    assert broker.service.admin.delete_reference_values(OPS, "software.measurement", "0X" + measurement, "t") == 1


def test_byte_claims_must_be_hex_other_claims_are_kept(broker: Broker) -> None:
    with pytest.raises(InvalidRequest, match="is not hex"):
        add(broker, "sgx.mr_signer", "0xnope")
    with pytest.raises(InvalidRequest, match="is not hex"):
        broker.service.admin.expire_reference_values(OPS, "tdx.measurement", json.dumps({"value": "zz"}).encode(), "t")
    assert add(broker, "sgx.min_svn", "3")["values"] == ["3"]
    assert add(broker, "sgx.signer", "AB" * 32)["values"] == ["ab" * 32]
