"""Fixtures for the enclave identity tests: a small rootfs, manifests, keys, a host secret."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from identity_data import NATIVE, WASM_MODULE

from inclavare.enclave.identity import HostSecret


@pytest.fixture
def rootfs(tmp_path) -> str:
    root = tmp_path / "rootfs"
    for rel, data in {
        "bin/app": b"\x7fELF app v1",
        "lib/libc.so.6": b"libc bytes",
        "etc/app.conf": b"mode=prod\n",
        "app/main.wasm": WASM_MODULE,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "srv/data").mkdir(parents=True)
    # An absolute symlink must resolve inside the rootfs, not on the host.
    os.symlink("/lib/libc.so.6", root / "lib/libc.so")
    return str(root)


@pytest.fixture
def write(tmp_path):
    """write(name, text) -> path of a file in the test's tmp dir."""

    def make(name: str, text: str | bytes) -> str:
        path = tmp_path / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return str(path)

    return make


@pytest.fixture
def expanded(rootfs, write):
    """expanded(template_text, name) -> path of the expanded manifest."""
    from inclavare.enclave.identity import dump_manifest, expand_trusted_files, parse_manifest

    def make(text: str = NATIVE, name: str = "enclave.manifest.toml") -> str:
        manifest = expand_trusted_files(parse_manifest(text, name), rootfs)
        return write(name, dump_manifest(manifest))

    return make


def _pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    # e = 3 as SGX enclave signing keys (and the upstream mock signer) use.
    return rsa.generate_private_key(public_exponent=3, key_size=3072)


@pytest.fixture
def ed_pem(write) -> str:
    return write("ed25519.pem", _pem(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))))


@pytest.fixture
def ed_pem_other(write) -> str:
    return write("ed25519-other.pem", _pem(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))))


@pytest.fixture
def rsa_pem(write, rsa_key) -> str:
    return write("rsa3072.pem", _pem(rsa_key))


@pytest.fixture
def host_secret() -> HostSecret:
    return HostSecret(hashlib.sha256(b"test host secret").digest(), "<test>")
