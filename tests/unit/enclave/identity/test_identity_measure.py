"""The measurement: deterministic, independent of formatting, sensitive to everything measured."""

from __future__ import annotations

import hashlib
import os
import pathlib
import struct

import pytest
from identity_data import NATIVE, WASM, sha

from inclavare.enclave.identity import ManifestError, expand_trusted_files, measure, measurement_of, parse_manifest


def m_of(text: str, rootfs: str) -> bytes:
    return measure(parse_manifest(text), rootfs)


def test_template_and_expanded_manifest_measure_the_same(rootfs):
    template = parse_manifest(NATIVE)
    assert measure(template, rootfs) == measurement_of(expand_trusted_files(template, rootfs))
    assert measure(template, rootfs) == measure(template, rootfs)


REFORMATTED = """\
# the same enclave, written differently
isv_svn = 3
allowed_files = [ "/tmp/scratch", "/var/log/app.log", "/tmp//scratch" ]   # order and spelling differ
isv_prod_id = 7
memory_limit = 67108864
entrypoint = "/bin/./app"
runtime = 'native'

[[trusted_files]]
path = "/etc/app.conf"
[[trusted_files]]
path = "/lib/libc.so"
sha256 = "{libc}"
[[trusted_files]]
path = "/bin/app"

[env.fixed]
LEVEL = "3"
MODE = "prod"

[env]
passthrough = ["LANG", "TZ", "LANG"]

[argv]
values = ["/bin/app", "--serve"]
"""


def test_formatting_order_and_metadata_do_not_matter(rootfs):
    reference = m_of(NATIVE, rootfs)
    assert m_of(REFORMATTED.format(libc=sha(b"libc bytes")), rootfs) == reference
    for name in ("bin/app", "etc/app.conf"):
        path = os.path.join(rootfs, name)
        os.utime(path, (1, 1))
        os.chmod(path, 0o600)
    assert m_of(NATIVE, rootfs) == reference


NATIVE_CHANGES = [
    ('memory_limit = "64M"', 'memory_limit = "65M"'),
    ('values = ["/bin/app", "--serve"]', 'values = ["/bin/app", "--serve", "-v"]'),
    ('values = ["/bin/app", "--serve"]', 'values = ["--serve", "/bin/app"]'),  # argv order is measured
    ('policy = "fixed"\nvalues = ["/bin/app", "--serve"]', 'policy = "host"'),
    ('MODE = "prod"', 'MODE = "dev"'),
    ('passthrough = ["TZ", "LANG"]', 'passthrough = ["TZ"]'),
    ('passthrough = ["TZ", "LANG"]', 'passthrough = ["TZ", "LANG", "HOME"]'),
    ('"/tmp/scratch"]', '"/tmp/scratch", "/tmp/more"]'),
    ('"/etc/app.conf"]', '"/etc/app.conf", "/app/main.wasm"]'),
    ('"/etc/app.conf"]', "]"),
    ('entrypoint = "/bin/app"', 'entrypoint = "/etc/app.conf"'),
]

WASM_CHANGES = [
    ("max_memory_pages = 100", "max_memory_pages = 101"),
    ("fuel = 1000000", "fuel = 1000001"),
    ("fuel = 1000000\n", ""),
    ("epoch_deadline = 5", "epoch_deadline = 6"),
    ("epoch_deadline = 5\n", ""),
    ("read_only = true", "read_only = false"),
    ('guest = "/data"', 'guest = "/data2"'),
    ('path = "/srv/data"', 'path = "/srv"'),
    ("preopened_dirs = [", 'preopened_dirs = [{ guest = "/x", path = "/srv" }, '),
    ('module = "/app/main.wasm"', 'module = "/etc/app.conf"'),
    ('memory_limit = "32M"', 'memory_limit = "33M"'),
]


def test_every_measured_field_changes_the_measurement(rootfs):
    seen = {m_of(NATIVE, rootfs), m_of(WASM, rootfs)}
    for base, changes in ((NATIVE, NATIVE_CHANGES), (WASM, WASM_CHANGES)):
        for old, new in changes:
            assert old in base
            seen.add(m_of(base.replace(old, new), rootfs))
    assert len(seen) == 2 + len(NATIVE_CHANGES) + len(WASM_CHANGES)


