"""Signing and verification: round trips for both key types, and every tampering refused by name."""

from __future__ import annotations

import hashlib
import pathlib

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from identity_data import WASM

from inclavare.enclave.identity import (
    KeySigner,
    SignatureError,
    inspect_signature,
    load_manifest,
    measure,
    sign_manifest,
    verify_signature,
    write_signature,
)
from inclavare.enclave.identity.errors import IdentityError, ManifestError


def spki_hash(pem_path: str) -> bytes:
    key = serialization.load_pem_private_key(pathlib.Path(pem_path).read_bytes(), None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


def signed(manifest: str, rootfs: str, key_pem: str) -> str:
    sig = sign_manifest(manifest, rootfs, KeySigner.from_pem_file(key_pem))
    write_signature(sig, manifest + ".sig")
    return manifest + ".sig"


@pytest.mark.parametrize(("key", "algorithm"), [("ed_pem", "ed25519"), ("rsa_pem", "rsa3072-pkcs1v15-sha256")])
def test_round_trip(request, expanded, rootfs, key, algorithm):
    pem = request.getfixturevalue(key)
    manifest = expanded()
    sig = signed(manifest, rootfs, pem)
    identity = verify_signature(manifest, sig, rootfs)
    assert identity.measurement == measure(load_manifest(manifest), rootfs)
    assert identity.signer == spki_hash(pem)
    assert (identity.isv_prod_id, identity.isv_svn, identity.debug) == (7, 3, False)
    assert identity.attributes == {"software": True, "debug": False}
    assert inspect_signature(sig) == (identity, algorithm)
    # Both schemes are deterministic: signing again gives the same file.
    first = pathlib.Path(sig).read_bytes()
    assert pathlib.Path(signed(manifest, rootfs, pem)).read_bytes() == first


def test_wasm_round_trip_and_expected_signer(expanded, rootfs, ed_pem, ed_pem_other):
    manifest = expanded(WASM, "wasm.manifest.toml")
    sig = signed(manifest, rootfs, ed_pem)
    assert verify_signature(manifest, sig, rootfs, expected_signer=spki_hash(ed_pem)).isv_prod_id == 9
    with pytest.raises(SignatureError, match=r"wasm.manifest.toml.sig: signer: [0-9a-f]{64} is not the expected"):
        verify_signature(manifest, sig, rootfs, expected_signer=spki_hash(ed_pem_other))


def test_tampered_trusted_file_is_named(expanded, rootfs, ed_pem):
    manifest = expanded()
    sig = signed(manifest, rootfs, ed_pem)
    pathlib.Path(rootfs, "bin/app").write_bytes(b"\x7fELF app v2")
    with pytest.raises(ManifestError) as info:
        verify_signature(manifest, sig, rootfs)
    assert str(info.value) == f"{manifest}: trusted_files[0].sha256: mismatch for /bin/app"


def test_tampered_module_is_named(expanded, rootfs, ed_pem):
    manifest = expanded(WASM, "wasm.manifest.toml")
    sig = signed(manifest, rootfs, ed_pem)
    pathlib.Path(rootfs, "app/main.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00\x00")
    with pytest.raises(ManifestError, match=r"wasm.manifest.toml: wasm.module_sha256: mismatch for /app/main.wasm$"):
        verify_signature(manifest, sig, rootfs)


def test_tampered_manifest_is_refused_as_manifest(expanded, rootfs, ed_pem):
    manifest = expanded()
    sig = signed(manifest, rootfs, ed_pem)
    path = pathlib.Path(manifest)
    original = path.read_text()
    path.write_text(original.replace('"--serve"', '"--debug-shell"'))
    with pytest.raises(
        SignatureError, match=r"enclave.manifest.toml: manifest: measurement [0-9a-f]{64} differs from the signed"
    ):
        verify_signature(manifest, sig, rootfs)
    # Changing a file *and* its pinned hash is a manifest change too.
    pathlib.Path(rootfs, "etc/app.conf").write_bytes(b"mode=evil\n")
    new_hash = hashlib.sha256(b"mode=evil\n").hexdigest()
    old_hash = hashlib.sha256(b"mode=prod\n").hexdigest()
    path.write_text(original.replace(old_hash, new_hash))
    with pytest.raises(SignatureError, match=": manifest: measurement"):
        verify_signature(manifest, sig, rootfs)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("isv_svn = 3", "isv_svn = 4", "isv_svn: 4 differs from the signed 3"),
        ("isv_prod_id = 7", "isv_prod_id = 1", "isv_prod_id: 1 differs from the signed 7"),
        ("debug = false", "debug = true", "debug: true differs from the signed false"),
    ],
)
def test_signed_fields_must_match(expanded, rootfs, ed_pem, old, new, message):
    manifest = expanded()
    sig = signed(manifest, rootfs, ed_pem)
    path = pathlib.Path(manifest)
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(SignatureError, match=message):
        verify_signature(manifest, sig, rootfs)


