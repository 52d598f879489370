"""One corrupted byte in a genuine certificate inside a quote or a Nitro document.

`cryptography` reports some malformed certificates with exceptions that are
not ValueError (x509.InvalidVersion, x509.DuplicateExtension,
x509.UnsupportedGeneralNameType): those escaped as tracebacks from
``inclavare evidence verify`` and as HTTP 500 from the KBS. Every
corruption must end in an AttestationError whose one line names the
evidence and the certificate, through the Python API and the CLI alike.
(The KBS side is tests/integration/test_kbs_rcar.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from inclavare.attestation import AttestationError, EvidenceFormatError, Policy, VerifierFault, inspect, verify

from . import corrupt
from .vectors import BY_ID, at, cli_args, evidence, run_cli, store

POLICY = Policy.genuine_only()
SETS = ["sgx-dcapqvl", "tdx-dcapqvl", "nitro-evervault-ga"]
WHERE = {"sgx": "sgx quote: PCK certificate chain", "tdx": "tdx quote: PCK certificate chain"}
CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "version": (corrupt.bad_version, "InvalidVersion"),
    "duplicate extension": (corrupt.duplicate_extension, "DuplicateExtension"),
    "x400 crl point": (corrupt.x400_crl_point, "UnsupportedGeneralNameType"),
}


def refusal(data: bytes, s: dict) -> AttestationError:
    """The one-line AttestationError ``verify`` raises (anything else fails the test by escaping)."""
    with pytest.raises(AttestationError) as info:
        verify(data, at=at(s), collateral=store(s), policy=POLICY)
    assert not isinstance(info.value, VerifierFault), "a parser should have located this"
    assert "\n" not in str(info.value)
    return info.value


def message_of(step: Callable[[], object]) -> str | None:
    """The message of the AttestationError ``step`` raises, None if it returns (anything else escapes)."""
    try:
        step()
    except AttestationError as exc:
        return str(exc)
    return None


def where(s: dict, label: str, count: int) -> str:
    """How the error names certificate ``label`` of ``s``'s evidence."""
    if s["tee"] == "aws-nitro":
        return f"nitro document: {label}"
    return f"{WHERE[s['tee']]}: {label} of {count}"


def cases() -> list[tuple[str, str, int]]:
    out = []
    for set_id in SETS:
        sites = corrupt.certificates(evidence(BY_ID[set_id]))
        for name, (fn, _) in CORRUPTIONS.items():
            for index, site in enumerate(sites):
                try:
                    fn(site.der)
                except ValueError:  # that certificate has no such field (Nitro leaves have no CRL point)
                    continue
                out.append((set_id, name, index))
    return out


@pytest.mark.parametrize(("set_id", "name", "index"), cases())
def test_foreign_cryptography_exceptions_become_located_refusals(set_id: str, name: str, index: int) -> None:
    s = BY_ID[set_id]
    fn, exception = CORRUPTIONS[name]
    sites = corrupt.certificates(evidence(s))
    data = corrupt.replace(evidence(s), index, fn(sites[index].der))
    error = refusal(data, s)
    assert isinstance(error, EvidenceFormatError)
    site = where(s, sites[index].label, len(sites))
    assert str(error).startswith(f"{site}: not a valid X.509 certificate ({exception}: "), str(error)
    # Decoding for humans must not crash either (a quote reports the chain error inline).
    assert "\n" not in (message_of(lambda: inspect(data)) or "")


def test_every_case_is_covered() -> None:
    found = {(set_id, name) for set_id, name, _ in cases()}
    for set_id in SETS:
        assert (set_id, "version") in found
        assert (set_id, "duplicate extension") in found
    assert ("sgx-dcapqvl", "x400 crl point") in found
    assert ("tdx-dcapqvl", "x400 crl point") in found


@pytest.mark.parametrize("set_id", SETS)
def test_a_second_encoding_of_the_signature_is_refused(set_id: str) -> None:
    """cryptography accepts a signatureValue with unused bits when they are zero: same signature, other bytes."""
    s = BY_ID[set_id]
    data = evidence(s)
    changed = 0
    for index, site in enumerate(corrupt.certificates(data)):
        variant = corrupt.unused_signature_bits(site.der, x509.load_der_x509_certificate(site.der).signature)
        if variant is None:
            continue
        changed += 1
        error = refusal(corrupt.replace(data, index, variant), s)
        assert "signatureValue BIT STRING has unused bits" in str(error)
    assert changed, "no certificate of this set has an even last signature byte"


@pytest.mark.parametrize("set_id", SETS)
def test_every_certificate_byte_flipped_is_refused(set_id: str) -> None:
    s = BY_ID[set_id]
    collateral = store(s)
    bad = []
    for location, data in corrupt.every_byte_flipped(evidence(s)):
        try:
            verify(data, at=at(s), collateral=collateral, policy=POLICY)
            bad.append(f"{location}: accepted")
        except VerifierFault as exc:
            bad.append(f"{location}: no parser located this: {exc}")
        except AttestationError as exc:
            if "\n" in str(exc):
                bad.append(f"{location}: more than one line")
    assert bad == []


def _variant(set_id: str, name: str, path: Path) -> list[str]:
    s = BY_ID[set_id]
    fn, _ = CORRUPTIONS[name]
    data = evidence(s)
    path.write_bytes(corrupt.replace(data, 0, fn(corrupt.certificates(data)[0].der)))
    args = cli_args(s)
    args[1] = str(path)
    return args


@pytest.mark.parametrize(
    ("set_id", "name"),
    [("sgx-dcapqvl", "version"), ("tdx-dcapqvl", "x400 crl point"), ("nitro-evervault-ga", "duplicate extension")],
)
def test_cli_prints_one_line_and_exits_1(set_id: str, name: str, tmp_path: Path) -> None:
    rc, out, err = run_cli(*_variant(set_id, name, tmp_path / "evidence.bin"))
    assert (rc, out) == (1, "")
    assert err.startswith("inclavare evidence: ")
    assert err.count("\n") == 1, err
    assert CORRUPTIONS[name][1] in err


def test_cli_in_a_real_subprocess_has_no_traceback(tmp_path: Path) -> None:
    tool = Path(sys.executable).with_name("inclavare")
    cmd = [str(tool)] if tool.exists() else [sys.executable, "-m", "inclavare.cli.tool._main"]
    for set_id in ("sgx-dcapqvl", "nitro-evervault-ga"):
        args = _variant(set_id, "duplicate extension", tmp_path / f"{set_id}.bin")
        done = subprocess.run(
            [*cmd, "evidence", *args], capture_output=True, text=True, timeout=60, env=dict(os.environ)
        )
        assert done.returncode == 1
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1
        assert "not a valid X.509 certificate (DuplicateExtension: " in done.stderr
