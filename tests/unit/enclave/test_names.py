"""enclave/names.py: what the shim takes for a container that wants a carrier."""

from __future__ import annotations

import pytest

from inclavare.enclave.names import looks_like_carrier, mentions_carrier, near


@pytest.mark.parametrize("name", ["RUNE_CARRIER", "rune.carrier", "Rune-Carrier", "RUNE_CARIER", "RUNE_CARRRIER",
                                  "RUNECARRIERS", "rune_carier"])  # fmt: skip
def test_carrier_names_and_their_near_misses(name):
    assert looks_like_carrier(name)


@pytest.mark.parametrize("name", ["PATH", "RUNE", "CARRIER", "ENCLAVE_TYPE", "enclave.carrier", "RUNTIME_CARRIER_X"])
def test_other_names_are_not_carriers(name):
    assert not looks_like_carrier(name)


def test_mentions_carrier():
    assert mentions_carrier(["PATH=/bin", "RUNE_CARRIER=wasm"], {})
    assert mentions_carrier(["RUNE_CARIER=wasm"], {})  # the carrier refuses it: it must see it
    assert mentions_carrier([], {"enclave.carrier": "native"})
    assert mentions_carrier([], {"rune.carrier": "native"})
    assert not mentions_carrier(["PATH=/bin", "ENCLAVE_TYPE=software"], {"enclave.type": "software"})
    assert not mentions_carrier([], {})


def test_near_is_edit_distance_two():
    assert near("encalve", "enclave")
    assert near("nclave", "enclave")
    assert not near("encl", "enclave")  # too short to be a typo of it
    assert not near("elcavne", "enclave")
