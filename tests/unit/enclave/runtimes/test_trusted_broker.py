"""The built-in runtimes tell secret provisioning which broker their verified manifest pins (runtimes/_base.py)."""

from __future__ import annotations

import pytest
from enclave_kit import sample

from conftest import WASM_TEMPLATE
from inclavare.enclave.identity import ManifestError
from inclavare.enclave.identity.broker import BrokerPin
from inclavare.enclave.runtimes.wasm import WasmRuntime

ARGS = "manifest=/app/enclave.toml"
CA = b"-----BEGIN CERTIFICATE-----\nthe tenant's CA\n-----END CERTIFICATE-----\n"
PINNED = (
    'trusted_files = ["/app/kbs-ca.pem"]\n'
    + WASM_TEMPLATE
    + ('[kbs]\nurls = ["https://kbs.example:8443"]\ncacert = "/app/kbs-ca.pem"\n')
)


@pytest.fixture
def pinned_enclave(enclave):
    enclave.add_file("/app/hello.wasm", sample("hello.wasm"))
    enclave.add("/app/kbs-ca.pem", CA, 0o644)
    enclave.mkdir("/srv/data")
    enclave.sign(PINNED)
    return enclave


def test_the_verified_pin_and_its_ca(make_runtime, pinned_enclave):
    rt = make_runtime(WasmRuntime, pinned_enclave)
    rt.init(ARGS, "info")
    assert rt.trusted_broker() == (BrokerPin(("https://kbs.example:8443",), "/app/kbs-ca.pem", ()), CA)


def test_a_ca_swapped_after_verification_is_refused(make_runtime, pinned_enclave):
    rt = make_runtime(WasmRuntime, pinned_enclave)
    rt.init(ARGS, "info")
    pinned_enclave.add("/app/kbs-ca.pem", CA.replace(b"tenant", b"host's"), 0o644)
    with pytest.raises(ManifestError, match=r"enclave.toml: kbs.cacert: /app/kbs-ca.pem changed since the enclave"):
        rt.trusted_broker()


def test_no_kbs_table_no_pin(make_runtime, wasm_enclave):
    rt = make_runtime(WasmRuntime, wasm_enclave)
    rt.init(ARGS, "info")
    assert rt.trusted_broker() is None
