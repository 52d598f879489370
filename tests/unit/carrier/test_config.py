"""/etc/inclavare-containers/config.toml: the original's file loads, ours adds TLS and auth, mistakes are refused."""

from __future__ import annotations

import os

import pytest

from inclavare.carrier import config
from inclavare.carrier.errors import CarrierConfigError

# The original shim's sample file, plus the [signature] table its Go struct has.
ORIGINAL = """\
log_level = "info" # "debug" "info" "warn" "error"
sgx_tool_sign = "/opt/intel/sgxsdk/bin/x64/sgx_sign"

[containerd]
    socket = "/run/containerd/containerd.sock"
[epm]
    socket = "/var/run/epm/epm.sock"
[signature]
    server_address = "http://10.0.0.5:9080"
[enclave_runtime]
    signature_method = "server"
    [enclave_runtime.occlum]
        enclave_runtime_path = "/opt/occlum/build/lib/libocclum-pal.so"
        enclave_libos_path = "/opt/occlum/build/lib/libocclum-libos.so"
    [enclave_runtime.graphene]
"""


def test_the_original_file_loads():
    c = config.parse(ORIGINAL.encode(), "config.toml")
    assert c == config.CarrierConfig(path="config.toml", server_address="http://10.0.0.5:9080",
                                     epm_socket="/var/run/epm/epm.sock")  # fmt: skip


def test_signature_table_in_full():
    text = """[signature]
server_address = "https://signer.example:9080"
ca_cert = "/etc/inclavare-containers/ca.pem"
token_file = "/etc/inclavare-containers/signer.token"
client_cert = "/etc/inclavare-containers/node.pem"
client_key = "/etc/inclavare-containers/node.key"
expected_signer = "%s"
node_key = "/var/lib/x/key.pem"
[enclave_runtime]
signature_method = "client"
""" % ("ab" * 32)
    c = config.parse(text.encode(), "f")
    assert (c.ca_cert, c.token_file, c.client_cert, c.client_key) == (
        "/etc/inclavare-containers/ca.pem", "/etc/inclavare-containers/signer.token",
        "/etc/inclavare-containers/node.pem", "/etc/inclavare-containers/node.key",
    )  # fmt: skip
    assert c.expected_signer == bytes.fromhex("ab" * 32)
    assert (c.node_key, c.signature_method) == ("/var/lib/x/key.pem", "client")


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "DEFAULT_PATH", str(tmp_path / "absent.toml"))
    assert config.load() == config.CarrierConfig()
    with pytest.raises(CarrierConfigError, match=r"absent\.toml: .*No such file"):
        config.load(str(tmp_path / "absent.toml"))  # named explicitly: must exist


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('log_level = "verbose"', "f: log_level: must be one of debug, info, warn, error, not 'verbose'"),
        ('[signature]\nserver_adress = "http://x"', "f: signature.server_adress: unknown setting (known: ca_cert,"),
        ('[signatures]\nserver_address = "x"', "f: signatures: unknown setting (known: containerd, enclave_runtime,"),
        ('signature = "x"', "f: signature: must be a table"),
        ('[signature]\nserver_address = "signer:9080"', "f: signature.server_address: 'signer:9080' is not an http://"),
        ('[signature]\nca_cert = "ca.pem"', "f: signature.ca_cert: 'ca.pem' is not an absolute path"),
        ('[signature]\nclient_cert = "/c.pem"', "f: signature.client_cert: needs signature.client_key too (mTLS)"),
        ('[signature]\nexpected_signer = "abcd"', "f: signature.expected_signer: must be 64 hex digits"),
        ('[enclave_runtime]\nsignature_method = "both"', "f: enclave_runtime.signature_method: must be \"server\" or"),
        ("[enclave_runtime]\nsignature_method = 1", "f: enclave_runtime.signature_method: must be a string"),
        ('[enclave_runtime.occlum]\nenclave_libos_path = "x"', "f: enclave_runtime.occlum.enclave_libos_path: 'x' is"),
        ("[signature\n", "f: line 1: "),
        ("a = 1.5", "f: line 1: "),
    ],
)  # fmt: skip
def test_mistakes_are_refused_with_their_key(text, message):
    with pytest.raises(CarrierConfigError) as info:
        config.parse(text.encode(), "f")
    assert str(info.value).startswith(message)


def test_the_file_must_be_the_administrators(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    os.chmod(path, 0o666)
    with pytest.raises(CarrierConfigError, match=r"config.toml: .*writable by group or others"):
        config.load(str(path))
    os.chmod(path, 0o644)
    assert config.load(str(path)).server_address == "http://10.0.0.5:9080"
