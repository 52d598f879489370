"""Shared test data for the enclave identity tests (imported by conftest and tests)."""

from __future__ import annotations

import hashlib

# A real (empty) WebAssembly module: magic + version 1 (wasm core spec §5.5.16).
WASM_MODULE = b"\x00asm\x01\x00\x00\x00"

NATIVE = """\
runtime = "native"
entrypoint = "/bin/app"
memory_limit = "64M"
isv_prod_id = 7
isv_svn = 3
allowed_files = ["/var/log/app.log", "/tmp/scratch"]
trusted_files = ["/bin/app", "/lib/libc.so", "/etc/app.conf"]

[argv]
policy = "fixed"
values = ["/bin/app", "--serve"]

[env]
passthrough = ["TZ", "LANG"]
fixed = { MODE = "prod", LEVEL = "3" }
"""

WASM = """\
runtime = "wasm"
memory_limit = "32M"
isv_prod_id = 9
isv_svn = 1
trusted_files = ["/etc/app.conf"]

[wasm]
module = "/app/main.wasm"
max_memory_pages = 100
fuel = 1000000
epoch_deadline = 5
preopened_dirs = [{ guest = "/data", path = "/srv/data", read_only = true }]
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
