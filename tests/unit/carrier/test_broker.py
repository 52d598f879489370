"""The key broker a carried enclave trusts: the pod's URLs and the image's CA or key pins, in the signed manifest."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re

import pytest

from conftest import config_text
from inclavare.carrier import MANIFEST, SIGNATURE, prepare
from inclavare.carrier.broker import CA_FILE, PINS_FILE
from inclavare.carrier.errors import CarrierError
from inclavare.carrier.flow import OPTION_CONFIG
from inclavare.enclave.identity import load_manifest, verify_signature
from inclavare.testing.pki import CertificateAuthority, spki_pin

ASK = ["RUNE_CARRIER=wasm", "ENCLAVE_KBS_URL=https://KBS.example:8443/", "ENCLAVE_KBS_RESOURCES=default/secret/a"]
OPT_OUT = {"enclave.kbs.insecure_unpinned": "true"}


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("tenant broker CA")


def put(bundle: str, path: str, data: bytes) -> None:
    full = os.path.join(bundle, "rootfs", path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)


def carried(bundle: str, config: str):
    """prepare() the bundle; (parsed manifest, verified identity)."""
    prepare(bundle, options={OPTION_CONFIG: config})
    rootfs = os.path.join(bundle, "rootfs")
    manifest = os.path.join(rootfs, MANIFEST.lstrip("/"))
    return load_manifest(manifest), verify_signature(manifest, os.path.join(rootfs, SIGNATURE.lstrip("/")), rootfs)


def refused(bundle: str, config: str) -> str:
    before = config_text(bundle)
    with pytest.raises(CarrierError) as info:
        prepare(bundle, options={OPTION_CONFIG: config})
    message = str(info.value)
    assert "\n" not in message
    assert config_text(bundle) == before  # nothing for rune to start
    assert not os.path.exists(os.path.join(bundle, "rootfs", MANIFEST.lstrip("/")))
    return message


@pytest.mark.parametrize("carrier", ["wasm", "native"])
def test_the_pods_broker_and_the_images_ca_are_pinned_and_measured(bundle, node_config, ca, carrier):
    args = ["/app/hello.wasm"] if carrier == "wasm" else ["/app/hello"]
    b = bundle(args, [f"RUNE_CARRIER={carrier}", *ASK[1:]])
    put(b, CA_FILE, ca.pem)
    manifest, _identity = carried(b, node_config())
    assert manifest.kbs is not None
    assert manifest.kbs.urls == ("https://kbs.example:8443",)
    assert manifest.kbs.cacert == CA_FILE
    assert manifest.kbs.pin_sha256 == ()
    ca_file = [t for t in manifest.trusted_files if t.path == CA_FILE]
    assert [t.sha256 for t in ca_file] == [hashlib.sha256(ca.pem).digest()]  # its bytes are measured


def test_every_replica_the_pod_names_is_pinned_and_the_annotation_names_them_too(bundle, node_config, ca):
    urls = "https://kbs-b.example:8443, https://KBS-A.example"
    b = bundle(env=["RUNE_CARRIER=wasm"], annotations={"enclave.kbs.url": urls})
    put(b, CA_FILE, ca.pem)
    manifest, _ = carried(b, node_config())
    assert manifest.kbs is not None
    assert manifest.kbs.urls == ("https://kbs-a.example:443", "https://kbs-b.example:8443")


def test_the_measurement_covers_the_broker_url_and_the_ca(bundle, node_config, ca):
    def measurement(url: str, ca_pem: bytes, name: str) -> bytes:
        b = bundle(env=["RUNE_CARRIER=wasm", f"ENCLAVE_KBS_URL={url}"], name=name)
        put(b, CA_FILE, ca_pem)
        return carried(b, node_config())[1].measurement

    tenant = measurement("https://kbs.example:8443", ca.pem, "a")
    assert measurement("https://KBS.example:8443/", ca.pem, "b") == tenant  # one spelling of one URL
    assert measurement("https://kbs.node-7.example:8443", ca.pem, "c") != tenant  # a host that rewrites the URL
    assert measurement("https://kbs.example:8443", CertificateAuthority("host CA").pem, "d") != tenant


def test_key_pins_from_the_image_alone_or_with_the_ca(bundle, node_config, ca):
    cert, _key = ca.issue("kbs.example")
    pin, other = spki_pin(cert), base64.b64encode(b"\1" * 32).decode()
    b = bundle(env=ASK, name="pins")
    put(b, PINS_FILE, f"# the tenant's broker\n{pin}\n\n  {other}  # its next key\n".encode())
    manifest, _ = carried(b, node_config())
    assert manifest.kbs is not None
    assert manifest.kbs.cacert is None
    assert manifest.kbs.pin_sha256 == tuple(sorted([base64.b64decode(pin), b"\1" * 32]))
    assert all(t.path != CA_FILE for t in manifest.trusted_files)
    both = bundle(env=ASK, name="both")
    put(both, PINS_FILE, pin.encode())
    put(both, CA_FILE, ca.pem)
    manifest, _ = carried(both, node_config())
    assert manifest.kbs is not None
    assert (manifest.kbs.cacert, manifest.kbs.pin_sha256) == (CA_FILE, (base64.b64decode(pin),))


def test_secrets_from_an_image_without_a_ca_are_refused_in_one_line(bundle, node_config):
    message = refused(bundle(env=ASK), node_config())
    assert message == (
        f"process.env ENCLAVE_KBS_URL: asks for KBS secrets, but the image has no {CA_FILE} (or {PINS_FILE}) "
        "naming the broker the enclave may trust: add the broker's CA to the image, or annotate the pod "
        "enclave.kbs.insecure_unpinned=true (development only)"
    )


def test_the_opt_out_signs_an_unpinned_enclave_and_says_so(bundle, node_config, caplog):
    b = bundle(env=ASK, annotations=OPT_OUT)
    with caplog.at_level(logging.WARNING, "inclavare.carrier"):
        manifest, _ = carried(b, node_config())
    assert manifest.kbs is None
    warning = "enclave.kbs.insecure_unpinned=true: the enclave pins no key broker"
    assert any(warning in r.getMessage() for r in caplog.records)


def test_the_opt_out_does_not_drop_a_pin_the_image_carries(bundle, node_config, ca):
    b = bundle(env=ASK, annotations=OPT_OUT)
    put(b, CA_FILE, ca.pem)
    manifest, _ = carried(b, node_config())
    assert manifest.kbs is not None
    assert manifest.kbs.cacert == CA_FILE


def test_no_secrets_no_pin(bundle, node_config, ca):
    b = bundle()
    put(b, CA_FILE, ca.pem)
    manifest, _ = carried(b, node_config())
    assert manifest.kbs is None
    assert all(t.path != CA_FILE for t in manifest.trusted_files)


@pytest.mark.parametrize(
    ("env", "annotations", "message"),
    [
        ([*ASK[:1], "ENCLAVE_KBS_URL=http://kbs.example:8080"], {},
         "process.env ENCLAVE_KBS_URL: 'http://kbs.example:8080' must be https: TLS ends inside the enclave"),
        (["RUNE_CARRIER=wasm"], {"enclave.kbs.url": "https://kbs.example, https://u@kbs.example"},
         "annotations.enclave.kbs.url: 'https://u@kbs.example' must be https://host[:port][/path], without user"),
        (ASK, {"enclave.kbs.insecure_unpinned": "yes"},
         "annotations.enclave.kbs.insecure_unpinned: 'yes': must be true or false"),
    ],
)  # fmt: skip
def test_bad_broker_settings_are_one_line(bundle, node_config, ca, env, annotations, message):
    b = bundle(env=env, annotations=annotations)
    put(b, CA_FILE, ca.pem)
    assert refused(b, node_config()).startswith(message)


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        (CA_FILE, b"not a certificate\n", f"image: {CA_FILE}: not a PEM CA bundle ("),
        (CA_FILE, b"", f"image: {CA_FILE}: not a PEM CA bundle ("),
        (CA_FILE, None, f"image: {CA_FILE}: holds no CA certificate (basicConstraints CA:TRUE)"),
        (PINS_FILE, b"# nothing\n", f"image: {PINS_FILE}: holds no pin"),
        (PINS_FILE, b"bm90IGEgZGlnZXN0\n", f"image: {PINS_FILE}: line 1: must be base64 of a SHA-256 digest"),
        (PINS_FILE, b"sha256//" + base64.b64encode(b"\0" * 32) + b"\n", f"image: {PINS_FILE}: line 1: must be"),
    ],
)
def test_unusable_broker_files_in_the_image_are_one_line(bundle, node_config, ca, path, data, message):
    b = bundle(env=ASK)
    put(b, path, data if data is not None else ca.issue("kbs.example")[0])  # None: a leaf, not a CA
    assert refused(b, node_config()).startswith(message)


def test_broker_files_are_read_inside_the_rootfs(bundle, node_config, ca, tmp_path):
    host_ca = tmp_path / "host-ca.pem"
    host_ca.write_bytes(ca.pem)
    b = bundle(env=ASK)
    os.makedirs(os.path.join(b, "rootfs/etc/inclavare"))
    os.symlink(str(host_ca), os.path.join(b, "rootfs", CA_FILE.lstrip("/")))  # resolves in the rootfs: nothing
    assert re.search(f"the image has no {CA_FILE}", refused(b, node_config()))
    os.unlink(os.path.join(b, "rootfs", CA_FILE.lstrip("/")))
    os.mkdir(os.path.join(b, "rootfs", CA_FILE.lstrip("/")))
    assert refused(b, node_config()) == f"image: {CA_FILE}: not a regular file"
