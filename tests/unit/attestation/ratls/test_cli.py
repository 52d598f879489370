"""``inclavare ratls server|client`` end to end: a server process, the client through the dispatcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from inclavare.attestation.ratls import sample
from inclavare.cli.tool._main import main
from inclavare.enclave.identity import (
    KeySigner,
    dump_manifest,
    expand_trusted_files,
    parse_manifest,
    sign_manifest,
    verify_signature,
    write_signature,
)

from . import ratspeer as rp

MANIFEST = """\
runtime = "native"
entrypoint = "/bin/app"
memory_limit = "64M"
isv_prod_id = 4
isv_svn = 2
trusted_files = ["/bin/app"]

[argv]
policy = "fixed"
values = ["/bin/app"]
"""
GREETING = "\033[91mHello and welcome to RATS-TLS!\033[0m\n"  # rats-tls-client/client.c


@pytest.fixture
def enclave(tmp_path) -> list[str]:
    """--manifest/--rootfs/--host-key of a signed software enclave in tmp_path."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin/app").write_bytes(b"\x7fELF sample app")
    manifest = tmp_path / "enclave.manifest.toml"
    manifest.write_text(dump_manifest(expand_trusted_files(parse_manifest(MANIFEST), str(rootfs))))
    signer = KeySigner(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    write_signature(sign_manifest(str(manifest), str(rootfs), signer), f"{manifest}.sig")
    host_key = str(tmp_path / "host-key.pem")
    return ["--manifest", str(manifest), "--rootfs", str(rootfs), "--host-key", host_key]


class Server:
    def __init__(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "inclavare.cli.tool._main", "ratls", "server", "-p", "0", "--count", "1", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.early: list[str] = []  # what precedes "[UNATTESTED (...): ]listening on IP:PORT"
        while "listening on 127.0.0.1:" not in (line := self.proc.stderr.readline()):
            assert line, "".join(self.early)
            self.early.append(line)
        self.head = line
        self.port = self.head.strip().rsplit(":", 1)[1]

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


@pytest.fixture
def client(capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["ratls", "client", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_server_and_client_echo_like_rats_tls(enclave, client) -> None:
    server = Server(*enclave)  # rats-tls's host sample server: the message comes back unchanged
    code, out, err = client("-p", server.port, "--allow-software", "--host-key", enclave[5])
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert (doc["verified"], doc["reply"], doc["custom_claims"]) == (True, {"message": GREETING}, {})
    assert "reply_matches_evidence" not in doc
    code, out, err = server.finish()
    assert (code, err) == (0, "")
    assert json.loads(out) == {"peer": None, "custom_claims": {}, "message": GREETING}


def test_identity_reply_like_the_occlum_sample(enclave, client) -> None:
    identity = verify_signature(enclave[1], enclave[1] + ".sig", enclave[3])
    server = Server(*enclave, "--reply", "identity")
    code, out, err = client("-p", server.port, "--allow-software", "--host-key", enclave[5], "--reply", "identity")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["verified"] is True
    assert (doc["peer"]["kind"], doc["peer"]["inner_kind"], doc["peer"]["tee"]) == (
        "ratls-certificate", "software-evidence", "software"
    )  # fmt: skip
    assert doc["peer"]["claims"]["measurement"] == identity.measurement.hex()
    assert doc["reply"] == {
        "measurement": identity.measurement.hex(),
        "signer": identity.signer.hex(),
        "message": GREETING,
    }  # MRENCLAVE(32) || MRSIGNER(32) || message
    assert doc["reply_matches_evidence"] is True
    code, out, err = server.finish()
    assert (code, err) == (0, "")


def test_mutual_mode_with_a_json_reply(enclave, client, tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    measurement = verify_signature(enclave[1], enclave[1] + ".sig", enclave[3]).measurement.hex()
    policy.write_text(f'allow_software = true\nmeasurements = ["{measurement}"]\nmin_svn = 2\n')
    server = Server(*enclave, "-m", "--policy", str(policy), "--reply", "json")
    code, out, err = client(
        "-p",
        server.port,
        "-m",
        "-a",
        "software",
        *enclave,
        "--policy",
        str(policy),
        "--message",
        "hi",
        "--reply",
        "json",
    )
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["reply"] == {
        "tee": "software-evidence",
        "measurement": measurement,
        "signer": doc["reply"]["signer"],
        "message": "hi",
    }
    assert doc["reply_matches_evidence"] is True
    code, out, err = server.finish()
    assert (code, err) == (0, "")
    seen = json.loads(out)
    assert seen["peer"]["claims"]["measurement"] == measurement
    assert seen["peer"]["claims"]["svn"] == 2
    assert seen["message"] == "hi"


def test_refusals_are_one_line(enclave, client, tmp_path) -> None:
    server = Server(*enclave)
    code, out, err = client("-p", server.port, "--host-key", enclave[5])  # no --allow-software
    assert (code, out) == (1, "")
    assert err == (
        "inclavare ratls: ratls peer refused: policy: allow_software: "
        "software evidence is not accepted by this policy\n"
    )
    code, _, err = server.finish()
    assert code == 1
    assert "the peer closed the connection before sending a message" in err
    server = Server(*enclave)  # -v names the one TEE accepted, as a rats-tls verifier name does
    code, out, err = client("-p", server.port, "--allow-software", "--host-key", enclave[5], "-v", "sgx_ecdsa")
    assert (code, out) == (1, "")
    assert err == "inclavare ratls: ratls peer refused: policy: tees: software evidence is not accepted\n"
    assert server.finish()[0] == 1
    # Mutual server, wrong client measurement: the client learns only that the server closed.
    policy = tmp_path / "other.json"
    policy.write_text(json.dumps({"allow_software": True, "measurements": ["00" * 32]}))
    server = Server(*enclave, "-m", "--policy", str(policy))
    code, out, err = client("-p", server.port, "-m", "-a", "software", *enclave, "--allow-software")
    assert (code, out) == (1, "")
    assert err.startswith("inclavare ratls: ratls client: the server closed the connection without a reply")
    code, _, err = server.finish()
    assert code == 1
    assert "inclavare ratls server: ratls peer refused: policy: measurements: software measurement" in err


def test_usage_and_platform_errors(enclave, client, tmp_path, capsys) -> None:
    code, _, err = client("-m")
    assert (code, err) == (1, "inclavare ratls: client: -m/--mutual needs -a/--attester\n")
    missing = str(tmp_path / "nothing-here")
    cases = [
        ([], "the software attester needs --manifest and --rootfs (a signed enclave)"),
        (
            ["-a", "tdx", "--tsm-root", missing],
            f"tdx attester: not supported on this platform: no configfs-tsm report interface at {missing} ",
        ),
        (["-a", "sgx"], "sgx attester: needs an SGX enclave runtime (a PAL v3 with pal_get_local_report)"),
        (["-a", "nothing"], "server: argument -a/--attester: invalid choice: 'nothing'"),
        (["-v", "null"], "server: -v/--verifier needs -m/--mutual"),
        (["-a", "null", "--reply", "identity"], "server: --reply identity states this side's identity; -a null has"),
        (["-m", "-v", "null", "--allow-software"], "server: -v null appraises nothing"),
    ]
    for args, message in cases:
        assert main(["ratls", "server", "-p", "0", *args]) == 1
        assert capsys.readouterr().err.startswith(f"inclavare ratls: {message}")
    assert not os.path.exists(enclave[5])  # nothing above created a host key


def test_sgx_attester_through_a_pal_and_aesmd(tmp_path, pal, capsys) -> None:
    from attestation.attesters.fake_aesmd import FakeAesmd

    missing = str(tmp_path / "aesm.socket")
    assert main(["ratls", "server", "-p", "0", "-a", "sgx_ecdsa", "--pal", pal("v3"), "--aesm-socket", missing]) == 1
    assert (
        capsys.readouterr().err
        == f"inclavare ratls: sgx attester: not supported on this platform: no aesmd socket at {missing}\n"
    )
    aesmd = FakeAesmd(tmp_path / "fake.socket")
    try:
        assert main(["ratls", "server", "-p", "0", "-a", "sgx", "--pal", pal("v3"), "--aesm-socket", aesmd.path]) == 1
    finally:
        aesmd.close()
    assert capsys.readouterr().err == (
        "inclavare ratls: sgx attester: local report: enclave runtime liberpal-v3.so: "
        "pal_get_local_report cannot bind report data (it is always zero)\n"
    )


def test_null_attester_server_serves_a_rats_tls_client(enclave) -> None:
    server = Server("-a", "null")
    assert server.head.startswith("UNATTESTED (this side sends no evidence: -a null): listening on")
    result = rp.rats_tls_client(("127.0.0.1", int(server.port)))
    assert (result.verdict.verifier, result.reply) == ("nullverifier", rp.GREETING)
    code, out, err = server.finish()
    assert code == 0
    assert server.early == ["UNATTESTED: issued a certificate without evidence (--attester null)\n"]
    assert all(line.startswith("UNATTESTED") for line in err.splitlines())
    assert json.loads(out)["unattested"] == "UNATTESTED (this side sends no evidence: -a null)"


def test_null_verifier_client_against_rats_tls_samples(client) -> None:
    host = rp.RatsTlsServer()  # nullattester, echo
    try:
        host.serve()
        code, out, err = client("-p", str(host.address[1]), "-v", "null")
        assert (code, err) == (0, "")
        doc = json.loads(out)
        assert (doc["verified"], doc["peer"], doc["reply"]) == (False, None, {"message": GREETING})
        assert doc["unattested"] == "UNATTESTED (the peer is not appraised: -v null)"
        host.serve()
        code, out, err = client("-p", str(host.address[1]))  # not named: refused
        assert (code, out) == (1, "")
        assert err == (
            "inclavare ratls: ratls peer refused: ratls certificate: needs exactly one evidence extension "
            "(2.23.133.5.4.9 or a legacy RA-TLS OID), found 0: the peer is unattested (rats-tls's nullattester "
            "sends no evidence)\n"
        )
    finally:
        host.close()
    identity = bytes(range(64))
    occlum = rp.RatsTlsServer(occlum_identity=identity)  # MRENCLAVE || MRSIGNER || its blue hello
    try:
        occlum.serve()
        argv = [
            "-p",
            str(occlum.address[1]),
            "-v",
            "null",
            "--reply",
            "identity",
            "--message",
            rp.GREETING_SGX.decode(),
        ]
        code, out, err = client(*argv)
        assert (code, err) == (0, "")
        reply = json.loads(out)["reply"]
        assert (reply["measurement"], reply["signer"]) == (identity[:32].hex(), identity[32:].hex())
        assert json.loads(out)["reply_matches_evidence"] is None  # nothing was verified
        occlum.serve()
        code, out, err = client("-p", str(occlum.address[1]), "-v", "null", "--reply", "identity")
        assert code == 1
        assert err.startswith("UNATTESTED (the peer is not appraised: -v null): inclavare ratls: ")
        assert "ratls client: invalid response: the message is not ours" in err
    finally:
        occlum.close()


def test_mutual_null_on_both_command_lines(client) -> None:
    server = Server("-a", "null", "-m", "-v", "null")
    code, out, err = client("-p", server.port, "-m", "-a", "null", "-v", "null", "--message", "m")
    assert (code, err) == (0, "")
    both = "UNATTESTED (this side sends no evidence: -a null; the peer is not appraised: -v null)"
    assert json.loads(out)["unattested"] == both
    code, out, err = server.finish()
    assert code == 0
    assert json.loads(out)["unattested"] == both


def test_identity_reply_for_rats_tls_clients() -> None:
    """No rats-tls client accepts a software-attested server, so the reply is checked without TLS."""
    mr, ms = b"M" * 32, b"S" * 32
    reply = sample.reply("identity", rp.GREETING_SGX, mr, ms, "sgx-quote")
    assert rp.check_sample_reply(rp.GREETING_SGX, reply, "sgx") == mr + ms  # the SGX client strips 64 bytes
    assert rp.check_sample_reply(rp.GREETING, sample.reply("identity", rp.GREETING, mr, ms, "sgx-quote"), "occlum")
    with pytest.raises(rp.Refused, match="Invalid response"):  # the host client does not strip
        rp.check_sample_reply(rp.GREETING, sample.reply("identity", rp.GREETING, mr, ms, "sgx-quote"), "host")
    assert rp.check_sample_reply(rp.GREETING, sample.reply("echo", rp.GREETING, mr, ms, "x"), "host") is None
