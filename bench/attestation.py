"""Verification throughput per TEE with cached collateral (not a test).

Run: ``.venv/bin/python bench/attestation.py [--seconds 2]``. For every TEE a
genuine vector from tests/vectors is verified in a loop with a collateral
store built once (the "cached collateral" case: no I/O, no network), at the
vector's fixed verify_at instant, through the public recipe
``inclavare.attestation.verify``. Prints ms per verification, verifications
per second, and the ratio to the published anchor for Intel's DCAP QVL with
cached collateral: ~0.54 ms per quote (flashbots/attested-tls-benchmarks,
Ryzen AI 9 HX 370, single thread; docs/attestation.md, "Performance").
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from inclavare.attestation import CollateralStore, Policy, verify  # noqa: E402
from inclavare.attestation.software import encode_report  # noqa: E402

DCAP_QVL_MS = 0.54
VECTORS = ROOT / "tests" / "vectors"
CASES = [
    ("SGX quote v3", "sgx-dcapqvl", None),
    ("TDX quote v4", "tdx-dcapqvl", None),
    ("TDX quote v5 (TD 1.5)", "tdx-gotdx-v5", None),
    ("SEV-SNP report (VCEK)", "snp-trustee-milan", None),
    ("SEV-SNP report (VLEK)", "snp-trustee-vlek-aws", None),
    ("Azure SNP HCL report", "snp-azure-genoa", None),
    ("AWS Nitro document", "nitro-evervault-ga", None),
    ("RA-TLS cert (Gramine, SGX)", "sgx-gramine-ratls", "sgx/gramine-ratls/tlscert.der"),
]


def _paths(value: str | list[str]) -> list[str]:
    return [str(VECTORS / p) for p in ([value] if isinstance(value, str) else value)]


def case(set_id: str, override: str | None) -> tuple[bytes, CollateralStore, datetime]:
    s = next(x for x in json.loads((VECTORS / "sets.json").read_text()) if x["id"] == set_id)
    roles = {k: v for k, v in s["files"].items() if k != "report_offset"}
    evidence_role = next(r for r in ("quote", "report", "document") if r in roles)
    store = CollateralStore.from_files(p for r, v in roles.items() if r != evidence_role for p in _paths(v))
    data = (VECTORS / (override or roles[evidence_role])).read_bytes()
    return data, store, datetime.fromisoformat(s["verify_at"].replace("Z", "+00:00"))


def software_case() -> tuple[bytes, CollateralStore, datetime]:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    data = encode_report(
        measurement=bytes(32), signer=bytes(32), product_id=1, svn=1, debug=False, report_data=bytes(64), host_key=key
    )
    store = CollateralStore()
    store.add_host_key(key.public_key())
    return data, store, datetime(2026, 1, 1, tzinfo=UTC)


def measure(data: bytes, store: CollateralStore, at: datetime, policy: Policy, seconds: float) -> tuple[float, int]:
    verify(data, at=at, collateral=store, policy=policy)  # warm up (imports, pinned roots)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        verify(data, at=at, collateral=store, policy=policy)
        count += 1
    return elapsed * 1000 / count, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per case (default 2 s)")
    args = parser.parse_args()
    import cryptography

    print(
        f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"{'evidence':<30} {'ms/verify':>10} {'verify/s':>10} {'vs QVL 0.54 ms':>15} {'runs':>6}")
    rows = [(name, *case(set_id, override), Policy.genuine_only()) for name, set_id, override in CASES]
    rows.append(("Software evidence (Ed25519)", *software_case(), Policy(allow_software=True)))
    for name, data, store, at, policy in rows:
        ms, runs = measure(data, store, at, policy, args.seconds)
        print(f"{name:<30} {ms:>10.3f} {1000 / ms:>10.0f} {ms / DCAP_QVL_MS:>14.2f}x {runs:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
