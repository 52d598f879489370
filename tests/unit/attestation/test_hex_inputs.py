"""``0x``-prefixed hex (dcap-qvl's and Automata's convention) is accepted wherever hex is, one test per entry point.

Evidence files (CLI and :func:`unwrap_text`), policy reference values and
report data (:class:`Policy`, ``--policy``), dcap-qvl collateral bundles
(:class:`CollateralStore`, ``--collateral``), RA-TLS endorsements, a PCCS's
hex root CA CRL (:mod:`.fetch`), the RA-TLS sample client's reply, and the
two other CLIs that read hex: ``rune attest --report-data`` and
``inclavare enclave --signer``. (KBS reference values:
tests/unit/kbs/test_hex_values.py and tests/integration/test_kbs_cli.py.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from inclavare.attestation import CollateralError, CollateralStore, Policy, PolicyFileError, verify
from inclavare.attestation.fetch import fetch_for
from inclavare.attestation.formats import unwrap_text
from inclavare.attestation.hazmat.hextext import canonical_hex, from_hex
from inclavare.attestation.ratls import RatlsError
from inclavare.attestation.ratls.endorsements import Endorsements
from inclavare.cli.tool.ratls import decode_reply

from .test_fetch import ROUTES
from .vectors import BY_ID, VECTORS, at, cli_args, evidence, run_cli

SGX = BY_ID["sgx-dcapqvl"]
BODY = SGX["decoded"]["body"]
REPO = Path(__file__).resolve().parents[3]


def test_from_hex() -> None:
    assert from_hex("0xAB cd") == from_hex("0XabCD") == from_hex("abcd") == b"\xab\xcd"
    assert from_hex("0x") == b""
    assert canonical_hex(" 0xABCD\n") == "abcd"
    for bad in ("0x0xab", "x12", "0xg0", "0x1", "-0x12"):
        with pytest.raises(ValueError, match=r"non-hexadecimal|odd"):
            from_hex(bad)


@pytest.mark.parametrize("prefix", [b"0x", b"0X", b""])
def test_evidence_files_in_hex(tmp_path: Path, prefix: bytes) -> None:
    quote = evidence(SGX)
    text = prefix + quote.hex().encode() + b"\n"
    assert unwrap_text(text) == quote  # the Python API
    verify(unwrap_text(text), at=at(SGX), collateral=_store(), policy=Policy.genuine_only())
    path = tmp_path / "quote.hex"
    path.write_bytes(text)
    args = cli_args(SGX)
    args[1] = str(path)
    rc, out, err = run_cli(*args)  # the CLI
    assert rc == 0, err
    assert json.loads(out)["claims"]["report_data"] == BODY["report_data"]
    rc, out, _ = run_cli("inspect", str(path))
    assert rc == 0
    assert json.loads(out)["body"]["mr_enclave"] == BODY["mrenclave"]


def _store() -> CollateralStore:
    return CollateralStore.from_files([str(VECTORS / SGX["files"]["dcapqvl_json"])])


def test_policy_reference_values_and_report_data(tmp_path: Path) -> None:
    doc = {
        "accept_tcb_status": ["ConfigurationAndSWHardeningNeeded"],
        "allow_debug": True,
        "measurements": ["0x" + BODY["mrenclave"].upper()],
        "signers": ["0X" + BODY["mrsigner"]],
        "report_data": "0x" + BODY["report_data"][:26],  # "Hello, world!" then zeros
    }
    policy = Policy.from_mapping(doc)  # the Python API
    assert policy.measurements == {bytes.fromhex(BODY["mrenclave"])}
    verify(evidence(SGX), at=at(SGX), collateral=_store(), policy=policy)
    with pytest.raises(PolicyFileError, match="report_data: must be a hex string"):
        Policy.from_mapping({**doc, "report_data": "0xnope"})
    path = tmp_path / "policy.toml"
    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in doc.items()) + "\n")
    rc, out, err = run_cli(*cli_args(SGX, "--policy", str(path)))  # the CLI
    assert rc == 0, err
    assert json.loads(out)["verified"] is True


def test_dcap_qvl_bundle_with_0x_fields(tmp_path: Path) -> None:
    bundle = json.loads((VECTORS / SGX["files"]["dcapqvl_json"]).read_text())
    for key in ("root_ca_crl", "pck_crl", "tcb_info_signature", "qe_identity_signature"):
        bundle[key] = "0x" + bundle[key]
    path = tmp_path / "collateral.json"
    path.write_text(json.dumps(bundle))
    store = CollateralStore.from_files([str(path)])  # the Python API
    assert len(store.crls) == 2
    verify(evidence(SGX), at=at(SGX), collateral=store, policy=Policy.genuine_only())
    args = cli_args(SGX)
    args[args.index("--collateral") + 1] = str(path)
    rc, _, err = run_cli(*args)  # the CLI
    assert rc == 0, err


def test_ratls_endorsements_with_0x_hex_crls() -> None:
    crl = (VECTORS / "roots/intel_sgx_root_ca_crl_2025-03-20.der").read_bytes()
    ends = Endorsements(1, b"", b"", b"0x" + crl.hex().encode() + b"\0", b"", b"", b"", b"")
    store = CollateralStore()
    ends.add_to(store)
    assert len(store.crls) == 1


def test_a_pccs_root_crl_served_as_0x_hex(tmp_path: Path) -> None:
    routes = dict(ROUTES)
    path = "/sgx/certification/v4/rootcacrl"
    routes[path] = (b"0x" + routes[path][0].upper() + b"\n", {})

    def get(url: str) -> tuple[bytes, dict[str, str]]:
        body, headers = routes[url.removeprefix("http://pccs")]
        return body, {k.lower(): v for k, v in headers.items()}

    written = fetch_for(evidence(BY_ID["sgx-occlum"]), str(tmp_path), pcs_url="http://pccs", get=get)
    assert any("/intel/crl/root-" in p for p in written)
    routes[path] = (b"0xabc", {})
    with pytest.raises(CollateralError, match="looks like hex but is not"):
        fetch_for(evidence(BY_ID["sgx-occlum"]), str(tmp_path), pcs_url="http://pccs", get=get)


def test_ratls_client_reply() -> None:
    measurement = bytes(range(32))
    doc, echoed = decode_reply(json.dumps({"measurement": "0x" + measurement.hex(), "message": "hi"}).encode(), 32)
    assert echoed == measurement
    assert doc["message"] == "hi"
    assert decode_reply(measurement + bytes(32) + b"hi", 32)[1] == measurement
    for bad in (b"{nope", b'{"measurement": 3}', b'{"measurement": "0xzz"}', b"[" * 5000):
        with pytest.raises(RatlsError, match="the server's JSON reply is malformed"):
            decode_reply(bad if bad[:1] == b"{" else b"{" + bad, 32)


def test_rune_attest_report_data(tmp_path: Path) -> None:
    rune = REPO / "build" / "rune"
    if not rune.exists():
        pytest.skip("build/rune is made by `make setup`")

    def run(report_data: str) -> str:
        cmd = [str(rune), "--root", str(tmp_path), "attest", "--report-data", report_data, "no-such-container"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stderr

    assert "container does not exist" in run("0x" + "ab" * 64)  # parsed, then the container is looked up
    assert "--report-data: not hex" in run("0xzz")


def test_enclave_signer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from inclavare.cli.tool._main import main

    manifest = str(tmp_path / "missing.toml")
    assert main(["enclave", "verify", manifest, "--rootfs", str(tmp_path), "--signer", "0x" + "AB" * 32]) == 1
    err = capsys.readouterr().err
    assert "--signer" not in err  # the signer parsed; the missing manifest is what failed
    assert manifest in err
    assert main(["enclave", "verify", manifest, "--rootfs", str(tmp_path), "--signer", "0x" + "AB" * 31]) != 0
    assert "--signer: must be 64 hex digits" in capsys.readouterr().err