def rewrite(sig_path: str, **changes) -> None:
    doc = cbor2.loads(pathlib.Path(sig_path).read_bytes())
    doc.update(changes)
    pathlib.Path(sig_path).write_bytes(cbor2.dumps(doc))


def test_wrong_signature_is_refused(expanded, rootfs, ed_pem, ed_pem_other):
    manifest = expanded()
    sig = signed(manifest, rootfs, ed_pem)
    doc = cbor2.loads(pathlib.Path(sig).read_bytes())
    other = sign_manifest(manifest, rootfs, KeySigner.from_pem_file(ed_pem_other))
    flipped = bytes([doc["signature"][0] ^ 1]) + doc["signature"][1:]
    body = cbor2.loads(doc["body"])
    cases = [
        {"signature": flipped},
        {"signer": other.signer},  # someone else's key, our signature
        {"signature": other.signature},  # someone else's signature, our key
        {"body": cbor2.dumps({**body, "isv_svn": 9}, canonical=True)},
    ]
    for change in cases:
        rewrite(sig, **{**doc, **change})
        with pytest.raises(SignatureError) as info:
            verify_signature(manifest, sig, rootfs)
        assert str(info.value) == f"{sig}: signature: does not verify with the signer key in the file"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "x"}, "format: not an inclavare-enclave-signature version 1 file"),
        ({"version": True}, "format: not an inclavare-enclave-signature"),
        ({"algorithm": "rsa-pss"}, "algorithm: must be"),
        ({"body": "text"}, "body: must be a byte string"),
        ({"signer": b"junk"}, "signer: not a DER SubjectPublicKeyInfo"),
        ({"algorithm": "rsa3072-pkcs1v15-sha256"}, "signer: key does not match algorithm"),
    ],
)
def test_malformed_signature_file(expanded, rootfs, ed_pem, change, message):
    manifest = expanded()
    sig = signed(manifest, rootfs, ed_pem)
    rewrite(sig, **change)
    with pytest.raises(SignatureError, match=message):
        verify_signature(manifest, sig, rootfs)


def test_not_cbor_and_missing(tmp_path, expanded, rootfs):
    manifest = expanded()
    (tmp_path / "junk.sig").write_bytes(b"\xff\x00garbage")
    with pytest.raises(SignatureError, match=r"junk.sig: malformed CBOR"):
        verify_signature(manifest, str(tmp_path / "junk.sig"), rootfs)
    with pytest.raises(SignatureError, match=r"nope.sig: No such file"):
        verify_signature(manifest, str(tmp_path / "nope.sig"), rootfs)


def test_templates_cannot_be_signed(write, rootfs, ed_pem):
    from identity_data import NATIVE

    template = write("template.toml", NATIVE)
    with pytest.raises(ManifestError, match=r"template.toml: trusted_files\[0\].sha256: missing for /bin/app"):
        sign_manifest(template, rootfs, KeySigner.from_pem_file(ed_pem))


def _pem(key, password: bytes | None = None) -> bytes:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def test_unusable_keys(write):
    small = write("rsa2048.pem", _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    with pytest.raises(SignatureError, match=r"rsa2048\.pem: must be an RSA-3072 or Ed25519 private key"):
        KeySigner.from_pem_file(small)
    locked = write("locked.pem", _pem(ed25519.Ed25519PrivateKey.generate(), b"pw"))
    with pytest.raises(SignatureError, match=r"locked\.pem: encrypted private keys are not supported"):
        KeySigner.from_pem_file(locked)
    junk = write("junk.pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SignatureError, match=r"junk\.pem: not a PEM private key"):
        KeySigner.from_pem_file(junk)
    signer = KeySigner.from_pem_file(write("k.pem", _pem(ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))))
    assert "PRIVATE" not in repr(signer)
    assert issubclass(SignatureError, IdentityError)
