"""The copied vectors are byte-identical to the shared set (MANIFEST.sha256 covers every file)."""

from __future__ import annotations

import hashlib

from .vectors import SETS, VECTORS


def test_every_manifest_entry_is_present_and_intact() -> None:
    lines = (VECTORS / "MANIFEST.sha256").read_text().splitlines()
    assert len(lines) > 70
    listed = set()
    for line in lines:
        digest, name = line.split(maxsplit=1)
        listed.add(name)
        assert hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() == digest, name
    on_disk = {str(p.relative_to(VECTORS)) for p in VECTORS.rglob("*") if p.is_file()}
    assert on_disk - listed == {"MANIFEST.sha256"}


def test_sets_json_lists_25_sets() -> None:
    assert len(SETS) == 25
    assert {s["tee"] for s in SETS} == {"sgx", "tdx", "sev-snp", "aws-nitro"}
