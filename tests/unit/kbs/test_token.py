"""Attestation tokens: ES256/EdDSA JWTs verified at injected instants, algorithm pinned by the key."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from inclavare.kbs.errors import ConfigError, TokenInvalid
from inclavare.kbs.token import TokenBroker, TokenKey, sign_jwt, verify_jwt

NOW = 1_800_000_000.0


def claims(**extra: object) -> dict[str, object]:
    return {"iss": "kbs", "iat": int(NOW), "exp": int(NOW) + 300, "jti": "abc", **extra}


@pytest.mark.parametrize("key", [TokenKey.generate(), TokenKey(ed25519.Ed25519PrivateKey.generate())])
def test_issue_and_verify(key):
    broker = TokenBroker(key, "kbs", 300)
    token = broker.issue(claims())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] in ("ES256", "EdDSA")
    assert header["typ"] == "JWT"
    assert broker.verify(token, NOW + 1) == claims()


def test_expiry_and_issuer():
    broker = TokenBroker(TokenKey.generate(), "kbs", 300)
    with pytest.raises(TokenInvalid, match="expired"):
        broker.verify(broker.issue(claims()), NOW + 300)
    with pytest.raises(TokenInvalid, match="issued by someone else"):
        broker.verify(broker.issue(claims(iss="other")), NOW)
    with pytest.raises(TokenInvalid, match="no exp"):
        broker.verify(broker.issue({"iss": "kbs", "jti": "x"}), NOW)
    with pytest.raises(TokenInvalid, match="in the future"):
        broker.verify(broker.issue(claims(iat=int(NOW) + 3600, exp=int(NOW) + 7200)), NOW)
    with pytest.raises(TokenInvalid, match="no jti"):
        broker.verify(broker.issue({k: v for k, v in claims().items() if k != "jti"}), NOW)


def test_other_keys_and_forgeries_are_refused():
    broker = TokenBroker(TokenKey.generate(), "kbs", 300)
    stranger = TokenBroker(TokenKey.generate(), "kbs", 300)
    with pytest.raises(TokenInvalid, match="signature"):
        broker.verify(stranger.issue(claims()), NOW)
    head, body, sig = broker.issue(claims()).split(".")
    forged_body = base64.urlsafe_b64encode(json.dumps(claims(exp=int(NOW) + 10**6)).encode()).decode().rstrip("=")
    with pytest.raises(TokenInvalid):
        broker.verify(f"{head}.{forged_body}.{sig}", NOW)
    # alg confusion: "none" and HMAC headers over the same claims never verify
    for alg in ("none", "HS256"):
        h = base64.urlsafe_b64encode(json.dumps({"alg": alg, "typ": "JWT"}).encode()).decode().rstrip("=")
        with pytest.raises(TokenInvalid):
            broker.verify(f"{h}.{body}.", NOW)
    for garbage in ("", "a.b", "a.b.c.d", "x" * 70000):
        with pytest.raises(TokenInvalid):
            broker.verify(garbage, NOW)


def test_verify_jwt_reports_the_key():
    a, b = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    _, key = verify_jwt(sign_jwt({"x": 1}, b), [a.public_key(), b.public_key()])
    assert key == b.public_key()


def test_token_key_files(tmp_path):
    path = tmp_path / "token.pem"
    key = TokenKey.generate()
    path.write_bytes(key.pem())
    assert TokenKey.load(str(path)).key.private_numbers() == key.key.private_numbers()
    assert "PRIVATE" not in repr(key)
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(TokenKey(ec.generate_private_key(ec.SECP384R1())).pem())
    for bad, message in ((tmp_path / "missing.pem", "No such file"), (p384, "P-256")):
        with pytest.raises(ConfigError, match=message):
            TokenKey.load(str(bad))


@pytest.mark.parametrize("private", [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()])
def test_interoperates_with_jwcrypto(private):
    from jwcrypto import jwk, jws

    from inclavare.kbs.token import key_id

    public = jwk.JWK.from_pyca(private.public_key())
    assert key_id(private) == public.thumbprint()  # RFC 7638
    ours = sign_jwt({"x": 1}, private)
    theirs = jws.JWS()
    theirs.deserialize(ours)
    theirs.verify(public)  # an independent implementation accepts our signature
    alg = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "EdDSA"
    made = jws.JWS(b'{"y":2}')
    made.add_signature(jwk.JWK.from_pyca(private), alg=alg, protected=json.dumps({"alg": alg}))
    assert verify_jwt(made.serialize(compact=True), [private.public_key()])[0] == {"y": 2}
