"""The key provider: ocicrypt's protocol JSON, wrap/unwrap round trips, and clear refusals."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from image_helpers import KID

from inclavare.image.errors import DecryptionError, ImageError, KeyNotFound, KeyProviderError
from inclavare.image.keystore import FileKeyStore, ResourcePath
from inclavare.image.keywrap import jwe_wrap
from inclavare.image.layercrypt import new_private_options
from inclavare.image.protocol import (
    encode_unwrap_input,
    encode_wrap_input,
    parse_input,
    parse_unwrap_output,
    parse_wrap_output,
)
from inclavare.image.provider import KeyProvider

OPTS = new_private_options("sha256:" + "1" * 64).to_json()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def go_wrap_input(params: list[bytes], optsdata: bytes) -> bytes:
    """Byte for byte what ocicrypt's json.Marshal makes (struct field order, nil as null)."""
    ec_ = {"Parameters": {"inclavare": [b64(p) for p in params]}, "DecryptConfig": {"Parameters": None}}
    doc = {
        "op": "keywrap",
        "keywrapparams": {"ec": ec_, "optsdata": b64(optsdata)},
        "keyunwrapparams": {"dc": None, "annotation": None},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def wrap(provider: KeyProvider, params: str = KID) -> bytes:
    return parse_wrap_output(provider.handle(go_wrap_input([params.encode()], OPTS)), "test")


def unwrap(provider: KeyProvider, annotation: bytes, dc: dict[str, list[bytes]] | None = None) -> bytes:
    return parse_unwrap_output(provider.handle(encode_unwrap_input(dc or {}, annotation)), "test")


def test_wrap_then_unwrap(keystore: FileKeyStore) -> None:
    provider = KeyProvider(keystore)
    annotation = wrap(provider)
    packet = json.loads(annotation)
    assert packet["kid"] == KID
    assert packet["wrap_type"] == "A256GCM"
    assert len(base64.b64decode(packet["iv"])) == 12
    assert OPTS not in annotation
    assert b64(OPTS) not in annotation.decode()
    assert unwrap(provider, annotation) == OPTS


def test_output_field_names_are_ocicrypts(keystore: FileKeyStore) -> None:
    provider = KeyProvider(keystore)
    out = json.loads(provider.handle(go_wrap_input([KID.encode()], OPTS)))
    assert list(out) == ["keywrapresults"]
    assert list(out["keywrapresults"]) == ["annotation"]
    annotation = base64.b64decode(out["keywrapresults"]["annotation"])
    out = json.loads(provider.handle(encode_unwrap_input({}, annotation)))
    assert list(out) == ["keyunwrapresults"]
    assert base64.b64decode(out["keyunwrapresults"]["optsdata"]) == OPTS


def test_encoders_and_parser_agree() -> None:
    req = parse_input(encode_wrap_input({"inclavare": [b"p"], "other": [b"q"]}, b"opts"))
    assert req.parameters == {"inclavare": [b"p"], "other": [b"q"]}
    assert req.optsdata == b"opts"
    req2 = parse_input(encode_unwrap_input({"inclavare": []}, b"ann"))
    assert req2.annotation == b"ann"
    assert req2.parameters == {"inclavare": []}


def test_coco_keypath_form_reads_the_kek_from_a_file(tmp_path) -> None:
    kek = os.urandom(32)
    (tmp_path / "kek").write_bytes(kek)
    annotation = wrap(KeyProvider(None), f"keyid={KID}::keypath={tmp_path / 'kek'}")
    store = FileKeyStore(str(tmp_path))
    store.put(ResourcePath.parse(KID), kek)
    assert unwrap(KeyProvider(store), annotation) == OPTS


def test_wrong_kek_and_tampering_are_refused(keystore: FileKeyStore, tmp_path) -> None:
    annotation = wrap(KeyProvider(keystore))
    other = FileKeyStore(str(tmp_path.joinpath("other").mkdir() or tmp_path / "other"))
    other.put(ResourcePath.parse(KID), os.urandom(32))
    with pytest.raises(DecryptionError, match="kbs:///default/key/1: wrapped_data: does not authenticate"):
        unwrap(KeyProvider(other), annotation)
    packet = json.loads(annotation)
    data = bytearray(base64.b64decode(packet["wrapped_data"]))
    data[0] ^= 0x80
    packet["wrapped_data"] = b64(bytes(data))
    with pytest.raises(DecryptionError):
        unwrap(KeyProvider(keystore), json.dumps(packet).encode())


def test_unknown_kid(keystore: FileKeyStore) -> None:
    with pytest.raises(KeyNotFound, match="kbs:///default/key/2: no such key"):
        wrap(KeyProvider(keystore), "kbs:///default/key/2")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "input: is not valid JSON"),
        (b"[]", "input: must be a JSON object"),
        (b'{"op":"rewrap"}', "input: op: must be 'keywrap' or 'keyunwrap'"),
        (b'{"op":"keywrap"}', "input: keywrapparams: must be an object"),
        (
            b'{"op":"keywrap","keywrapparams":{"ec":null,"optsdata":"%%%"}}',
            "keywrapparams.optsdata: is not valid base64",
        ),
        (
            b'{"op":"keywrap","keywrapparams":{"ec":{"Parameters":{"inclavare":"x"}},"optsdata":"AA=="}}',
            "Parameters.inclavare: must be an array",
        ),
        (
            b'{"op":"keywrap","keywrapparams":{"ec":{"Parameters":{}},"optsdata":"AA=="}}',
            "exactly one KEK id is needed, 0 given",
        ),
        (
            b'{"op":"keyunwrap","keyunwrapparams":{"dc":null,"annotation":null}}',
            "keyunwrapparams.annotation: must be a non-empty base64",
        ),
        (b'{"op":"keyunwrap","keyunwrapparams":{"annotation":"bm90IGpzb24="}}', "annotation: is not JSON"),
    ],
)
def test_malformed_input_names_the_field(keystore: FileKeyStore, data: bytes, message: str) -> None:
    with pytest.raises(KeyProviderError) as info:
        KeyProvider(keystore).handle(data)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("packet", "field"),
    [
        ({"kid": "https://example/k", "wrapped_data": "AA==", "iv": "AAAAAAAAAAAAAAAA", "wrap_type": "A256GCM"}, "kid"),
        ({"kid": "kbs:///a/../b", "wrapped_data": "AA==", "iv": "AAAAAAAAAAAAAAAA", "wrap_type": "A256GCM"}, "kid"),
        ({"kid": KID, "wrapped_data": "AA==", "iv": "AAAA", "wrap_type": "A256GCM"}, "iv"),
        ({"kid": KID, "wrapped_data": "AA==", "iv": "AAAAAAAAAAAAAAAA", "wrap_type": "A256KW"}, "wrap_type"),
        ({"kid": KID, "wrapped_data": "AA==", "iv": "AAAAAAAAAAAAAAAA", "provider": "aliyun"}, "provider"),
    ],
)
def test_bad_packets(keystore: FileKeyStore, packet: dict, field: str) -> None:
    with pytest.raises(KeyProviderError, match=field):
        unwrap(KeyProvider(keystore), json.dumps(packet).encode())


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_jwe_recipient_whose_private_key_is_in_the_store(keystore: FileKeyStore, kind: str) -> None:
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    keystore.put(ResourcePath.parse("kbs:///default/jwe/1"), pem)
    annotation = jwe_wrap(OPTS, pub)
    assert (
        json.loads(
            json.loads(annotation)["protected"] and base64.urlsafe_b64decode(json.loads(annotation)["protected"] + "==")
        )["enc"]
        == "A256GCM"
    )
    provider = KeyProvider(keystore)
    assert unwrap(provider, annotation, {"inclavare": [b"kbs:///default/jwe/1"]}) == OPTS
    with pytest.raises(KeyProviderError, match="needs the kbs:// path of its private key"):
        unwrap(provider, annotation)
    with pytest.raises(KeyProviderError, match="no key opens this JWE"):
        unwrap(provider, annotation, {"inclavare": [KID.encode()]})


