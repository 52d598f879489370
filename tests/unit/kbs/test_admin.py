"""Admin authentication (Ed25519 JWTs) and path-scoped authorization."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from inclavare.kbs.admin import Admin, AdminAuthenticator, AdminKey, admin_token, covers, valid_scope
from inclavare.kbs.errors import AdminAuthFailed, AdminForbidden, ConfigError
from inclavare.kbs.token import sign_jwt

NOW = 1_800_000_000.0
OPS = ed25519.Ed25519PrivateKey.generate()
TENANT = ed25519.Ed25519PrivateKey.generate()
AUTH = AdminAuthenticator(
    [AdminKey("ops", OPS.public_key(), ("*",)), AdminKey("tenant-a", TENANT.public_key(), ("tenant-a/*",))],
    max_lifetime=600,
)


@pytest.mark.parametrize(
    ("scope", "target", "ok"),
    [
        ("*", "anything/at/all", True),
        ("*", "*", True),
        ("tenant-a/*", "tenant-a/key/1", True),
        ("tenant-a/*", "tenant-a/key/*", True),
        ("tenant-a/*", "tenant-a/*", True),  # the subtree's owner sets the subtree's policy
        ("tenant-a/*", "tenant-ab/key/1", False),
        ("tenant-a/*", "*", False),
        ("tenant-a/key/*", "tenant-a/key/1", True),
        ("tenant-a/key/1", "tenant-a/key/1", True),
        ("tenant-a/key/1", "tenant-a/key/2", False),
    ],
)
def test_covers(scope, target, ok):
    assert covers(scope, target) is ok


@pytest.mark.parametrize(
    ("scope", "ok"),
    [
        ("*", True),
        ("a/*", True),
        ("a/b/*", True),
        ("a/b/c", True),
        ("a/b/c/*", False),
        ("a/../b", False),
        ("./*", False),
        ("a", False),
        ("a/b", False),
        ("a b", False),
        ("", False),
        ("*/x", False),
        ("a/b/c\n", False),  # `$` would match before a final newline
    ],
)
def test_valid_scope(scope, ok):
    assert valid_scope(scope) is ok


def test_authenticate_and_scopes():
    ops = AUTH.authenticate("Bearer " + admin_token(OPS, NOW), NOW)
    assert ops == Admin("ops", ("*",))
    tenant = AUTH.authenticate("bearer " + admin_token(TENANT, NOW), NOW)
    assert tenant.name == "tenant-a"
    tenant.require("tenant-a/key/1")
    with pytest.raises(AdminForbidden, match="'tenant-a' may not change 'default/key/1'"):
        tenant.require("default/key/1")
    with pytest.raises(AdminForbidden):
        tenant.require("*")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Authorization"),
        ("Basic b3BzOnB3", "missing Authorization"),
        ("Bearer ", "missing Authorization"),
        ("Bearer " + admin_token(ed25519.Ed25519PrivateKey.generate(), NOW), "signature does not verify"),
        ("Bearer " + admin_token(OPS, NOW - 3600), "expired"),
        ("Bearer " + admin_token(OPS, NOW, lifetime=3600), "lives longer than 600 s"),
        ("Bearer " + sign_jwt({"exp": int(NOW) + 60}, OPS), "no iat"),
        ("Bearer " + sign_jwt({"iat": int(NOW)}, OPS), "no exp"),
        # NaN compares false with everything: as an exp it would never expire.
        ("Bearer " + sign_jwt({"iat": int(NOW), "exp": float("nan")}, OPS), "NaN is not JSON"),
    ],
)
def test_refused_admin_tokens(header, message):
    with pytest.raises(AdminAuthFailed, match=message):
        AUTH.authenticate(header, NOW)


def test_no_admin_keys_means_no_admin_api():
    with pytest.raises(AdminAuthFailed, match="disabled"):
        AdminAuthenticator([], 60).authenticate("Bearer " + admin_token(OPS, NOW), NOW)


def test_admin_key_files(tmp_path):
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    good = tmp_path / "ops.pub"
    good.write_bytes(OPS.public_key().public_bytes(serialization.Encoding.PEM, spki))
    assert AdminKey.load("ops", str(good), ["a/*"], "admin.keys[0]").scopes == ("a/*",)
    p256 = tmp_path / "p256.pub"
    p256.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(serialization.Encoding.PEM, spki)
    )
    with pytest.raises(ConfigError, match=r"admin.keys\[0\].public_key: .*Ed25519"):
        AdminKey.load("x", str(p256), ["*"], "admin.keys[0]")
    with pytest.raises(ConfigError, match=r"admin.keys\[0\].scopes\[1\]"):
        AdminKey.load("x", str(good), ["*", "bad scope"], "admin.keys[0]")
