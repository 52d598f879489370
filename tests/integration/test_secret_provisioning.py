"""Secret provisioning at launch: an enclave container attests to a real KBS
(inclavare kbs serve, over TLS) and gets its secrets before its workload
starts; the broker is the one its signed manifest pins, and TLS ends inside
the container (enclave/provision/)."""

from __future__ import annotations

import json
import os
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.testing import kbs as kbs_testing
from inclavare.testing.enclaves import pin_broker, set_enclave, wasm_bundle
from inclavare.testing.kbs import TlsBroker
from inclavare.testing.pki import CertificateAuthority

pytestmark = pytest.mark.root

SECRET = b"hello, attested world"
UNLIMITED = "\n[rate_limit]\nenabled = false\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return kbs_testing.World.create(str(tmp_path_factory.mktemp("provision")))


@pytest.fixture(scope="module")
def kbs(world):
    broker = TlsBroker(world, "tenant-kbs")
    try:
        with broker.admin(world) as admin:
            admin.set_resource("default/secret/greeting", SECRET)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def tenant_key():
    return ed25519.Ed25519PrivateKey.generate()


def provisioned(bundle: str, kbs_url: str, **extra: str) -> None:
    set_enclave(bundle, "preopen=/run/secrets", args=["/app/hello.wasm", "read=/run/secrets/greeting"],
                annotations={"enclave.kbs.url": kbs_url, "enclave.kbs.resources": "default/secret/greeting",
                             **extra})  # fmt: skip


def approved(kbs, world, bundle: str) -> None:
    manifest = os.path.join(bundle, "rootfs/app/hello-wasm.toml")
    with kbs.admin(world) as admin:
        admin.add_from_enclave(manifest, manifest + ".sig", os.path.join(bundle, "rootfs"))


@pytest.mark.parametrize("pinned_by", ["cacert", "pin_sha256", "both"])
def test_approved_enclave_receives_its_secret(rune, tmp_path, rootfs_cache, kbs, world, tenant_key, pinned_by):
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    ca = kbs.ca.pem if pinned_by != "pin_sha256" else None
    identity = pin_broker(bundle, tenant_key, [kbs.url], ca, (kbs.pin,) if pinned_by != "cacert" else ())
    approved(kbs, world, bundle)
    provisioned(bundle, kbs.url)
    r = rune("run", "--bundle", bundle, f"prov-ok-{pinned_by}")
    assert r.returncode == 0, r.stderr
    assert SECRET.decode() in r.stdout
    assert SECRET.decode() not in r.stderr
    with kbs.admin(world) as admin:
        attested = [e for e in admin.audit(limit=1000) if e["event"] == "attest" and e["outcome"] == "ok"]
        released = [e for e in admin.audit(limit=1000) if e["event"] == "release"]
    assert attested
    assert released
    assert identity.measurement.hex() in json.dumps(attested) or released[-1]["resource"] == "default/secret/greeting"


def test_unapproved_enclave_does_not_start(rune, tmp_path, rootfs_cache, kbs, state_root):
    # Another module (same code, one extra custom section): a measurement the KBS has no reference value for.
    key = ed25519.Ed25519PrivateKey.generate()
    bundle, _ = wasm_bundle(str(tmp_path / "b"), key, rootfs_cache, variant=b"x")
    pin_broker(bundle, key, [kbs.url], kbs.ca.pem)
    provisioned(bundle, kbs.url)
    r = rune("create", "--bundle", bundle, "prov-denied")
    assert r.returncode == 1
    assert re.fullmatch(r"[^\n]*secret provisioning: KBS answered 40[13] [^\n]*\n", r.stderr), r.stderr
    assert not os.path.exists(os.path.join(state_root, "prov-denied"))


