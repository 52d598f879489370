"""`inclavare enclave ...` end to end through the real dispatcher (in process)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from identity_data import NATIVE

from inclavare.cli.tool._main import main
from inclavare.enclave.identity import HostKey, load_manifest, measure


@pytest.fixture
def run(capsys):
    def call(*argv: str) -> tuple[int, str, str]:
        code = main(["enclave", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def signed(run, write, rootfs, ed_pem, tmp_path):
    template = write("template.toml", NATIVE)
    manifest = str(tmp_path / "enclave.manifest.toml")
    assert run("expand", template, "--rootfs", rootfs, "-o", manifest)[0] == 0
    code, out, err = run("sign", manifest, "--rootfs", rootfs, "--key", ed_pem)
    assert (code, err) == (0, "")
    assert json.loads(out)["signature"] == manifest + ".sig"
    return manifest


def test_measure_expand_sign_inspect_verify(run, signed, rootfs, write):
    code, out, _ = run("measure", signed, "--rootfs", rootfs)
    assert code == 0
    assert out.strip() == measure(load_manifest(signed), rootfs).hex()
    assert run("measure", write("t.toml", NATIVE), "--rootfs", rootfs)[1] == out  # a template measures the same
    code, out, _ = run("inspect", signed + ".sig")
    shown = json.loads(out)
    assert code == 0
    assert shown["measurement"] == measure(load_manifest(signed), rootfs).hex()
    assert (shown["isv_prod_id"], shown["isv_svn"], shown["debug"], shown["software"]) == (7, 3, False, True)
    assert shown["algorithm"] == "ed25519"
    code, out, _ = run("verify", signed, "--rootfs", rootfs, "--signer", shown["signer"])
    assert code == 0
    assert json.loads(out)["signer"] == shown["signer"]


def test_verify_failures_are_one_line(run, signed, rootfs):
    with open(os.path.join(rootfs, "bin/app"), "ab") as f:
        f.write(b"!")
    code, out, err = run("verify", signed, "--rootfs", rootfs)
    assert (code, out) == (1, "")
    assert err == f"inclavare enclave: {signed}: trusted_files[0].sha256: mismatch for /bin/app\n"
    code, _, err = run("verify", signed, "--rootfs", rootfs, "--signer", "00" * 32)
    assert code == 1
    assert err.startswith(f"inclavare enclave: {signed}.sig: signer: ")


def test_seal_and_unseal_files(run, signed, rootfs, tmp_path):
    secret = str(tmp_path / "host-secret")
    (tmp_path / "plain").write_bytes(b"top secret")
    common = ("--rootfs", rootfs, "--host-secret", secret)
    assert (
        run(
            "seal", signed, *common, "--policy", "mrsigner", "-i", str(tmp_path / "plain"), "-o", str(tmp_path / "blob")
        )[0]
        == 0
    )
    assert b"top secret" not in (tmp_path / "blob").read_bytes()
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert run("unseal", signed, *common, "-i", str(tmp_path / "blob"), "-o", str(tmp_path / "out"))[0] == 0
    assert (tmp_path / "out").read_bytes() == b"top secret"
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o600
    code, _, err = run(
        "unseal", signed, *common, "--aad", "x", "-i", str(tmp_path / "blob"), "-o", str(tmp_path / "o2")
    )
    assert (code, err) == (1, f"inclavare enclave: {tmp_path / 'blob'}: cannot unseal: authentication failed\n")
    code, _, err = run("unseal", signed, *common, "--policy", "mrenclave", "-i", str(tmp_path / "blob"), "-o", "x")
    assert code == 1
    assert "sealed under mrsigner, not mrenclave" in err
    assert not (tmp_path / "o2").exists()


def test_usage_errors(run, tmp_path):
    assert run("--help")[0] == 0
    for argv, message in [
        ((), "the following arguments are required: cmd"),
        (("sign", "m.toml"), "sign: the following arguments are required: --rootfs"),
        (("sign", "m.toml", "--rootfs", "r"), "sign: one of the arguments --key --signing-server is required"),
        (("verify", "m", "--rootfs", "r", "--signer", "zz"), "--signer: must be 64 hex digits"),
        (("seal", "m", "--rootfs", "r", "--policy", "x", "-i", "a", "-o", "b"), "invalid choice: 'x'"),
    ]:
        code, _, err = run(*argv)
        assert code == 1
        assert err.startswith("inclavare enclave: ")
        assert message in err
        assert err.count("\n") == 1


def test_host_key(run, tmp_path):
    path = str(tmp_path / "key.pem")
    code, out, _ = run("host-key", "--path", path)
    shown = json.loads(out)
    assert code == 0
    assert shown["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert len(bytes.fromhex(shown["key_id"])) == 32
    assert json.loads(run("host-key", "--path", path)[1]) == shown  # created once, then reused
    assert shown["key_id"] == HostKey.load_or_create(path).key_id.hex()


def test_sign_with_signing_server(run, server, write, rootfs, expanded):
    manifest = expanded()
    code, out, err = run(
        "sign", manifest, "--rootfs", rootfs, "--signing-server", server.url, "-o", manifest + ".rsa.sig"
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["algorithm"] == "rsa3072-pkcs1v15-sha256"
    assert run("verify", manifest, "--rootfs", rootfs, "--sig", manifest + ".rsa.sig")[0] == 0
    server.mode = "error"
    code, _, err = run("sign", manifest, "--rootfs", rootfs, "--signing-server", server.url)
    assert code == 1
    assert err == f"inclavare enclave: signing server {server.url}/api/v1/signature/pkcs1: HTTP 500\n"
