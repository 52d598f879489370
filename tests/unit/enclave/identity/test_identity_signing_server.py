"""The signing-server client against a real HTTP server speaking the original shim's API."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from inclavare.enclave.identity import (
    ServerSigner,
    SigningServerClient,
    SigningServerError,
    sign_manifest,
    verify_signature,
    write_signature,
)


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
