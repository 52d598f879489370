"""Resources encrypted to the TEE's public key: JWE (RFC 7516) as trustee produces it.

The KBS never relies on TLS alone (kbs_attestation_protocol.md, "Response"):
each resource goes out as a JWE in the flattened JSON serialization
(RFC 7516 §7.2.2) ``{"protected", "encrypted_key", "iv", "ciphertext", "tag"}``,
its content key wrapped to the ``tee-pubkey`` the evidence bound. As in
trustee ``kbs/src/jwe/mod.rs``:

- RSA keys (``"alg": "RSA-OAEP-256"``): RSAES-OAEP with SHA-256 and MGF1-SHA-256
  wraps a random 256-bit CEK (RFC 7518 §4.3); RSA1_5 is refused.
- EC keys (``"alg": "ECDH-ES+A256KW"``, P-256/P-384/P-521): ephemeral-static
  ECDH, Concat KDF (SHA-256, AlgorithmID = the alg name, empty PartyU/VInfo,
  256-bit output; RFC 7518 §4.6.2) and AES key wrap (RFC 3394) of the CEK;
  the ephemeral key ``epk`` goes into the *protected* header.
- Content: AES-256-GCM (``"enc": "A256GCM"``) with AAD = ASCII(BASE64URL(protected)).

Encryption is written here against ``cryptography`` so that the output is
byte-for-byte trustee's shape; decryption (the client's side,
:class:`TeeKey`) uses jwcrypto, an independent implementation, so every
round trip cross-checks the two.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Callable, Mapping
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from .errors import InvalidRequest, JweError

RSA_OAEP_256 = "RSA-OAEP-256"
ECDH_ES_A256KW = "ECDH-ES+A256KW"
A256GCM = "A256GCM"
CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192  # every encryption to the key costs the KBS; 8192 bits is already beyond any TEE key
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: object) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise ValueError("not unpadded base64url")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def public_key_from_jwk(jwk: Mapping[str, object], where: str = "tee-pubkey") -> PublicKey:
    """Validate a TEE public key JWK and load it; InvalidRequest names the bad member."""
    kty, alg = jwk.get("kty"), jwk.get("alg")
    if kty == "RSA":
        if alg != RSA_OAEP_256:
            raise InvalidRequest(f"{where}.alg: RSA keys must say {RSA_OAEP_256!r} (RSA1_5 is refused)")
        n, e = _int_member(jwk, "n", where), _int_member(jwk, "e", where)
        if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS or not 3 <= e < 1 << 32 or e % 2 == 0 or n % 2 == 0:
            # An even modulus loads, but OpenSSL cannot encrypt to it: the release would fail after attesting.
            raise InvalidRequest(
                f"{where}: RSA key must have {MIN_RSA_BITS}-{MAX_RSA_BITS} bits (an odd modulus)"
                " and an odd exponent below 2^32"
            )
        try:
            return _rsa_key(e, n)
        except ValueError:
            raise InvalidRequest(f"{where}: not a usable RSA public key") from None
    if kty == "EC":
        if alg != ECDH_ES_A256KW:
            raise InvalidRequest(f"{where}.alg: EC keys must say {ECDH_ES_A256KW!r}")
        curve = CURVES.get(str(jwk.get("crv")))
        if curve is None:
            raise InvalidRequest(f"{where}.crv: must be one of {', '.join(CURVES)}")
        size = (curve.key_size + 7) // 8
        x, y = _coordinate(jwk, "x", size, where), _coordinate(jwk, "y", size, where)
        try:
            return _ec_key(str(jwk.get("crv")), x, y)
        except ValueError:
            raise InvalidRequest(f"{where}: the point is not on {jwk.get('crv')}") from None
    raise InvalidRequest(f"{where}.kty: must be 'RSA' or 'EC'")


def encrypt(jwk: Mapping[str, object], plaintext: bytes, rng: Callable[[int], bytes] = os.urandom) -> dict[str, str]:
    """The flattened JWE of ``plaintext`` for the TEE key ``jwk``."""
    key = public_key_from_jwk(jwk)
    cek = rng(32)
    if isinstance(key, rsa.RSAPublicKey):
        header: dict[str, object] = {"alg": RSA_OAEP_256, "enc": A256GCM}
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        encrypted_key = key.encrypt(cek, oaep)
    else:
        ephemeral = ec.generate_private_key(key.curve)
        kek = _concat_kdf(ephemeral.exchange(ec.ECDH(), key))
        numbers = ephemeral.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        epk = {
            "crv": str(jwk["crv"]),
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(size)),
            "y": b64url(numbers.y.to_bytes(size)),
        }
        header = {"alg": ECDH_ES_A256KW, "enc": A256GCM, "epk": epk}
        encrypted_key = aes_key_wrap(kek, cek)
    protected = b64url(json.dumps(header, separators=(",", ":")).encode())
    iv = rng(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    return {
        "protected": protected,
        "encrypted_key": b64url(encrypted_key),
        "iv": b64url(iv),
        "ciphertext": b64url(sealed[:-16]),
        "tag": b64url(sealed[-16:]),
    }


class TeeKey:
    """The TEE's ephemeral key pair: its public JWK goes into the Attestation, the private half decrypts."""

    __slots__ = ("_jwk", "_key")

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._jwk: object = None  # jwcrypto's copy, built once (its RSA import re-validates the key: slow)

    def __repr__(self) -> str:  # never show key material
        return f"TeeKey({self.public_jwk()['kty']})"

    @classmethod
    def generate(cls, kty: Literal["EC", "RSA"] = "EC") -> TeeKey:
        if kty == "RSA":
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=3072))
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def public_jwk(self) -> dict[str, str]:
        if isinstance(self._key, rsa.RSAPrivateKey):
            pub = self._key.public_key().public_numbers()
            return {"kty": "RSA", "alg": RSA_OAEP_256, "n": b64url(_be(pub.n)), "e": b64url(_be(pub.e))}
        numbers = self._key.public_key().public_numbers()
        size = (self._key.curve.key_size + 7) // 8
        crv = next(name for name, c in CURVES.items() if c.name == self._key.curve.name)
        return {
            "kty": "EC",
            "crv": crv,
            "alg": ECDH_ES_A256KW,
            "x": b64url(numbers.x.to_bytes(size)),
            "y": b64url(numbers.y.to_bytes(size)),
        }

    def decrypt(self, response: Mapping[str, object]) -> bytes:
        """The plaintext of a KBS Response (flattened JWE); JweError if anything does not verify."""
        from jwcrypto import jwe, jwk  # the independent implementation; imported only on the client side

        alg = self.public_jwk()["alg"]
        if self._jwk is None:
            self._jwk = jwk.JWK.from_pyca(self._key)
        try:
            token = jwe.JWE(algs=[alg, A256GCM])
            token.deserialize(json.dumps(dict(response)), key=self._jwk)
        except Exception as exc:  # jwcrypto raises several unrelated types; all mean "not for us"
            raise JweError(f"response: JWE does not decrypt under the TEE key ({type(exc).__name__})") from None
        header = json.loads(b64url_decode(str(response.get("protected", ""))))
        if header.get("alg") != alg or header.get("enc") != A256GCM:
            raise JweError("response: unexpected JWE algorithms")
        return bytes(token.payload)


