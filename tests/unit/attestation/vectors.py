"""Helpers over tests/vectors (a verbatim copy of the shared genuine test vectors and sets.json)."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from inclavare.attestation import CollateralStore

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
SETS: list[dict] = json.loads((VECTORS / "sets.json").read_text())
BY_ID = {s["id"]: s for s in SETS}
EVIDENCE_ROLES = ("quote", "report", "document")
CERT_ROLES = ("signer_cert", "ask_ark_bundle")

# Where we deliberately differ from the reference outcome in sets.json (see docs/attestation.md):
# go-tdx-guest appended 39 ASCII bytes to this quote; we refuse non-zero trailing data before
# looking at the TCB (which would fail anyway: no matching TCB level).
DEVIATIONS = {"tdx-gotdx-v4": "bytes after the end of the quote are not all zero"}
# sets.json check names -> the check our error message names.
CHECK_NAMES = {
    "signer_issued_by_intermediate": "sev-snp vcek chain",
    "report_signature_valid": "sev-snp report signature",
    "reported_tcb_matches_cert_extensions": "sev-snp tcb",
    "chip_id_matches_cert_hwID": "sev-snp chip id",
}


def at(s: dict) -> datetime:
    return datetime.fromisoformat(s["verify_at"].replace("Z", "+00:00"))


def evidence_path(s: dict) -> Path:
    role = next(r for r in EVIDENCE_ROLES if r in s["files"])
    return VECTORS / s["files"][role]


def evidence(s: dict) -> bytes:
    return evidence_path(s).read_bytes()


def _paths(value: str | list[str]) -> list[Path]:
    return [VECTORS / p for p in ([value] if isinstance(value, str) else value)]


def collateral_paths(s: dict) -> list[Path]:
    out: list[Path] = []
    for role, value in s["files"].items():
        if role not in EVIDENCE_ROLES and role not in CERT_ROLES and role != "report_offset":
            out += _paths(value)
    return out


def cert_paths(s: dict) -> list[Path]:
    return [p for role in CERT_ROLES if role in s["files"] for p in _paths(s["files"][role])]


def store(s: dict) -> CollateralStore:
    return CollateralStore.from_files(str(p) for p in collateral_paths(s) + cert_paths(s))


def cli_args(s: dict, *extra: str) -> list[str]:
    args = ["verify", str(evidence_path(s)), "--at", s["verify_at"]]
    for p in collateral_paths(s):
        args += ["--collateral", str(p)]
    for p in cert_paths(s):
        args += ["--cert", str(p)]
    return [*args, *extra]


@dataclass(frozen=True)
class Outcome:
    accept: bool
    status: str | None = None  # expected Intel platform TCB status when accepted
    errors: tuple[str, ...] = ()  # when rejected: the message must contain one of these


def expected(s: dict) -> Outcome:
    e = s["expected"]
    if s["id"] in DEVIATIONS:
        return Outcome(False, errors=(DEVIATIONS[s["id"]],))
    if e.get("MUST_BE_REJECTED"):
        return Outcome(False, errors=tuple(CHECK_NAMES[k] for k, v in e.items() if v is False and k in CHECK_NAMES))
    status = e.get("platform_tcb_status")
    if status and status.startswith("NO_MATCHING"):
        return Outcome(False, errors=("TCB not supported",))
    stale = [k for k, fresh in e.get("collateral_fresh_at_verify_at", {}).items() if not fresh]
    if stale:
        return Outcome(
            False, errors=tuple(f"expired at the verification instant: {k.replace('_', ' ')}" for k in stale)
        )
    return Outcome(True, status=status)


def run_cli(*args: str) -> tuple[int, str, str]:
    """``inclavare evidence ARGS`` in-process, through the real dispatcher; (exit status, stdout, stderr)."""
    from inclavare.cli.tool._main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["evidence", *args])
    return rc, out.getvalue(), err.getvalue()
