"""The signing-server client against a real HTTP server speaking the original shim's API."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from inclavare.enclave.identity import (
    ServerSigner,
    SigningServerClient,
    SigningServerError,
    sign_manifest,
    verify_signature,
    write_signature,
)


class SignatureServer(http.server.ThreadingHTTPServer):
    """shim/cmd/signature-server's API (inventory §3.4), with switches to misbehave."""

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


@pytest.fixture(scope="module")
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


def test_api_calls(server):
    client = SigningServerClient(server.url + "/")
    assert client.ping()
    assert client.healthz()
    assert client.public_key().public_numbers() == server.key.public_key().public_numbers()
    signature, key = client.sign_pkcs1(b"material")
    key.verify(signature, b"material", padding.PKCS1v15(), hashes.SHA256())
    assert server.requests[-1] == ("POST", "/api/v1/signature/pkcs1", "text/plain", b"material")


def test_sign_through_the_server_and_verify(server, expanded, rootfs):
    manifest = expanded()
    sig = sign_manifest(manifest, rootfs, ServerSigner(server.url))
    write_signature(sig, manifest + ".sig")
    identity = verify_signature(manifest, manifest + ".sig", rootfs)
    spki = server.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert identity.signer == hashlib.sha256(spki).digest()
    paths = [r[1] for r in server.requests]
    assert paths == ["/api/v1/signature/public-key", "/api/v1/signature/pkcs1"]
    # What the server signed is exactly the domain-separated body in the file.
    assert server.requests[-1][3] == b"inclavare/enclave-signature/v1\0" + sig.body


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error", r"/api/v1/signature/pkcs1: HTTP 500$"),
        ("garbage", r'/api/v1/signature/pkcs1: answer is not \{"signature": base64, "publicKey": PEM\}$'),
        ("other-key", r"/api/v1/signature/pkcs1: signed with a different key than it published$"),
        ("bad-signature", r"/api/v1/signature/pkcs1: returned a signature that does not verify$"),
    ],
)
def test_misbehaving_server_is_refused(server, expanded, rootfs, mode, message):
    manifest = expanded()
    signer = ServerSigner(server.url)
    server.mode = mode
    with pytest.raises(SigningServerError, match=f"^signing server http://127.0.0.1:[0-9]+{message}"):
        sign_manifest(manifest, rootfs, signer)


def test_expected_signer_is_checked(server):
    with pytest.raises(SigningServerError, match="key is not the expected signer"):
        ServerSigner(server.url, expected_signer=bytes(32))


def test_unreachable_and_bad_urls(server):
    url = server.url
    server.shutdown()
    server.server_close()
    with pytest.raises(SigningServerError, match=r"^signing server http://127.0.0.1:[0-9]+/ping: cannot connect: "):
        SigningServerClient(url, timeout=2).ping()
    for bad in ("ftp://host/", "host:9080", "http://"):
        with pytest.raises(SigningServerError, match="must be an http:// or https:// URL"):
            SigningServerClient(bad)
