"""`make demo`: a container run end to end through rune, on the built-in defaults.

Builds a busybox bundle in a temporary directory, runs it with rune and
shows what happened. (As enclave runtimes and attestation land, the demo
grows into the confidential-container story: see README.md.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from .testing.bundles import base_config, make_bundle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    rune = os.path.join(ROOT, "build", "rune")
    with tempfile.TemporaryDirectory(prefix="inclavare-demo-") as tmp:
        bundle = make_bundle(os.path.join(tmp, "bundle"),
                             base_config(["sh", "-c", "echo hello from $(hostname), pid $$; id"]))  # fmt: skip
        state_root = os.path.join(tmp, "state")
        print(f"$ rune run --bundle {bundle} demo", flush=True)
        result = subprocess.run([rune, "--root", state_root, "run", "--bundle", bundle, "demo"])
        print(f"container exited with status {result.returncode}")
        return result.returncode


if __name__ == "__main__":
    sys.exit(main())
