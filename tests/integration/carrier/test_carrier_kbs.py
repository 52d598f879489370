"""A plain image, made an enclave by the carrier, gets its secret from a real KBS at launch.

The pod asks for the secret with ENCLAVE_KBS_URL / ENCLAVE_KBS_RESOURCES in
its environment; the carrier measures the secrets directory into the wasm
manifest as the module's only (read-only) preopened directory, so no
`preopen=` option is needed, and pins the broker: the pod's URL and the CA
the image carries at /etc/inclavare/kbs-ca.pem (carrier/broker.py). The KBS
serves HTTPS with a certificate of that CA, TLS ends inside the container,
and the broker releases the secret to exactly the enclave whose measurement
the tenant registered.
"""

from __future__ import annotations

import os
import tomllib

import pytest

from conftest import inclavare
from inclavare.carrier import MANIFEST, SIGNATURE
from inclavare.carrier.broker import CA_FILE
from inclavare.testing import kbs as kbs_testing

pytestmark = pytest.mark.root

SECRET = b"hello from the key broker"
RESOURCE = "default/secret/greeting"


@pytest.fixture(scope="module")
def kbs(tmp_path_factory):
    world = kbs_testing.World.create(str(tmp_path_factory.mktemp("carrier-kbs")))
    with kbs_testing.TlsBroker(world, "carrier") as broker, broker.admin(world) as admin:
        admin.set_resource(RESOURCE, SECRET)
        admin.set_resource_policy(builtin="approved-executables", scope="default/*")
        yield broker, world


@pytest.fixture(scope="module")
def pinned_image(plain_image, kbs):
    """The wasm sample in an image that carries the tenant broker's CA."""
    broker, _ = kbs
    with open(broker.ca_file, "rb") as f:
        plain_image("wasm-pinned", "wasm", {CA_FILE: f.read()})
    return "wasm-pinned"


def test_carried_enclave_receives_its_secret(rune, image_bundle, carrier_config, kbs, pinned_image, tmp_path):
    broker, world = kbs
    kbs_env = [f"ENCLAVE_KBS_URL={broker.url}", f"ENCLAVE_KBS_RESOURCES={RESOURCE}"]
    bundle = image_bundle(pinned_image, ["read=/run/secrets/greeting"], kbs_env)
    inclavare("carrier", "prepare", "--config", carrier_config(), bundle)
    rootfs = os.path.join(bundle, "rootfs")
    with open(os.path.join(rootfs, MANIFEST.lstrip("/")), "rb") as f:
        manifest = tomllib.load(f)
    assert manifest["wasm"]["preopened_dirs"] == [{"guest": "/run/secrets", "path": "/run/secrets", "read_only": True}]
    assert manifest["kbs"]["urls"] == [broker.url]  # the pod's broker, pinned and measured
    assert CA_FILE in str(manifest["trusted_files"])
    with broker.admin(world) as admin:  # the tenant approves the enclave the carrier built
        path = os.path.join(rootfs, MANIFEST.lstrip("/"))
        admin.add_from_enclave(path, os.path.join(rootfs, SIGNATURE.lstrip("/")), rootfs)
    env = {**os.environ, "INCLAVARE_WASM_CACHE": str(tmp_path / "wasm-cache")}
    r = rune("run", "--bundle", bundle, "carried-kbs", env=env)
    assert r.returncode == 0, r.stderr
    assert SECRET.decode() in r.stdout
    assert SECRET.decode() not in r.stderr


def test_an_image_without_a_pin_is_refused_before_anything_is_built(image_bundle, carrier_config, kbs):
    broker, _ = kbs
    bundle = image_bundle("wasm", [], [f"ENCLAVE_KBS_URL={broker.url}", f"ENCLAVE_KBS_RESOURCES={RESOURCE}"])
    r = inclavare("carrier", "prepare", "--config", carrier_config(), bundle, check=False)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert CA_FILE in lines[0]
    assert not os.path.exists(os.path.join(bundle, "rootfs", MANIFEST.lstrip("/")))
