"""ocicrypt's layer cipher: known answers, round trips, the MAC, and the options' JSON."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from inclavare.image.errors import DecryptionError, KeyProviderError
from inclavare.image.layercrypt import (
    CIPHER,
    LayerDecryptor,
    LayerEncryptor,
    PrivateOptions,
    PublicOptions,
    new_private_options,
)


def test_ctr_matches_nist_sp800_38a_f55() -> None:
    # NIST SP 800-38A F.5.5 CTR-AES256.Encrypt: a 16-byte initial counter block, as ocicrypt's nonce.
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    nonce = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    plain = bytes.fromhex(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
    )
    expect = bytes.fromhex(
        "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
        "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"
    )
    enc = LayerEncryptor(PrivateOptions(key, nonce, ""))
    assert enc.update(plain[:7]) + enc.update(plain[7:]) == expect


def test_counter_carries_across_all_128_bits() -> None:
    # Go's cipher.NewCTR increments the whole block; a 64-bit counter would wrap differently.
    key, nonce = bytes(range(32)), bytes(8) + b"\xff" * 8
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    second_block = ecb.update((1).to_bytes(8, "big") + bytes(8))
    enc = LayerEncryptor(PrivateOptions(key, nonce, ""))
    assert enc.update(bytes(32))[16:] == second_block


def test_round_trip_and_mac_over_ciphertext() -> None:
    opts = new_private_options("sha256:" + "0" * 64)
    data = os.urandom(100_000)
    enc = LayerEncryptor(opts)
    ct = b"".join(enc.update(data[i : i + 4096]) for i in range(0, len(data), 4096))
    public = enc.finalize()
    import hashlib
    import hmac

    assert public.hmac == hmac.new(opts.symkey, ct, hashlib.sha256).digest()
    dec = LayerDecryptor(opts, public, "layer")
    assert dec.update(ct) == data
    dec.verify()


def test_tampered_ciphertext_is_refused() -> None:
    opts = new_private_options("")
    enc = LayerEncryptor(opts)
    ct = bytearray(enc.update(b"x" * 1000))
    public = enc.finalize()
    ct[500] ^= 1
    dec = LayerDecryptor(opts, public, "layer0")
    dec.update(bytes(ct))
    with pytest.raises(DecryptionError, match=r"layer0: hmac: .*does not authenticate"):
        dec.verify()


def test_wrong_key_is_refused() -> None:
    opts = new_private_options("")
    enc = LayerEncryptor(opts)
    ct = enc.update(b"secret layer")
    public = enc.finalize()
    other = PrivateOptions(os.urandom(32), opts.nonce, "")
    dec = LayerDecryptor(other, public, "l")
    assert dec.update(ct) != b"secret layer"
    with pytest.raises(DecryptionError):
        dec.verify()


def test_private_options_json_is_ocicrypts() -> None:
    opts = new_private_options("sha256:" + "a" * 64)
    doc = json.loads(opts.to_json())
    assert set(doc) == {"symkey", "digest", "cipheroptions"}
    assert base64.b64decode(doc["symkey"]) == opts.symkey
    assert base64.b64decode(doc["cipheroptions"]["nonce"]) == opts.nonce
    assert PrivateOptions.parse(opts.to_json()) == opts
    assert opts.symkey.hex() not in repr(opts)


def test_public_options_read_both_mac_locations() -> None:
    mac = os.urandom(32)
    current = PublicOptions(CIPHER, mac).annotation()
    assert PublicOptions.from_annotation(current, "l").hmac == mac
    legacy = base64.b64encode(
        json.dumps({"cipher": CIPHER, "cipheroptions": {"hmac": base64.b64encode(mac).decode()}}).encode()
    )
    assert PublicOptions.from_annotation(legacy.decode(), "l").hmac == mac


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"cipher": "AES_128_GCM", "hmac": "AA=="}, "unsupported cipher"),
        ({"cipher": CIPHER}, "hmac"),
        ({"cipher": CIPHER, "hmac": "!!"}, "not valid base64"),
    ],
)
def test_bad_public_options(doc: dict, message: str) -> None:
    with pytest.raises(DecryptionError, match=message):
        PublicOptions.from_annotation(base64.b64encode(json.dumps(doc).encode()).decode(), "l")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (
            {"symkey": base64.b64encode(b"short").decode(), "cipheroptions": {"nonce": "AAAAAAAAAAAAAAAAAAAAAA=="}},
            "symkey",
        ),
        ({"symkey": base64.b64encode(bytes(32)).decode(), "cipheroptions": {"nonce": "AAAA"}}, "cipheroptions.nonce"),
        ({"symkey": base64.b64encode(bytes(32)).decode(), "cipheroptions": []}, "cipheroptions"),
        ({"cipheroptions": {}}, "symkey"),
    ],
)
def test_bad_private_options_name_the_field(doc: dict, field: str) -> None:
    with pytest.raises(KeyProviderError, match=f"optsdata: {field}:"):
        PrivateOptions.parse(json.dumps(doc).encode())


@given(st.binary(max_size=300))
def test_private_options_parser_fuzz(data: bytes) -> None:
    try:
        PrivateOptions.parse(data)
    except KeyProviderError:
        pass
