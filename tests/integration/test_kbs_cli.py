"""`inclavare kbs` and `inclavare kbs-client` as a user runs them, against a real KBS process."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from inclavare.kbs.atrest import kek_id
from inclavare.testing.kbs import KbsProcess, World


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "inclavare.cli.tool._main", *args]
    return subprocess.run(cmd, capture_output=True, timeout=60, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World.create(str(tmp_path_factory.mktemp("kbs-cli")))


@pytest.fixture(scope="module")
def kbs(world):
    with KbsProcess(world.config("cli", extra="\n[rate_limit]\nenabled = false\n")) as k:
        yield k


def admin(kbs: KbsProcess, world: World, *args: str) -> object:
    result = run("kbs-client", "--url", kbs.url, "--admin-key", f"{world.root}/admin.pem", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def enclave_args(world: World) -> list[str]:
    return [
        "--manifest",
        world.manifest,
        "--sig",
        world.sig,
        "--rootfs",
        world.rootfs,
        "--host-key",
        f"{world.root}/host-key.pem",
    ]


def test_admin_then_enclave_side(kbs, world, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00binary secret\xff")
    assert admin(kbs, world, "set-resource", "--path", "default/key/app", "--resource-file", str(secret)) == {
        "path": "default/key/app"
    }
    assert admin(kbs, world, "set-resource-policy", "--builtin", "approved-executables", "--scope", "default/*") == {
        "scope": "default/*"
    }
    registered = admin(
        kbs, world, "reference-value", "add-from-enclave", world.manifest, "--sig", world.sig, "--rootfs", world.rootfs
    )
    assert registered == {"software.measurement": [world.identity.measurement.hex()]}
    listed = admin(kbs, world, "reference-value", "list", "software.measurement")
    assert [(v["value"], v["live"]) for v in listed] == [(world.identity.measurement.hex(), True)]  # type: ignore[index]

    out = tmp_path / "got.bin"
    got = run(
        "kbs-client",
        "--url",
        kbs.url,
        "get-resource",
        "--path",
        "default/key/app",
        *enclave_args(world),
        "-o",
        str(out),
    )
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == secret.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    to_stdout = run(
        "kbs-client",
        "--url",
        kbs.url,
        "get-resource",
        "--path",
        "default/key/app",
        *enclave_args(world),
        "--tee-key",
        "rsa",
    )
    assert to_stdout.stdout == secret.read_bytes()
    token = run("kbs-client", "--url", kbs.url, "attest", *enclave_args(world))
    assert json.loads(token.stdout)["token"].count(".") == 2

    assert admin(kbs, world, "reference-value", "expire", "software.measurement") == {"expired": 1}
    refused = run("kbs-client", "--url", kbs.url, "get-resource", "--path", "default/key/app", *enclave_args(world))
    assert refused.returncode == 1
    assert refused.stderr.decode() == "inclavare kbs-client: KBS answered 403 PolicyDeny: access denied by policy\n"
    assert admin(kbs, world, "reference-value", "delete", "software.measurement") == {"deleted": 1}
    audit = admin(kbs, world, "audit", "--limit", "1000")
    assert {"release", "deny", "reference.expire"} <= {r["event"] for r in audit}  # type: ignore[index]


def test_policies_and_resources_from_the_cli(kbs, world, tmp_path):
    policy = tmp_path / "allow.rego"
    policy.write_text("package policy\nimport rego.v1\ndefault allow := false\nallow if input.submods.cpu0\n")
    assert admin(kbs, world, "set-resource-policy", "--policy-file", str(policy), "--scope", "tenant-a/*") == {
        "scope": "tenant-a/*"
    }
    assert "tenant-a/*" in admin(kbs, world, "get-resource-policy")  # type: ignore[operator]
    assert admin(kbs, world, "set-attestation-policy", "--builtin", "allow-software", "--id", "strict") == {
        "policy_id": "strict"
    }
    assert admin(kbs, world, "set-resource", "--path", "tenant-a/key/x", "--value", "v") == {"path": "tenant-a/key/x"}
    assert "tenant-a/key/x" in admin(kbs, world, "list-resources")  # type: ignore[operator]
    assert admin(kbs, world, "delete-resource", "--path", "tenant-a/key/x") == {"deleted": True}
    assert admin(kbs, world, "delete-resource-policy", "--scope", "tenant-a/*") == {"deleted": True}
    added = admin(
        kbs, world, "reference-value", "add", "sgx.measurement", "aa" * 32, "--expires", "2030-01-01T00:00:00Z"
    )
    assert added["expires"] == 1893456000.0  # type: ignore[index]


def test_reference_values_in_0x_hex_from_the_cli(kbs, world):
    """As dcap-qvl prints them: stored as the policy sees the claims, so they match."""
    added = admin(kbs, world, "reference-value", "add", "sgx.mr_signer", "0x" + "AB" * 32)
    assert added["values"] == ["ab" * 32]  # type: ignore[index]
    listed = admin(kbs, world, "reference-value", "list", "sgx.mr_signer")
    assert [rv["value"] for rv in listed] == ["ab" * 32]  # type: ignore[union-attr]
    assert admin(kbs, world, "reference-value", "delete", "sgx.mr_signer", "--value", "0x" + "ab" * 32) == {
        "deleted": 1
    }
    refused = run("kbs-client", "--url", kbs.url, "--admin-key", f"{world.root}/admin.pem", "reference-value", "add",
                  "sgx.mr_signer", "0xzz")  # fmt: skip
    assert refused.returncode == 1
    assert b"is not hex" in refused.stderr
    assert refused.stderr.count(b"\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kbs-client", "list-resources"], "inclavare kbs-client: --url is required"),
        (["kbs-client", "--url", "http://127.0.0.1:9", "list-resources"], "--admin-key is required"),
        (
            ["kbs-client", "--url", "http://127.0.0.1:9", "--admin-key", "/nonexistent.pem", "list-resources"],
            "/nonexistent.pem",
        ),
        (
            ["kbs-client", "--url", "http://127.0.0.1:9", "reference-value", "add", "x"],
            "the following arguments are required",
        ),
        (["kbs", "serve"], "--config is required"),
        (["kbs", "check-config", "/nonexistent.toml"], "/nonexistent.toml"),
    ],
)
def test_errors_are_one_line(args, message):
    env = {"INCLAVARE_KBS_URL": "", "INCLAVARE_KBS_ADMIN_KEY": "", "INCLAVARE_KBS_CONFIG": ""}
    result = run(*args, env=env)
    assert result.returncode in (1, 2)
    err = result.stderr.decode()
    assert err.count("\n") == 1
    assert message in err
    assert "Traceback" not in err


def test_unreachable_kbs_is_one_line(world):
    result = run("kbs-client", "--url", "http://127.0.0.1:9", "get-resource", "--path", "a/b/c", *enclave_args(world))
    assert result.returncode == 1
    assert result.stderr.decode().startswith("inclavare kbs-client: KBS unreachable: ConnectError")


def test_keygen_and_check_config(world, tmp_path):
    out = tmp_path / "admin2.pem"
    result = run("kbs", "keygen", "--admin", str(out))
    assert result.returncode == 0
    assert result.stdout.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = run("kbs", "keygen", "--admin", str(out))
    assert again.returncode == 1
    assert "File exists" in again.stderr.decode()
    checked = run("kbs", "check-config", world.config("checked"))
    kid = kek_id(base64.b64decode(Path(world.kek).read_text()))
    assert checked.stdout.decode().endswith(
        f": ok (sqlite storage (not created yet), 2 admin key(s), KEK {kid} (storage.kek), collateral: 1 host key(s), "
        "0 TCB info, 0 QE identities, 0 CRL(s), 0 certificate(s); http)\n"
    )


def test_keygen_kek(tmp_path):
    out = tmp_path / "kek"
    result = run("kbs", "keygen", "--kek", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = base64.b64decode(out.read_bytes(), validate=False)
    assert len(key) == 32
    assert result.stdout.decode() == f"kek {kek_id(key)}\n"  # the id, never the key
    assert run("kbs", "keygen", "--kek", str(out)).returncode == 1  # never overwrites a key


def with_kek(world: World, name: str, kek: str) -> str:
    """A config of ``world`` whose [storage.kek] table is ``kek`` (empty: none at all)."""
    path = world.config(name, kek=False)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("[[admin.keys]]", f"{kek}\n[[admin.keys]]", 1))
    return path


def test_serve_refuses_a_missing_or_wrong_kek_in_one_line(world, tmp_path):
    missing = run("kbs", "serve", "--config", with_kek(world, "nokek", ""))
    assert missing.returncode == 1
    assert missing.stderr.decode().splitlines() == [
        "inclavare kbs: nokek.toml: storage.kek: missing: resources are stored encrypted under a key-encryption key "
        "(inclavare kbs keygen --kek FILE, then [storage.kek] file = FILE; docs/kbs.md)"
    ]
    unset = run("kbs", "serve", "--config", with_kek(world, "envkek", '[storage.kek]\nenv = "NO_SUCH_KEK_VAR"'))
    assert unset.stderr.decode().splitlines() == [
        "inclavare kbs: envkek.toml: storage.kek.env: the environment variable NO_SUCH_KEK_VAR is not set"
    ]
    # a database sealed under one KEK, and a broker started with another: refused before it listens
    with KbsProcess(world.config("sealed")) as k:
        ready = k.ready_file
    other = tmp_path / "other.kek"
    assert run("kbs", "keygen", "--kek", str(other)).returncode == 0
    wrong = with_kek(world, "sealed", f'[storage.kek]\nfile = "{other}"')
    result = run("kbs", "serve", "--config", wrong, "--ready-file", ready + ".2")
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("inclavare kbs: sealed.toml: storage.kek: wrong key: this database's key-encryption ")
    assert not os.path.exists(ready + ".2")


def test_serve_startup_errors_are_one_line(world):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    busy = world.config("busy").replace(".toml", "-busy.toml")
    with open(world.config("busy")) as f, open(busy, "w") as out:
        out.write(f.read().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"'))
    result = run("kbs", "serve", "--config", busy)
    taken.close()
    assert result.returncode == 1
    assert (
        result.stderr.decode()
        .splitlines()[-1]
        .startswith("inclavare kbs: busy-busy.toml: http.listen: cannot listen on 127.0.0.1:")
    )
    tls = world.config("badtls").replace(".toml", "-tls.toml")
    with open(world.config("badtls")) as f, open(tls, "w") as out:
        out.write(
            f.read().replace("[http]\n", '[http]\ntls_cert = "/nonexistent.crt"\ntls_key = "/nonexistent.key"\n', 1)
        )
    result = run("kbs", "serve", "--config", tls)
    assert result.returncode == 1
    assert "http.tls_cert: /nonexistent.crt / /nonexistent.key: No such file or directory" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
