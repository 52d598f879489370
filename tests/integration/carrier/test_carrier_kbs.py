"""A plain image, made an enclave by the carrier, gets its secret from a real KBS at launch.

The pod asks for the secret with ENCLAVE_KBS_URL / ENCLAVE_KBS_RESOURCES in
its environment; the carrier measures the secrets directory into the wasm
manifest as the module's only (read-only) preopened directory, so no
`preopen=` option is needed and the KBS releases the secret to exactly the
enclave whose measurement the tenant registered.
"""

from __future__ import annotations

import os
import tomllib

import pytest

from conftest import inclavare
from inclavare.carrier import MANIFEST, SIGNATURE
from inclavare.enclave.identity import HostKey
from inclavare.kbs.admin_client import KbsAdmin
from inclavare.testing import kbs as kbs_testing

pytestmark = pytest.mark.root

SECRET = b"hello from the key broker"


@pytest.fixture(scope="module")
def kbs(tmp_path_factory):
    world = kbs_testing.World.create(str(tmp_path_factory.mktemp("carrier-kbs")))
    # The KBS trusts this machine's software-TEE host key: the one the wasm runtime signs reports with.
    with open(f"{world.root}/machine-host-key.pub.pem", "wb") as f:
        f.write(HostKey.load_or_create().public_pem)
    config = world.config("carrier", extra="\n[rate_limit]\nenabled = false\n")
    with open(config) as f:
        text = f.read().replace(f"{world.root}/host-key.pub.pem", f"{world.root}/machine-host-key.pub.pem")
    with open(config, "w") as f:
        f.write(text)
    with kbs_testing.KbsProcess(config) as k, KbsAdmin(k.url, world.admin_key) as admin:
        admin.set_resource("default/secret/greeting", SECRET)
        admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        yield k, world


def test_carried_enclave_receives_its_secret(rune, image_bundle, carrier_config, kbs, tmp_path):
    server, world = kbs
    kbs_env = [f"ENCLAVE_KBS_URL={server.url}", "ENCLAVE_KBS_RESOURCES=default/secret/greeting"]
    bundle = image_bundle("wasm", ["read=/run/secrets/greeting"], kbs_env)
    inclavare("carrier", "prepare", "--config", carrier_config(), bundle)
    rootfs = os.path.join(bundle, "rootfs")
    with open(os.path.join(rootfs, MANIFEST.lstrip("/")), "rb") as f:
        assert tomllib.load(f)["wasm"]["preopened_dirs"] == [
            {"guest": "/run/secrets", "path": "/run/secrets", "read_only": True}
        ]
    with KbsAdmin(server.url, world.admin_key) as admin:  # the tenant approves the enclave the carrier built
        manifest = os.path.join(rootfs, MANIFEST.lstrip("/"))
        admin.add_from_enclave(manifest, os.path.join(rootfs, SIGNATURE.lstrip("/")), rootfs)
    env = {**os.environ, "INCLAVARE_WASM_CACHE": str(tmp_path / "wasm-cache")}
    r = rune("run", "--bundle", bundle, "carried-kbs", env=env)
    assert r.returncode == 0, r.stderr
    assert SECRET.decode() in r.stdout
    assert SECRET.decode() not in r.stderr
