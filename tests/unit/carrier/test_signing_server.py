"""`inclavare signing-server` over real sockets: the original API, TLS, tokens, mTLS, refusals, audit lines."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from pki import Pki

from inclavare.carrier.errors import SigningServiceError
from inclavare.carrier.signing_server import make_server
from inclavare.carrier.signing_server.auth import token_line
from inclavare.enclave.identity import (
    ServerSigner,
    SigningServerClient,
    SigningServerError,
    dump_manifest,
    expand_trusted_files,
    parse_manifest,
    sign_manifest,
    verify_signature,
    write_signature,
)

TOKEN = "s3cret-token-of-node-1"
WASM = b"\0asm\x01\0\0\0"


def _pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=3072)


@pytest.fixture
def files(tmp_path, rsa_key):
    """Keys (0600), a tokens file with node-1's digest, an audit path, a PKI with server and client certificates."""
    out = {}
    for name, key in (("ed25519", ed25519.Ed25519PrivateKey.generate()), ("rsa", rsa_key)):
        path = tmp_path / f"{name}.pem"
        path.write_bytes(_pem(key))
        path.chmod(0o600)
        out[name] = str(path)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# who may sign\n{token_line('node-1', TOKEN)}\n{token_line('node-2', 'other')}\n")
    out["tokens"] = str(tokens)
    out["audit"] = str(tmp_path / "audit.log")
    pki = Pki(str(tmp_path))
    out["ca"] = pki.ca
    out["cert"], out["key"] = pki.issue("signer", server=True)
    out["client_cert"], out["client_key"] = pki.issue("node-7", server=False)
    rogue = Pki(str(tmp_path), "rogue CA")
    out["rogue_cert"], out["rogue_key"] = rogue.issue("node-8", server=False)
    return out


@contextlib.contextmanager
def serving(**options):
    server = make_server(listen=("127.0.0.1", 0), **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        server.service.audit.close()
        thread.join()


def audit_lines(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_the_original_api(files):
    """Plain HTTP and no authentication, as shim/cmd/signature-server: its client's calls, unchanged."""
    with serving(key=files["rsa"], insecure_http=True, no_auth=True, audit_log=files["audit"]) as server:
        conn = http.client.HTTPConnection(*server.address)
        conn.request("HEAD", "/")
        assert conn.getresponse().status == 200
        client = SigningServerClient(server.url)
        assert client.ping()
        assert client.healthz()
        pem = client.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert pem == server.service.public_pem
        conn = http.client.HTTPConnection(*server.address)
        conn.request("POST", "/api/v1/signature/pkcs1", b"material", {"Content-Type": "text/plain"})
        answer = conn.getresponse()
        assert (answer.status, answer.getheader("Content-Type")) == (200, "application/json")
        doc = json.loads(answer.read())
        assert doc["publicKey"].encode() == pem
        key = serialization.load_pem_public_key(pem)
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(base64.b64decode(doc["signature"]), b"material", padding.PKCS1v15(), hashes.SHA256())
    [line] = audit_lines(files["audit"])
    assert line["event"] == "signature"
    assert (line["who"], line["algorithm"], line["size"]) == ("anonymous", "rsa3072-pkcs1v15-sha256", 8)
    assert line["sha256"] == hashlib.sha256(b"material").hexdigest()
    assert line["peer"].startswith("127.0.0.1:")
    assert time.time() - time.mktime(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S")) < 3600 * 24
    assert "enclave" not in line  # not an enclave signature body


@pytest.fixture
def manifest(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "app").mkdir(parents=True)
    (rootfs / "app" / "m.wasm").write_bytes(WASM)
    text = 'runtime = "wasm"\n[wasm]\nmodule = "/app/m.wasm"\n'
    path = tmp_path / "enclave.toml"
    path.write_text(dump_manifest(expand_trusted_files(parse_manifest(text, str(path)), str(rootfs))))
    return str(path), str(rootfs)


@pytest.mark.parametrize("algorithm", ["ed25519", "rsa"])
def test_tls_and_a_token_sign_an_enclave(files, manifest, algorithm):
    path, rootfs = manifest
    with serving(key=files[algorithm], tls_cert=files["cert"], tls_key=files["key"], tokens=files["tokens"],
                 audit_log=files["audit"]) as server:  # fmt: skip
        assert server.url.startswith("https://127.0.0.1:")
        signer = ServerSigner(server.url, cafile=files["ca"], token=TOKEN)
        write_signature(sign_manifest(path, rootfs, signer), path + ".sig")
    identity = verify_signature(path, path + ".sig", rootfs)
    [line] = audit_lines(files["audit"])
    assert line["who"] == "token:node-1"
    assert line["algorithm"] == ("ed25519" if algorithm == "ed25519" else "rsa3072-pkcs1v15-sha256")
    # The audit line names the enclave that was signed, not just bytes.
    assert line["enclave"] == {"measurement": identity.measurement.hex(), "isv_prod_id": 0, "isv_svn": 0,
                               "debug": False}  # fmt: skip
    with open(files["audit"]) as f:
        assert TOKEN not in f.read()


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "bearer token required"), ("wrong", "bearer token refused"), ("", "bearer token required")],
)
def test_a_caller_without_a_valid_token_is_refused(files, manifest, token, reason):
    path, rootfs = manifest
    with serving(key=files["ed25519"], tls_cert=files["cert"], tls_key=files["key"], tokens=files["tokens"],
                 audit_log=files["audit"]) as server:  # fmt: skip
        signer = ServerSigner(server.url, cafile=files["ca"], token=token)  # the public key is public
        with pytest.raises(SigningServerError) as info:
            sign_manifest(path, rootfs, signer)
    assert str(info.value) == f"signing server {server.url}/api/v1/signature/ed25519: HTTP 401: {reason}"
    [line] = audit_lines(files["audit"])
    assert (line["event"], line["who"], line["status"], line["reason"]) == ("refused", "unauthenticated", 401, reason)