# A session's key is loaded when it attests and again for every resource it fetches; loading checks
# that the point is on the curve (or the modulus is usable), which cost more than the rest of the
# member checks together. The loaded keys are immutable; a failure is not cached and raises each time.
@functools.lru_cache(maxsize=1024)
def _ec_key(crv: str, x: int, y: int) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicNumbers(x, y, CURVES[crv]).public_key()


@functools.lru_cache(maxsize=256)
def _rsa_key(e: int, n: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(e, n).public_key()


def _concat_kdf(shared: bytes) -> bytes:
    # RFC 7518 §4.6.2: otherinfo = AlgorithmID || PartyUInfo || PartyVInfo || SuppPubInfo (lengths 32-bit BE).
    alg = ECDH_ES_A256KW.encode()
    other = len(alg).to_bytes(4) + alg + bytes(4) + bytes(4) + (256).to_bytes(4)
    return ConcatKDFHash(algorithm=hashes.SHA256(), length=32, otherinfo=other).derive(shared)


def _be(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1)


def _int_member(jwk: Mapping[str, object], name: str, where: str) -> int:
    try:
        raw = b64url_decode(jwk.get(name))
    except (ValueError, TypeError):
        raise InvalidRequest(f"{where}.{name}: must be unpadded base64url") from None
    if not raw:
        raise InvalidRequest(f"{where}.{name}: empty")
    return int.from_bytes(raw)


def _coordinate(jwk: Mapping[str, object], name: str, size: int, where: str) -> int:
    try:
        raw = b64url_decode(jwk.get(name))
    except (ValueError, TypeError):
        raise InvalidRequest(f"{where}.{name}: must be unpadded base64url") from None
    if len(raw) != size:
        raise InvalidRequest(f"{where}.{name}: must be {size} bytes for {jwk.get('crv')}")
    return int.from_bytes(raw)
