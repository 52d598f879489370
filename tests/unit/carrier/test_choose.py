"""Choosing a carrier (RUNE_CARRIER / enclave.carrier), and what rune makes of the setting."""

from __future__ import annotations

import pytest

from inclavare.carrier.errors import CarrierError
from inclavare.carrier.registry import NativeCarrier, WasmCarrier, choose
from inclavare.enclave.config import enclave_config, read_settings
from inclavare.enclave.errors import EnclaveConfigError


def chosen(env: list[str], annotations: dict[str, str] | None = None):
    annotations = annotations or {}
    return choose(read_settings(annotations, env), env, annotations)


@pytest.mark.parametrize(
    ("env", "annotations", "carrier", "source"),
    [
        (["RUNE_CARRIER=wasm"], {}, WasmCarrier, "process.env RUNE_CARRIER"),
        (["RUNE_CARRIER=native"], {}, NativeCarrier, "process.env RUNE_CARRIER"),
        ([], {"enclave.carrier": "native"}, NativeCarrier, "annotations.enclave.carrier"),
        (["RUNE_CARRIER=wasm"], {"enclave.carrier": "native"}, WasmCarrier, "process.env RUNE_CARRIER"),  # env wins
        (["RUNE_CARRIER="], {"enclave.carrier": "native"}, NativeCarrier, "annotations.enclave.carrier"),
        (["RUNE_CARRIER=native", "RUNE_CARRIER=wasm"], {}, WasmCarrier, "process.env RUNE_CARRIER"),  # last wins
    ],
)
def test_choice_and_where_it_came_from(env, annotations, carrier, source):
    choice = chosen(env, annotations)
    assert isinstance(choice.carrier, carrier)
    assert choice.source == source


@pytest.mark.parametrize(("env", "annotations"), [([], {}), (["RUNE_CARRIER="], {}), ([], {"enclave.carrier": ""})])
def test_the_empty_carrier(env, annotations):
    assert chosen(env, annotations).carrier is None


@pytest.mark.parametrize(
    ("env", "annotations", "message"),
    [
        (["RUNE_CARRIER=occlum"], {}, "process.env RUNE_CARRIER: carrier occlum: the Occlum toolchain (occlum build, "
                                      "sgx_sign, an SGX device) is not available on this node"),
        (["RUNE_CARRIER=graphene"], {}, "process.env RUNE_CARRIER: carrier graphene: Carrier graphene has not been"),
        (["RUNE_CARRIER=skeleton"], {}, "process.env RUNE_CARRIER: unknown carrier 'skeleton' (known: wasm, native;"),
        ([], {"enclave.carrier": "WASM"}, "annotations.enclave.carrier: unknown carrier 'WASM'"),
        (["rune_carrier=wasm"], {}, "process.env rune_carrier: not a carrier setting: did you mean RUNE_CARRIER?"),
        (["RUNE-CARRIER=wasm"], {}, "process.env RUNE-CARRIER: not a carrier setting: did you mean RUNE_CARRIER?"),
        (["RUNE_CARIER=wasm"], {}, "process.env RUNE_CARIER: not a carrier setting: did you mean RUNE_CARRIER?"),
        ([], {"rune.carrier": "wasm"}, "annotations.rune.carrier: not a carrier setting: did you mean enclave.carrier"),
    ],
)  # fmt: skip
def test_refusals_name_the_setting(env, annotations, message):
    with pytest.raises(CarrierError) as info:
        chosen(env, annotations)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("env", "annotations", "message"),
    [
        ([], {"enclave-carrier": "wasm"}, "annotations.enclave-carrier: not an enclave setting: did you mean "
                                          "enclave.carrier?"),
        ([], {"enclave.carier": "wasm"}, "annotations.enclave.carier: unknown enclave setting (did you mean "
                                         "enclave.carrier?"),
        (["ENCLAVE_CARRIER=wasm"], {}, "process.env ENCLAVE_CARRIER: not an enclave setting: did you mean "
                                       "RUNE_CARRIER?"),
    ],
)  # fmt: skip
def test_rune_refuses_near_misses_of_the_annotation(env, annotations, message):
    """enclave.carrier is in enclave/config.py's table, so rune's own spelling checks know it."""
    with pytest.raises(EnclaveConfigError) as info:
        read_settings(annotations, env)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(("env", "annotations"), [(["RUNE_CARRIER=wasm"], {}), ([], {"enclave.carrier": "wasm"})])
def test_rune_refuses_a_carrier_that_did_not_run(env, annotations):
    """Under a shim without the carrier (containerd's runc shim with rune), the image must not run plain."""
    with pytest.raises(EnclaveConfigError, match=r"is an enclave setting, but enclave\.type .* is not set: refusing"):
        enclave_config(read_settings(annotations, env))


def test_rune_drops_rune_carrier_from_an_enclave_workload():
    settings = read_settings({"enclave.type": "software", "enclave.runtime.path": "wasm"}, ["RUNE_CARRIER=wasm", "A=1"])
    assert settings.env == ["A=1"]
    assert enclave_config(settings) is not None
