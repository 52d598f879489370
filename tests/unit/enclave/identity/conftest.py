"""Fixtures for the enclave identity tests: a small rootfs, manifests, keys, a host secret."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import threading

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
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


# -- a signing server speaking the original shim's HTTP API -------------------


class SignatureServer(http.server.ThreadingHTTPServer):
    """shim/cmd/signature-server's API (docs/enclave-identity.md, "Signing"), with switches to misbehave."""

    def __init__(self, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.key = key
        self.other_key = other_key
        self.mode = "good"
        self.requests: list[tuple[str, str, str, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def public_pem(self, key: rsa.RSAPrivateKey | None = None) -> bytes:
        pub = (key or self.key).public_key()
        return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: SignatureServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._reply(200, b"")

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path, "", b""))
        routes = {"/ping": b"ping", "/healthz": b"ok", "/api/v1/signature/public-key": self.server.public_pem()}
        if self.path in routes:
            self._reply(200, routes[self.path])
        else:
            self._reply(404, b"404 page not found")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append(("POST", self.path, self.headers["Content-Type"], body))
        mode, key = self.server.mode, self.server.key
        if self.path != "/api/v1/signature/pkcs1" or mode == "error":
            self._reply(500 if mode == "error" else 404, b"failed")
            return
        if mode == "garbage":
            self._reply(200, b"not json", "application/json")
            return
        signer = self.server.other_key if mode == "other-key" else key
        signature = signer.sign(body, padding.PKCS1v15(), hashes.SHA256())
        if mode == "bad-signature":
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        answer = {
            "signature": base64.b64encode(signature).decode(),
            "publicKey": self.server.public_pem(signer).decode(),
        }
        self._reply(200, json.dumps(answer).encode(), "application/json")


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture
def server(rsa_key, other_key, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    srv = SignatureServer(rsa_key, other_key)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()