def test_the_client_verifies_the_server(files):
    with serving(key=files["ed25519"], tls_cert=files["cert"], tls_key=files["key"], tokens=files["tokens"]) as server:
        with pytest.raises(SigningServerError, match=r"cannot connect: .*CERTIFICATE_VERIFY_FAILED"):
            SigningServerClient(server.url, token=TOKEN).ping()  # the system CAs do not know the test CA
        other = Pki(os.path.dirname(files["ca"]), "other CA")
        with pytest.raises(SigningServerError, match="CERTIFICATE_VERIFY_FAILED"):
            SigningServerClient(server.url, cafile=other.ca, token=TOKEN).ping()
        assert SigningServerClient(server.url, cafile=files["ca"]).ping()


def test_mtls_names_the_client(files, manifest):
    path, rootfs = manifest
    with serving(key=files["ed25519"], tls_cert=files["cert"], tls_key=files["key"], client_ca=files["ca"],
                 audit_log=files["audit"]) as server:  # fmt: skip
        good = {"cafile": files["ca"], "client_cert": files["client_cert"], "client_key": files["client_key"]}
        sign_manifest(path, rootfs, ServerSigner(server.url, **good))
        rogue = {"cafile": files["ca"], "client_cert": files["rogue_cert"], "client_key": files["rogue_key"]}
        for bad in ({"cafile": files["ca"]}, rogue):
            with pytest.raises(
                SigningServerError, match=r"/api/v1/signature/public-key: (cannot connect|request failed)"
            ):
                ServerSigner(server.url, **bad)
    [line] = audit_lines(files["audit"])
    with open(files["client_cert"], "rb") as f:
        from cryptography import x509

        der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
    assert line["who"] == f"cert:node-7/{hashlib.sha256(der).hexdigest()[:16]}"


def test_token_and_mtls_together_need_both(files, manifest):
    path, rootfs = manifest
    certs = {"cafile": files["ca"], "client_cert": files["client_cert"], "client_key": files["client_key"]}
    with serving(key=files["ed25519"], tls_cert=files["cert"], tls_key=files["key"], client_ca=files["ca"],
                 tokens=files["tokens"], audit_log=files["audit"]) as server:  # fmt: skip
        with pytest.raises(SigningServerError, match="HTTP 401: bearer token required"):
            sign_manifest(path, rootfs, ServerSigner(server.url, **certs))
        sign_manifest(path, rootfs, ServerSigner(server.url, token=TOKEN, **certs))
    assert audit_lines(files["audit"])[-1]["who"].startswith("token:node-1 cert:node-7/")


def test_no_signature_without_its_audit_line(files):
    """/dev/full refuses every write (ENOSPC): the server answers 503 and signs nothing."""
    with serving(key=files["ed25519"], insecure_http=True, tokens=files["tokens"], audit_log="/dev/full") as server:
        conn = http.client.HTTPConnection(*server.address)
        conn.request("POST", "/api/v1/signature/ed25519", b"x", {"Authorization": f"Bearer {TOKEN}"})
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (503, b"audit log unavailable: not signing\n")


