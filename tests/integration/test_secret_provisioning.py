"""Secret provisioning at launch: an enclave container attests to a real KBS
(inclavare kbs serve) and gets its secrets before its workload starts."""

from __future__ import annotations

import os
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.enclave.identity import HostKey
from inclavare.kbs.admin_client import KbsAdmin
from inclavare.testing import kbs as kbs_testing
from inclavare.testing.enclaves import set_enclave, wasm_bundle

pytestmark = pytest.mark.root

SECRET = b"hello, attested world"
UNLIMITED = "\n[rate_limit]\nenabled = false\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return kbs_testing.World.create(str(tmp_path_factory.mktemp("provision")))


@pytest.fixture(scope="module")
def kbs(world):
    # The KBS trusts this machine's software-TEE host key: the one the wasm runtime signs with.
    with open(f"{world.root}/machine-host-key.pub.pem", "wb") as f:
        f.write(HostKey.load_or_create().public_pem)
    config = world.config("provision", extra=UNLIMITED)
    with open(config) as f:
        text = f.read().replace(f"{world.root}/host-key.pub.pem", f"{world.root}/machine-host-key.pub.pem")
    with open(config, "w") as f:
        f.write(text)
    with kbs_testing.KbsProcess(config) as k:
        with KbsAdmin(k.url, world.admin_key) as admin:
            admin.set_resource("default/secret/greeting", SECRET)
            admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        yield k


@pytest.fixture(scope="module")
def tenant_key():
    return ed25519.Ed25519PrivateKey.generate()


def provisioned(bundle: str, kbs_url: str) -> None:
    set_enclave(bundle, "preopen=/run/secrets", args=["/app/hello.wasm", "read=/run/secrets/greeting"],
                annotations={"enclave.kbs.url": kbs_url,
                             "enclave.kbs.resources": "default/secret/greeting"})  # fmt: skip


def test_approved_enclave_receives_its_secret(rune, tmp_path, rootfs_cache, kbs, world, tenant_key):
    bundle, identity = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    manifest = os.path.join(bundle, "rootfs/app/hello-wasm.toml")
    with KbsAdmin(kbs.url, world.admin_key) as admin:
        admin.add_from_enclave(manifest, manifest + ".sig", os.path.join(bundle, "rootfs"))
    provisioned(bundle, kbs.url)
    r = rune("run", "--bundle", bundle, "prov-ok")
    assert r.returncode == 0, r.stderr
    assert SECRET.decode() in r.stdout
    assert SECRET.decode() not in r.stderr
    with KbsAdmin(kbs.url, world.admin_key) as admin:
        released = [e for e in admin.audit(limit=1000) if e["event"] == "release"]
    assert any(identity.measurement.hex() in str(e) or "greeting" in str(e) for e in released)


def test_unapproved_enclave_does_not_start(rune, tmp_path, rootfs_cache, kbs, state_root):
    # Another module (same code, one extra custom section): a measurement the KBS has no reference value for.
    bundle, _ = wasm_bundle(str(tmp_path / "b"), ed25519.Ed25519PrivateKey.generate(), rootfs_cache, variant=b"x")
    provisioned(bundle, kbs.url)
    r = rune("create", "--bundle", bundle, "prov-denied")
    assert r.returncode == 1
    assert re.search(r"secret provisioning: KBS answered 40[13]", r.stderr), r.stderr
    assert r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(state_root, "prov-denied"))


def test_unreachable_kbs_is_one_line(rune, tmp_path, rootfs_cache, tenant_key, state_root):
    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    provisioned(bundle, "http://127.0.0.1:9")
    r = rune("create", "--bundle", bundle, "prov-unreach")
    assert r.returncode == 1
    assert "secret provisioning: KBS unreachable" in r.stderr
    assert not os.path.exists(os.path.join(state_root, "prov-unreach"))


@pytest.mark.parametrize("change", ["bind-over-secrets", "no-mount-namespace"])
def test_secrets_never_land_outside_a_private_tmpfs(rune, tmp_path, rootfs_cache, tenant_key, state_root, change):
    import json

    bundle, _ = wasm_bundle(str(tmp_path / "b"), tenant_key, rootfs_cache)
    provisioned(bundle, "http://127.0.0.1:9")
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
