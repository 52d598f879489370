"""A plain image run as a signed enclave: carrier, then the real rune, attestation verified end to end.

The image is busybox plus the sample WebAssembly module (or static native
program) as its entrypoint, with RUNE_CARRIER in its environment and no
manifest or signature. `inclavare carrier prepare` (what the shim runs at
Create) signs it through a real `inclavare signing-server` over TLS with a
bearer token; `rune run` runs it; `rune attest` reports the measurement and
`inclavare evidence verify` checks the report against the host key with a
policy pinning that measurement and the signing server's MRSIGNER.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import inclavare
from inclavare.carrier import MANIFEST, SIGNATURE
from inclavare.enclave.identity import inspect_signature
from inclavare.testing.containers import wait_status

pytestmark = pytest.mark.root


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """rune's environment, with a private compiled-module cache (the init-runelet inherits it)."""
    return {**os.environ, "INCLAVARE_WASM_CACHE": str(tmp_path / "wasm-cache")}


def config_of(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)


def test_plain_wasm_image_runs_as_a_signed_attested_enclave(rune, image_bundle, carrier_config, signing_server, env,
                                                             tmp_path):  # fmt: skip
    bundle = image_bundle("wasm", ["sleep=60"], ["GREETING=hello"])
    r = inclavare("carrier", "prepare", "--config", carrier_config(), bundle)
    assert "MOCK SIGNING" not in r.stderr
    assert f"signed by the signing server {signing_server.url}" in r.stderr
    identity, algorithm = inspect_signature(os.path.join(bundle, "rootfs", SIGNATURE.lstrip("/")))
    assert (identity.signer.hex(), algorithm) == (signing_server.mrsigner, "ed25519")
    audit = signing_server.audit_lines()[-1]
    assert (audit["event"], audit["who"]) == ("signature", "token:node-1")
    assert audit["enclave"]["measurement"] == identity.measurement.hex()  # the server logged what it signed

    rune("run", "-d", "--bundle", bundle, "carried", env=env, check=True)
    report = tmp_path / "report.bin"
    rune("attest", "--reportFile", str(report), "carried", check=True)
    host_key = tmp_path / "host-key.pem"
    host_key.write_text(json.loads(inclavare("enclave", "host-key").stdout)["public_key"])
    policy = tmp_path / "policy.toml"
    policy.write_text(f'allow_software = true\nmeasurements = ["{identity.measurement.hex()}"]\n'
                      f'signers = ["{signing_server.mrsigner}"]\n')  # fmt: skip
    verified = json.loads(inclavare("evidence", "verify", str(report), "--collateral", str(host_key),
                                    "--policy", str(policy)).stdout)  # fmt: skip
    assert verified["verified"] is True
    assert identity.measurement.hex() in json.dumps(verified)
    rune("kill", "carried", "KILL", check=True)
    wait_status(rune, "carried", "stopped")


def test_the_enclave_runs_what_the_pod_asked(rune, image_bundle, carrier_config, env):
    bundle = image_bundle("wasm", ["one", "exit=3"], ["GREETING=hello", "HOSTNAME=pod-1"])
    inclavare("carrier", "prepare", "--config", carrier_config(), bundle)
    r = rune("run", "--bundle", bundle, "asked", env=env)
    assert r.returncode == 3, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["argv[0]=/app/hello.wasm", "argv[1]=one", "argv[2]=exit=3"]
    assert {"env GREETING=hello", "env HOSTNAME=pod-1"} <= set(lines)
    assert not any(line.startswith("env RUNE_CARRIER") for line in lines)


def test_refused_by_the_signing_server_the_image_does_not_run(rune, image_bundle, carrier_config, signing_server,
                                                              tmp_path, env):  # fmt: skip
    bundle = image_bundle("wasm")
    before = config_of(bundle)
    revoked = tmp_path / "revoked.token"
    revoked.write_text("a-token-the-server-never-issued\n")
    revoked.chmod(0o600)
    r = inclavare("carrier", "prepare", "--config", carrier_config(str(revoked)), bundle, check=False)
    assert r.returncode == 1
    endpoint = f"{signing_server.url}/api/v1/signature/ed25519"
    assert r.stderr.splitlines()[-1] == f"inclavare carrier: signing server {endpoint}: HTTP 401: bearer token refused"
    assert config_of(bundle) == before
    assert signing_server.audit_lines()[-1]["event"] == "refused"
    # What the shim's Create would then do is fail; a rune started on the bundle anyway refuses it too.
    r = rune("run", "--bundle", bundle, "unsigned", env=env)
    assert r.returncode == 1
    assert "process.env RUNE_CARRIER: is an enclave setting, but enclave.type (or ENCLAVE_TYPE) is not set" in r.stderr
    assert r.stderr.count("\n") == 1


def test_swapping_the_enclave_after_the_carrier_is_refused(rune, image_bundle, carrier_config, tmp_path, env):
    """The settings pin the signer: a manifest re-signed with another key in the rootfs fails rune create."""
    bundle = image_bundle("wasm")
    inclavare("carrier", "prepare", "--config", carrier_config(), bundle)
    other = tmp_path / "other.toml"
    other.write_text(f'[signature]\nnode_key = "{tmp_path}/other-key.pem"\n')
    twin = image_bundle("native")  # any bundle: only its carrier's output is borrowed
    spec = config_of(twin)
    spec["process"]["env"] = [e.replace("RUNE_CARRIER=native", "RUNE_CARRIER=wasm") for e in spec["process"]["env"]]
    spec["process"]["args"] = ["/app/hello.wasm"]
    os.makedirs(os.path.join(twin, "rootfs", "app"), exist_ok=True)
    with open(os.path.join(bundle, "rootfs", "app", "hello.wasm"), "rb") as src, \
         open(os.path.join(twin, "rootfs", "app", "hello.wasm"), "wb") as dst:  # fmt: skip
        dst.write(src.read())
    with open(os.path.join(twin, "config.json"), "w") as f:
        json.dump(spec, f)
    inclavare("carrier", "prepare", "--config", str(other), twin)  # the same enclave, signed by the node key
    for name in (MANIFEST, SIGNATURE):
        with open(os.path.join(twin, "rootfs", name.lstrip("/")), "rb") as src, \
             open(os.path.join(bundle, "rootfs", name.lstrip("/")), "wb") as dst:  # fmt: skip
            dst.write(src.read())
    r = rune("create", "--bundle", bundle, "swapped", env=env)
    assert r.returncode == 1
    assert f"{SIGNATURE}: signer: " in r.stderr
    assert "is not the expected" in r.stderr


def test_plain_native_image_with_the_node_key(rune, image_bundle, tmp_path, env):
    """No signing server configured: the node's own key signs (mock signing), said so on stderr."""
    bundle = image_bundle("native", ["one", "exit=5"])
    config = tmp_path / "config.toml"
    config.write_text(f'[signature]\nnode_key = "{tmp_path}/node-key.pem"\n')
    r = inclavare("carrier", "prepare", "--config", str(config), bundle)
    assert "MOCK SIGNING with this node's own key" in r.stderr
    assert config_of(bundle)["annotations"]["enclave.runtime.path"] == "native"
    r = rune("run", "--bundle", bundle, "native-carried", env=env)
    assert r.returncode == 5, r.stderr
    assert r.stdout.splitlines()[:2] == ["argv[0]=/app/hello", "argv[1]=one"]