def test_unreachable_kbs_is_one_line(rune, tmp_path, rootfs_cache, tenant_key, state_root):
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    pin_broker(bundle, tenant_key, ["https://127.0.0.1:9"], CertificateAuthority("nobody").pem)
    provisioned(bundle, "https://127.0.0.1:9")
    r = rune("create", "--bundle", bundle, "prov-unreach")
    assert r.returncode == 1
    assert re.fullmatch(r"[^\n]*secret provisioning: KBS unreachable: [^\n]*Connection refused[^\n]*\n", r.stderr)
    assert not os.path.exists(os.path.join(state_root, "prov-unreach"))


def test_an_enclave_that_pins_no_broker_is_not_provisioned_by_default(rune, tmp_path, rootfs_cache, kbs, world,
                                                                      tenant_key, state_root):  # fmt: skip
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)  # its manifest has no [kbs]
    approved(kbs, world, bundle)  # the broker would release: the enclave refuses to ask
    provisioned(bundle, kbs.url, **{"enclave.kbs.cacert": kbs.ca_file})
    r = rune("create", "--bundle", bundle, "prov-unpinned")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert "secret provisioning: the enclave's manifest pins no key broker ([kbs])" in r.stderr
    assert "enclave.kbs.insecure_unpinned=true allows it, for development" in r.stderr
    assert not os.path.exists(os.path.join(state_root, "prov-unpinned"))


def test_the_development_opt_out_is_explicit_and_logged(rune, tmp_path, rootfs_cache, kbs, world, tenant_key):
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    approved(kbs, world, bundle)
    provisioned(bundle, kbs.url, **{"enclave.kbs.cacert": kbs.ca_file, "enclave.kbs.insecure_unpinned": "true"})
    r = rune("run", "--bundle", bundle, "prov-optout")
    assert r.returncode == 0, r.stderr
    assert SECRET.decode() in r.stdout
    assert "annotations.enclave.kbs.insecure_unpinned: an enclave that pins no key broker will attest" in r.stderr


def test_a_pinned_enclave_does_not_start_without_its_secrets(rune, tmp_path, rootfs_cache, kbs, tenant_key,
                                                             state_root):  # fmt: skip
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    pin_broker(bundle, tenant_key, [kbs.url], kbs.ca.pem)
    set_enclave(bundle, args=["/app/hello.wasm"])  # no enclave.kbs.url: the host left provisioning out
    r = rune("create", "--bundle", bundle, "prov-dropped")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1
    assert "the enclave's manifest pins a key broker ([kbs]) but the container names none" in r.stderr
    assert not os.path.exists(os.path.join(state_root, "prov-dropped"))


@pytest.mark.parametrize("change", ["bind-over-secrets", "no-mount-namespace"])
def test_secrets_never_land_outside_a_private_tmpfs(rune, tmp_path, rootfs_cache, tenant_key, state_root, change):
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    provisioned(bundle, "https://127.0.0.1:9")
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    if change == "bind-over-secrets":
        (tmp_path / "hostdir").mkdir()
        cfg["mounts"].append({"destination": "/run/secrets", "type": "bind", "source": str(tmp_path / "hostdir"),
                              "options": ["rbind"]})  # fmt: skip
        want = "mounts: /run/secrets is where provisioned secrets go"
    else:
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "mount"]
        cfg["root"]["readonly"] = False
        for key in ("maskedPaths", "readonlyPaths"):
            cfg["linux"].pop(key, None)
        want = "annotations.enclave.kbs.url: secret provisioning needs a mount namespace"
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = rune("create", "--bundle", bundle, "prov-home")
    assert r.returncode == 1
    assert want in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(state_root, "prov-home"))


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://127.0.0.1:8080", "annotations.enclave.kbs.url: 'http://127.0.0.1:8080' must be https"),
        ("https://user@kbs.example", "must be https://host[:port][/path], without user, query or fragment"),
    ],
)
def test_a_broker_url_must_be_https(rune, tmp_path, rootfs_cache, tenant_key, state_root, url, refusal):
    """Plain http would show the broker's messages to the host; it was allowed to loopback before."""
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    provisioned(bundle, url)
    r = rune("create", "--bundle", bundle, "prov-http")
    assert r.returncode == 1
    assert refusal in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(state_root, "prov-http"))