def test_jwe_wrap_refuses_private_keys() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyProviderError, match="private key"):
        jwe_wrap(OPTS, pem)


def test_errors_never_carry_key_material(keystore: FileKeyStore, tmp_path) -> None:
    kek = keystore.get(ResourcePath.parse(KID))
    short = tmp_path / "short"
    short.write_bytes(b"k" * 16)
    for params in (f"keyid={KID}::keypath={short}", "kbs:///default/key/missing"):
        with pytest.raises(ImageError) as info:
            wrap(KeyProvider(keystore), params)
        text = str(info.value)
        assert b64(kek) not in text
        assert "kkkk" not in text
        assert b64(OPTS) not in text


def test_command_line_provider(keystore: FileKeyStore) -> None:
    cmd = [sys.executable, "-m", "inclavare.cli.keyprovider", "--keys", keystore.root]
    done = subprocess.run(cmd, input=go_wrap_input([KID.encode()], OPTS), capture_output=True, check=True)
    annotation = parse_wrap_output(done.stdout, "cmd")
    done = subprocess.run(cmd, input=encode_unwrap_input({}, annotation), capture_output=True, check=True)
    assert parse_unwrap_output(done.stdout, "cmd") == OPTS
    bad = subprocess.run(cmd, input=b'{"op":"nope"}', capture_output=True, check=False)
    assert bad.returncode == 1
    assert bad.stdout == b""
    assert bad.stderr.decode().count("\n") == 1
    assert "op: must be" in bad.stderr.decode()


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "op",
                        "keywrapparams",
                        "keyunwrapparams",
                        "ec",
                        "dc",
                        "optsdata",
                        "annotation",
                        "Parameters",
                        "inclavare",
                    ]
                ),
                c,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_parser_fuzz_only_raises_provider_errors(doc: object) -> None:
    try:
        parse_input(json.dumps(doc).encode())
    except KeyProviderError:
        pass
