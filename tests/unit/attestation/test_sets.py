"""Every set of sets.json through ``inclavare evidence verify`` at its verify_at: the expected outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from .vectors import BY_ID, SETS, at, cli_args, expected, run_cli


@pytest.mark.parametrize("set_id", [s["id"] for s in SETS])
def test_set_outcome(set_id: str) -> None:
    s = BY_ID[set_id]
    want = expected(s)
    rc, out, err = run_cli(*cli_args(s))
    if not want.accept:
        assert rc != 0
        assert out == ""
        assert err.count("\n") == 1
        assert err.startswith("inclavare evidence: ")
        assert any(e in err for e in want.errors), err
        return
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["verified"] is True
    assert doc["tee"] == s["tee"]
    _check_decoded(s, doc)
    if s["tee"] in ("sgx", "tdx"):
        _check_intel_tcb(s, doc)


def _check_intel_tcb(s: dict, doc: dict) -> None:
    e = s["expected"]
    tcb = doc["tcb"]
    assert tcb["components"]["platform"] == e["platform_tcb_status"]
    assert tcb["components"]["qe"] == e["qe_tcb_status"]
    assert tcb["status"] == want_converged(tcb["components"])
    assert tcb["advisory_ids"][: len(e["platform_tcb_advisory_ids"])] == e["platform_tcb_advisory_ids"]
    assert tcb["tcb_date"] == e["platform_tcb_date"]
    module = e.get("tdx_module_identity_status")
    if isinstance(module, list):
        assert tcb["components"]["tdx_module"] == module[2]
        assert set(module[3]) <= set(tcb["advisory_ids"])
    fmspc = s["decoded"]["pck_extension"]["fmspc"]
    assert doc["claims"]["platform"]["fmspc"] == fmspc.lower()


def want_converged(components: dict) -> str:
    """Intel's convergence, restated for the vectors (QE and modules here are UpToDate or OutOfDate)."""
    status = components["platform"]
    if "OutOfDate" in (components.get("tdx_module"), components["qe"]):
        status = {"UpToDate": "OutOfDate", "SWHardeningNeeded": "OutOfDate"}.get(status, status)
    return status


def _check_decoded(s: dict, doc: dict) -> None:
    claims, dec = doc["claims"], s["decoded"]
    if s["tee"] == "sgx":
        body = dec["body"]
        assert (claims["mr_enclave"], claims["mr_signer"]) == (body["mrenclave"], body["mrsigner"])
        assert (claims["isv_prod_id"], claims["isv_svn"]) == (body["isvprodid"], body["isvsvn"])
        assert (claims["attributes"], claims["report_data"]) == (body["attributes"], body["report_data"])
        assert claims["debug"] is dec["body_debug_flag"]
    elif s["tee"] == "tdx":
        body = dec["body"]
        assert claims["mr_td"] == body["mrtd"]
        assert claims["report_data"] == body["report_data"]
        assert claims["rtmrs"] == [body[f"rtmr{i}"] for i in range(4)]
        assert (claims["mr_config_id"], claims["mr_owner"]) == (body["mrconfigid"], body["mrowner"])
        assert (claims["td_attributes"], claims["tee_tcb_svn"]) == (body["td_attributes"], body["tee_tcb_svn"])
        assert claims["mr_servicetd"] == body.get("mrservicetd")
        assert claims["debug"] is dec["td_debug_flag"]
    elif s["tee"] == "sev-snp":
        report = dec["report"]
        assert (claims["measurement"], claims["report_data"]) == (report["measurement"], report["report_data"])
        assert (claims["chip_id"], claims["vmpl"]) == (report["chip_id"], report["vmpl"])
        assert claims["reported_tcb"]["raw"] == report["reported_tcb"]["raw"]
        assert hex(claims["policy"]["raw"]) == report["policy"]
        assert claims["policy"]["debug_allowed"] is report["policy_debug_allowed"]
        assert claims["policy"]["smt_allowed"] is report["policy_smt_allowed"]
    else:
        assert claims["module_id"] == dec["module_id"]
        assert {k: claims["pcrs"][k] for k in dec["pcrs"]} == dec["pcrs"]
        assert not any(int(v, 16) for k, v in claims["pcrs"].items() if k not in dec["pcrs"])


def test_sets_cover_accept_and_reject() -> None:
    outcomes = [expected(s).accept for s in SETS]
    assert outcomes.count(True) == 19
    assert outcomes.count(False) == 6


def test_expired_collateral_is_accepted_only_by_an_explicit_policy(tmp_path: Path) -> None:
    s = BY_ID["sgx-mobilecoin"]
    policy = tmp_path / "p.toml"
    policy.write_text('accept_tcb_status = ["SWHardeningNeeded"]\naccept_expired_collateral = true\n')
    rc, out, err = run_cli(*cli_args(s, "--policy", str(policy)))
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["tcb"]["status"] == "SWHardeningNeeded"
    assert doc["tcb"]["advisory_ids"] == ["INTEL-SA-00334", "INTEL-SA-00615"]
    assert doc["expired_collateral"] == ["pck crl (nextUpdate 2023-05-21T22:00:36Z)"]


@pytest.mark.parametrize("set_id", ["tdx-gotdx-v4"])
def test_gotdx_v4_without_its_appended_bytes_has_no_matching_tcb_level(set_id: str, tmp_path: Path) -> None:
    s = BY_ID[set_id]
    quote = tmp_path / "quote.bin"
    quote.write_bytes((Path(cli_args(s)[1])).read_bytes()[:4935])
    args = cli_args(s)
    args[1] = str(quote)
    rc, _, err = run_cli(*args)
    assert rc == 1
    assert "tdx tcb: no TCB level" in err
    assert "TCB not supported" in err


@pytest.mark.parametrize("set_id", [s["id"] for s in SETS if s["tee"] == "aws-nitro"])
def test_nitro_documents_expire_a_day_later(set_id: str) -> None:
    s = BY_ID[set_id]
    args = cli_args(s)
    args[args.index("--at") + 1] = (at(s) + timedelta(days=1)).isoformat()
    rc, _, err = run_cli(*args)
    assert rc == 1
    assert "nitro chain" in err
    assert "is not valid at" in err


def test_real_subprocess_of_the_installed_tool() -> None:
    s = BY_ID["tdx-dcapqvl"]
    tool = Path(sys.executable).with_name("inclavare")
    cmd = [str(tool)] if tool.exists() else [sys.executable, "-m", "inclavare.cli.tool._main"]
    ok = subprocess.run(
        [*cmd, "evidence", *cli_args(s)], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["tcb"]["status"] == "UpToDate"
    bad = subprocess.run(
        [*cmd, "evidence", *cli_args(BY_ID["snp-negative-test-vcek-invalid-new"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr == "inclavare evidence: sev-snp vcek chain: certificate 'SEV-VCEK' is not signed by 'SEV-Milan'\n"