def test_wrong_algorithm_bad_requests_and_unknown_paths(files):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(key=files["ed25519"], insecure_http=True, tokens=files["tokens"], audit_log=files["audit"]) as server:

        def ask(method: str, path: str, body: bytes | None = None, headers: dict | None = None):
            conn = http.client.HTTPConnection(*server.address)
            conn.request(method, path, body, headers or {})
            answer = conn.getresponse()
            return answer.status, answer.read(), answer.getheader("Allow")

        assert ask("POST", "/api/v1/signature/pkcs1", b"x", auth) == (
            409, b"this server's key is ed25519: POST /api/v1/signature/ed25519\n", None
        )  # fmt: skip
        assert ask("POST", "/api/v1/signature/ed25519", b"", auth)[:2] == (400, b"empty body: nothing to sign\n")
        assert ask("GET", "/api/v1/signature/ed25519") == (405, b"method not allowed\n", "POST")
        assert ask("POST", "/ping", b"x")[0] == 405
        assert ask("GET", "/api/v2/anything")[:2] == (404, b"404 page not found\n")
        big = {**auth, "Content-Length": str(64 << 10 | 1)}
        assert ask("POST", "/api/v1/signature/ed25519", None, big)[:2] == (413, b"body larger than 65536 bytes\n")
        with socket.create_connection(server.address) as raw:  # no Content-Length at all
            raw.sendall(b"POST /api/v1/signature/ed25519 HTTP/1.0\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.0 411 ")
    events = [(line["event"], line.get("status")) for line in audit_lines(files["audit"])]
    assert events == [("refused", 409), ("refused", 400)]


def test_a_silent_client_holds_up_nobody(files):
    """A TCP connection that never starts the TLS handshake does not block other callers."""
    tls = {"tls_cert": files["cert"], "tls_key": files["key"]}
    with (
        serving(key=files["ed25519"], tokens=files["tokens"], **tls) as server,
        socket.create_connection(server.address),
    ):
        start = time.monotonic()
        assert SigningServerClient(server.url, cafile=files["ca"]).healthz()
        assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "--tls-cert: required (or --insecure-http"),
        ({"insecure_http": True}, "--tokens: required, or --client-ca (or --no-auth"),
        ({"insecure_http": True, "client_ca": "CA"}, "--client-ca: client certificates need TLS"),
        ({"tls_cert": "CERT"}, "--tls-cert/--tls-key: give both or neither"),
        ({"insecure_http": True, "no_auth": True, "key": "/nonexistent.pem"}, "/nonexistent.pem: No such file"),
    ],
)
def test_configurations_that_would_sign_for_anyone_are_refused(files, options, message):
    options = {k: files.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    options.setdefault("key", files["ed25519"])
    with pytest.raises(SigningServiceError) as info:
        make_server(listen=("127.0.0.1", 0), **options)
    assert str(info.value).startswith(message)


def test_key_and_tokens_files_are_checked(files, tmp_path):
    os.chmod(files["ed25519"], 0o644)
    with pytest.raises(SigningServiceError, match=r"ed25519\.pem: mode 0644: a private key must be 0600 or 0400"):
        make_server(listen=("127.0.0.1", 0), key=files["ed25519"], insecure_http=True, no_auth=True)
    os.chmod(files["ed25519"], 0o600)
    small = tmp_path / "rsa2048.pem"
    small.write_bytes(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    small.chmod(0o600)
    with pytest.raises(SigningServiceError, match=r"^--key: .*must be an RSA-3072 or Ed25519 private key"):
        make_server(listen=("127.0.0.1", 0), key=str(small), insecure_http=True, no_auth=True)
    tokens = tmp_path / "bad-tokens"
    twice = f"{token_line('a', 'x')}\n{token_line('a', 'y')}"
    cases = [
        ("node-1 " + TOKEN, "line 1: expected NAME sha256:<64 hex digits>"),
        ("# nothing\n", "no tokens: nobody could sign"),
        (twice, "line 2: a is listed twice"),
    ]
    for text, message in cases:
        tokens.write_text(text)
        with pytest.raises(SigningServiceError, match=re.escape(message)):
            make_server(listen=("127.0.0.1", 0), key=str(small).replace("rsa2048", "ed25519"), insecure_http=True,
                        tokens=str(tokens))  # fmt: skip


def test_the_client_keeps_tokens_off_plain_http():
    with pytest.raises(SigningServerError, match="refusing to send a bearer token without TLS"):
        SigningServerClient("http://10.0.0.1:9080", token="x")
    with pytest.raises(SigningServerError, match="a CA or client certificate needs an https:// URL"):
        SigningServerClient("http://127.0.0.1:9080", cafile="/etc/ssl/certs/ca-certificates.crt")
    assert "x" not in repr(SigningServerClient("http://127.0.0.1:9080", token="x"))
    with pytest.raises(SigningServerError, match="TLS setup: "):
        SigningServerClient("https://127.0.0.1:9080", cafile="/nonexistent")
