"""JWE to the TEE key: trustee's shape, decrypted by an independent implementation (jwcrypto)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from inclavare.kbs.errors import InvalidRequest, JweError
from inclavare.kbs.jwe import TeeKey, b64url, b64url_decode, encrypt, public_key_from_jwk

PLAIN = b"\x00secret\xff" * 9


@pytest.fixture(scope="module")
def rsa_key() -> TeeKey:
    return TeeKey.generate("RSA")


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ec_round_trip(curve):
    key = TeeKey(ec.generate_private_key(curve))
    response = encrypt(key.public_jwk(), PLAIN)
    assert set(response) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}  # RFC 7516 §7.2.2, no aad
    header = json.loads(b64url_decode(response["protected"]))
    # trustee puts the ephemeral key into the protected header
    assert (header["alg"], header["enc"], header["epk"]["kty"], header["epk"]["crv"]) == (
        "ECDH-ES+A256KW", "A256GCM", "EC", key.public_jwk()["crv"],
    )  # fmt: skip
    assert len(b64url_decode(response["encrypted_key"])) == 40  # AES key wrap of a 256-bit CEK
    assert key.decrypt(response) == PLAIN


def test_rsa_round_trip(rsa_key):
    response = encrypt(rsa_key.public_jwk(), PLAIN)
    assert json.loads(b64url_decode(response["protected"])) == {"alg": "RSA-OAEP-256", "enc": "A256GCM"}
    assert rsa_key.decrypt(response) == PLAIN
    assert rsa_key.decrypt(encrypt(rsa_key.public_jwk(), b"x")) == b"x"


@pytest.mark.parametrize("field", ["protected", "encrypted_key", "iv", "ciphertext", "tag"])
def test_tampering_any_member_fails(field):
    key = TeeKey.generate()
    response = encrypt(key.public_jwk(), PLAIN)
    raw = bytearray(b64url_decode(response[field]))
    raw[len(raw) // 2] ^= 0x01
    with pytest.raises(JweError):
        key.decrypt({**response, field: b64url(bytes(raw))})


def test_another_key_cannot_decrypt():
    response = encrypt(TeeKey.generate().public_jwk(), PLAIN)
    with pytest.raises(JweError, match="does not decrypt"):
        TeeKey.generate().decrypt(response)


def test_nothing_secret_in_repr(rsa_key):
    assert repr(rsa_key) == "TeeKey(RSA)"
    assert repr(TeeKey.generate()) == "TeeKey(EC)"


def _ec(**change: object) -> dict[str, object]:
    return {**TeeKey.generate().public_jwk(), **change}


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({"kty": "OKP", "crv": "X25519"}, r"tee-pubkey.kty"),
        (_ec(alg="ECDH-ES"), r"tee-pubkey.alg: EC keys must say"),
        (_ec(crv="secp256k1"), r"tee-pubkey.crv"),
        (_ec(x=b64url(bytes(31))), r"tee-pubkey.x: must be 32 bytes"),
        (_ec(y="AAAA="), r"tee-pubkey.y: must be unpadded base64url"),
        (_ec(x=b64url(bytes(32)), y=b64url(bytes(32))), r"not on P-256"),
    ],
)
def test_unusable_ec_keys(jwk, message):
    with pytest.raises(InvalidRequest, match=message):
        public_key_from_jwk(jwk)


def test_unusable_rsa_keys(rsa_key):
    good = rsa_key.public_jwk()
    with pytest.raises(InvalidRequest, match="RSA1_5 is refused"):
        public_key_from_jwk({**good, "alg": "RSA1_5"})
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(InvalidRequest, match="2048-8192 bits"):
        public_key_from_jwk(TeeKey(small).public_jwk())
    # A huge modulus or exponent would make every encryption to it expensive for the KBS.
    huge_n = b64url(((1 << 65535) | 1).to_bytes(8192))
    with pytest.raises(InvalidRequest, match="2048-8192 bits"):
        public_key_from_jwk({**good, "n": huge_n})
    with pytest.raises(InvalidRequest, match="odd exponent below 2"):
        public_key_from_jwk({**good, "e": b64url(((1 << 3071) | 1).to_bytes(384))})
    with pytest.raises(InvalidRequest, match=r"tee-pubkey.n: empty"):
        public_key_from_jwk({**good, "n": ""})
