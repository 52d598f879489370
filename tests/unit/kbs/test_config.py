"""TOML config -> typed dataclasses, with located errors."""

from __future__ import annotations

import os

import pytest

from inclavare.kbs.config import Bucket, load_config, parse_config
from inclavare.kbs.errors import ConfigError
from inclavare.testing.kbs import World


@pytest.fixture
def world(tmp_path) -> World:
    return World.create(str(tmp_path / "world"))


def test_defaults():
    c = parse_config({})
    assert (c.http.host, c.http.port, c.http.tls_cert, c.http.max_body) == ("127.0.0.1", 8080, None, 1 << 20)
    assert (c.attestation.session_timeout, c.attestation.hash_algorithm, c.attestation.policy) == (
        300.0,
        "sha384",
        "default",
    )
    assert (c.storage.type, c.storage.path) == ("sqlite", "/var/lib/inclavare/kbs.db")
    assert c.rate_limit.per_address == Bucket(50.0, 100)
    assert c.admin_keys == ()


def test_the_world_config_loads(world):
    c = load_config(world.config("a"))
    assert [k.name for k in c.admin_keys] == ["ops", "tenant-a"]
    assert c.admin_keys[1].scopes == ("tenant-a/*",)
    assert c.audit.replica == "a"
    assert c.attestation.collateral == (f"{world.root}/host-key.pub.pem",)


def test_relative_paths_are_relative_to_the_file(tmp_path):
    path = tmp_path / "kbs.toml"
    path.write_text(
        '[storage]\npath = "db/kbs.db"\n[http]\nlisten = "[::1]:0"\ntls_cert = "c.pem"\ntls_key = "k.pem"\n'
    )
    c = load_config(str(path))
    assert c.storage.path == str(tmp_path / "db/kbs.db")
    assert (c.http.host, c.http.port, c.http.tls_key) == ("::1", 0, str(tmp_path / "k.pem"))


def test_postgres_dsn_from_the_environment(monkeypatch):
    monkeypatch.setenv("KBS_TEST_DSN", "host=/tmp dbname=kbs password=secret")
    c = parse_config({"storage": {"type": "postgres", "dsn_env": "KBS_TEST_DSN"}, "token": {"signing_key": "/k.pem"}})
    assert c.storage.dsn == "host=/tmp dbname=kbs password=secret"
    assert "secret" not in repr(c)
    assert c.rate_limit.shared  # replicas share their rate limits unless told otherwise
    assert not parse_config({}).rate_limit.shared  # SQLite: one broker


@pytest.mark.parametrize(
    ("doc", "location"),
    [
        ({"htp": {}}, "kbs.toml: htp: unknown key"),
        ({"http": {"listen": "8080"}}, "http.listen: must be host:port"),
        ({"http": {"listen": "a:99999"}}, "http.listen"),
        ({"http": {"tls_cert": "c.pem"}}, "http.tls_key: set both"),
        ({"http": {"max_body": 10}}, "http.max_body: must be an integer >= 1024"),
        ({"attestation": {"hash_algorithm": "md5"}}, "attestation.hash_algorithm: 'md5'"),
        ({"attestation": {"session_timeout": 0}}, "attestation.session_timeout"),
        ({"attestation": {"collateral": "x"}}, "attestation.collateral: must be a list"),
        ({"storage": {"type": "mysql"}}, "storage.type"),
        ({"storage": {"type": "postgres", "dsn": "x"}}, "token.signing_key: required with PostgreSQL"),
        (
            {"storage": {"type": "postgres", "dsn_env": "KBS_NOT_SET_ANYWHERE"}},
            "storage.dsn_env: the environment variable",
        ),
        ({"storage": {"type": "postgres"}}, "storage.dsn: postgres storage needs"),
        ({"admin": {"keys": {"name": "x"}}}, "admin.keys: must be an array of tables"),
        ({"admin": {"keys": [{"name": "x"}]}}, r"admin.keys\[0\].public_key: missing"),
        ({"admin": {"keys": [{"public_key": "/nonexistent.pem"}]}}, r"admin.keys\[0\].public_key: /nonexistent.pem"),
        ({"rate_limit": {"per_address": {"rate": 0}}}, "rate_limit.per_address.rate"),
        ({"rate_limit": {"enabled": "yes"}}, "rate_limit.enabled: must be true or false"),
        ({"rate_limit": {"shared": True}}, "rate_limit.shared: needs PostgreSQL storage"),
        ({"audit": {"replica": ""}}, "audit.replica: must be a non-empty string"),
    ],
)
def test_located_errors(doc, location):
    with pytest.raises(ConfigError, match=location):
        parse_config(doc)


def test_bad_admin_scope_is_located_in_the_file(world, tmp_path):
    path = tmp_path / "x.toml"
    path.write_text(f'[[admin.keys]]\npublic_key = "{world.root}/admin.pub.pem"\nscopes = ["*", "no such"]\n')
    with pytest.raises(ConfigError, match=r"^x.toml: admin.keys\[0\].scopes\[1\]"):
        load_config(str(path))


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        load_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[http\n")
    with pytest.raises(ConfigError, match=r"^bad\.toml: not valid TOML"):
        load_config(str(bad))
    assert os.path.exists(bad)
    bad.write_bytes(b"\xff\xfe[http]\n")  # tomllib.load raises UnicodeDecodeError for this, not TOMLDecodeError
    with pytest.raises(ConfigError, match=r"^bad\.toml: not valid TOML \('utf-8' codec"):
        load_config(str(bad))


# sect163k1: a curve this OpenSSL cannot use, so cryptography raises UnsupportedAlgorithm, not ValueError.
SECT163K1_PRIVATE = b"""-----BEGIN EC PRIVATE KEY-----
MFMCAQEEFQK9BXelh9qJm7VbYrJQ6mWC4DvHvaAHBgUrgQQAAaEuAywABAV6/ah/
miUrCXiPvIk7/U2kX1HB7ANRTS61Hz+dCzfYnqDIE5GttuPfkw==
-----END EC PRIVATE KEY-----
"""
SECT163K1_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MEAwEAYHKoZIzj0CAQYFK4EEAAEDLAAEBXr9qH+aJSsJeI+8iTv9TaRfUcHsA1FN
LrUfP50LN9ieoMgTka2249+T
-----END PUBLIC KEY-----
"""


def test_keys_on_unsupported_curves_are_config_errors(tmp_path):
    from inclavare.kbs.admin import AdminKey
    from inclavare.kbs.admin_client import load_admin_key
    from inclavare.kbs.token import TokenKey

    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    private.write_bytes(SECT163K1_PRIVATE)
    public.write_bytes(SECT163K1_PUBLIC)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        TokenKey.load(str(private))
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_admin_key(str(private))
    with pytest.raises(ConfigError, match="not a PEM public key"):
        AdminKey.load("ops", str(public), ["*"], "admin.keys[0]")
