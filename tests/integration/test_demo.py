"""`make demo` runs end to end (README's first command must keep working)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def test_demo_story():
    r = subprocess.run([sys.executable, "-m", "inclavare.demo"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "env GREETING=hello from the enclave" in r.stdout
    assert "verified: tee=software" in r.stdout
    assert "mismatch for /app/hello.wasm" in r.stdout
    assert "refused, as it must be" in r.stdout
    assert "the tenant's secret, for attested enclaves only" in r.stdout
    assert "1 layers (1 decrypted)" in r.stdout
    assert "403 PolicyDeny" in r.stdout
    assert '"event": "deny"' in r.stdout