@pytest.mark.parametrize("rel", ["bin/app", "lib/libc.so.6", "etc/app.conf"])
def test_any_trusted_byte_changes_the_measurement(rootfs, rel):
    before = m_of(NATIVE, rootfs)
    path = pathlib.Path(rootfs, rel)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(data)
    assert m_of(NATIVE, rootfs) != before


def test_module_bytes_change_the_measurement(rootfs):
    before = m_of(WASM, rootfs)
    with open(os.path.join(rootfs, "app/main.wasm"), "ab") as f:
        f.write(b"\x00")  # a custom section would follow; any byte counts
    assert m_of(WASM, rootfs) != before


def test_pinned_manifest_names_the_changed_file(rootfs):
    pinned = expand_trusted_files(parse_manifest(NATIVE, "enclave.manifest.toml"), rootfs)
    with open(os.path.join(rootfs, "etc/app.conf"), "ab") as f:
        f.write(b"x")
    with pytest.raises(
        ManifestError, match=r"^enclave.manifest.toml: trusted_files\[2\].sha256: mismatch for /etc/app.conf$"
    ):
        measure(pinned, rootfs)
    wasm = expand_trusted_files(parse_manifest(WASM, "w.toml"), rootfs)
    with open(os.path.join(rootfs, "app/main.wasm"), "ab") as f:
        f.write(b"x")
    with pytest.raises(ManifestError, match=r"^w.toml: wasm.module_sha256: mismatch for /app/main.wasm$"):
        measure(wasm, rootfs)


def test_signed_fields_are_not_measured_as_in_sgx(rootfs):
    # SGX: ISVPRODID, ISVSVN and DEBUG live in SIGSTRUCT/SECS.ATTRIBUTES, not MRENCLAVE.
    reference = m_of(NATIVE, rootfs)
    assert m_of(NATIVE.replace("isv_svn = 3", "isv_svn = 4"), rootfs) == reference
    assert m_of(NATIVE.replace("isv_prod_id = 7", "isv_prod_id = 8"), rootfs) == reference
    debug = NATIVE.replace("isv_svn = 3", "isv_svn = 3\ndebug = true")
    assert parse_manifest(debug).debug
    assert m_of(debug, rootfs) == reference


def test_measured_manifest_needs_pinned_hashes():
    with pytest.raises(ManifestError, match=r"trusted_files\[0\].sha256: missing for /bin/app"):
        measurement_of(parse_manifest(NATIVE))


# An independent implementation of the encoding documented in measure.py, for one small manifest.
def _s(text: str) -> bytes:
    raw = text.encode()
    return b"S" + struct.pack(">I", len(raw)) + raw


def _list(*items: bytes) -> bytes:
    return b"L" + struct.pack(">I", len(items)) + b"".join(items)


def _dict(**items: bytes) -> bytes:
    keys = sorted(items, key=str.encode)
    return b"D" + struct.pack(">I", len(keys)) + b"".join(_s(k) + items[k] for k in keys)


def test_known_answer_for_the_documented_encoding(rootfs):
    text = 'runtime = "native"\nentrypoint = "/bin/app"\nmemory_limit = 4096\ntrusted_files = ["/bin/app"]\n'
    digest = bytes.fromhex(sha(b"\x7fELF app v1"))
    document = _dict(
        runtime=_s("native"),
        entrypoint=_s("/bin/app"),
        memory_limit=b"I" + struct.pack(">Q", 4096),
        argv=_dict(policy=_s("fixed"), values=_list(_s("/bin/app"))),
        env=_dict(fixed=_dict(), passthrough=_list()),
        trusted_files=_dict(**{"/bin/app": b"B" + struct.pack(">I", 32) + digest}),
        allowed_files=_list(),
        wasm=b"N",
    )
    expected = hashlib.sha256(b"inclavare/enclave-measurement/v1\0" + document).digest()
    assert m_of(text, rootfs) == expected
