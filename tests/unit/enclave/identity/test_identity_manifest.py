"""Manifest parsing: the model, located errors, template expansion and TOML output."""

from __future__ import annotations

import dataclasses

import pytest
from identity_data import NATIVE, WASM, sha

from inclavare.enclave.identity import (
    ManifestError,
    dump_manifest,
    expand_trusted_files,
    load_manifest,
    parse_manifest,
)


def test_native_manifest_model():
    m = parse_manifest(NATIVE)
    assert m.runtime == "native"
    assert m.entrypoint == "/bin/app"
    assert m.memory_limit == 64 << 20
    assert (m.isv_prod_id, m.isv_svn, m.debug) == (7, 3, False)
    assert m.argv == ("/bin/app", "--serve")
    assert m.env_fixed == (("LEVEL", "3"), ("MODE", "prod"))
    assert m.env_passthrough == ("LANG", "TZ")
    assert m.allowed_files == ("/tmp/scratch", "/var/log/app.log")
    assert [t.path for t in m.trusted_files] == ["/bin/app", "/lib/libc.so", "/etc/app.conf"]
    assert m.is_template


def test_wasm_manifest_model():
    m = parse_manifest(WASM)
    assert m.entrypoint is None
    assert m.wasm is not None
    assert (m.wasm.module, m.wasm.max_memory_pages, m.wasm.fuel, m.wasm.epoch_deadline) == (
        "/app/main.wasm",
        100,
        1000000,
        5,
    )
    assert m.wasm.preopened_dirs[0].guest == "/data"
    assert m.wasm.preopened_dirs[0].read_only
    assert m.argv == ("/app/main.wasm",)  # default argv[0] is the program


def test_defaults():
    m = parse_manifest('runtime = "native"\nentrypoint = "/a"\ntrusted_files = ["/a"]\n')
    assert (m.memory_limit, m.isv_prod_id, m.isv_svn, m.debug) == (256 << 20, 0, 0, False)
    assert (m.argv_policy, m.argv, m.env_fixed, m.env_passthrough) == ("fixed", ("/a",), (), ())
    w = parse_manifest('runtime = "wasm"\nmemory_limit = "1M"\n[wasm]\nmodule = "/m.wasm"\n')
    assert w.wasm is not None
    assert w.wasm.max_memory_pages == 16


def test_paths_are_normalised():
    m = parse_manifest('runtime = "native"\nentrypoint = "//bin/./app"\ntrusted_files = ["/bin//app/"]\n')
    assert m.entrypoint == "/bin/app"
    assert m.trusted_files[0].path == "/bin/app"


BAD = [
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\nisv_svn = 70000",
        "isv_svn: must be an integer 0..65535",
    ),
    ("runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\nisv_svn = -1", "isv_svn: must be an integer 0..65535"),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\nisv_prod_id = true",
        "isv_prod_id: must be an integer",
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\ndebug = 1",
        "debug: must be true or false, not a number",
    ),
    ("runtime = 'sgx'", 'runtime: must be "native" or "wasm", not \'sgx\''),
    ("entrypoint = '/a'", "runtime: is required"),
    ("runtime = 'native'", "entrypoint: is required"),
    ("runtime = 'native'\nentrypoint = '/a'", "entrypoint: /a is not listed in trusted_files"),
    ("runtime = 'native'\nentrypoint = 'a'\ntrusted_files=['/a']", "entrypoint: 'a' must be an absolute path"),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a', '/x/../a']",
        "trusted_files[1]: '/x/../a' must not contain '..'",
    ),
    ("runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a', '//a']", "trusted_files[1]: /a is listed twice"),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=[{path='/a', sha256='abc'}]",
        "trusted_files[0].sha256: must be 64 hex digits",
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=[{path='/a', hash='x'}]",
        "trusted_files[0].hash: unknown key",
    ),
    ("runtime = 'native'\nentrypoint='/a'\ntrusted_files=[1]", "trusted_files[0]: must be a table, not a number"),
    ("runtime = 'native'\nentrypoint='/a'\ntrusted_file=['/a']", "trusted_file: unknown key"),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\nallowed_files=['/a']",
        "allowed_files[0]: /a is also a trusted file",
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\nmemory_limit='lots'",
        "memory_limit: must be a positive number",
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\nmemory_limit=0",
        "memory_limit: must be a positive number",
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\n[argv]\npolicy='any'",
        'argv.policy: must be "fixed" or "host"',
    ),
    ("runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\n[argv]\nvalues=[]", "argv.values: must not be empty"),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\n[argv]\npolicy='host'\nvalues=['x']",
        'argv.values: not allowed with policy = "host"',
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\n[env]\npassthrough=['A=B']",
        "env.passthrough[0]: 'A=B' is not a valid",
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\n[env]\npassthrough=['A']\nfixed={A='1'}",
        "env.fixed.A: is also in env.passthrough",
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\n[env]\nfixed={A=1}",
        "env.fixed.A: must be a string, not a number",
    ),
    (
        "runtime = 'native'\nentrypoint='/a'\ntrusted_files=['/a']\n[wasm]\nmodule='/m'",
        'wasm: only allowed with runtime = "wasm"',
    ),
    ("runtime = 'wasm'", 'wasm: is required with runtime = "wasm"'),
    ("runtime = 'wasm'\nentrypoint = '/a'\n[wasm]\nmodule='/m'", 'entrypoint: only allowed with runtime = "native"'),
    (
        "runtime = 'wasm'\nmemory_limit='1M'\n[wasm]\nmodule='/m'\nmax_memory_pages=17",
        "wasm.max_memory_pages: must be an integer 1..16",
    ),
    ("runtime = 'wasm'\n[wasm]\nmodule='/m'\nfuel=0", "wasm.fuel: must be an integer 1.."),
    (
        "runtime = 'wasm'\n[wasm]\nmodule='/m'\npreopened_dirs=[{guest='/d', path='/a'}, {guest='/d', path='/b'}]",
        "wasm.preopened_dirs: the same guest directory is listed twice",
    ),
    (
        "runtime = 'wasm'\n[wasm]\nmodule='/m'\npreopened_dirs=[{guest='d', path='/a'}]",
        "wasm.preopened_dirs[0].guest: 'd' must be an absolute path",
    ),
    ("runtime = 'wasm'\n[wasm]\nmodule='/m'\nstart='x'", "wasm.start: unknown key"),
    ("runtime = 'native\n", "malformed TOML"),
    ("created = 1979-05-27\nruntime='native'", "created: unknown key"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_manifest_is_one_located_error(text, message):
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "enclave.manifest.toml")
    text_of_error = str(info.value)
    assert text_of_error.startswith("enclave.manifest.toml: ")
    assert message in text_of_error
    assert "\n" not in text_of_error


def test_not_utf8_and_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="not UTF-8"):
        parse_manifest(b"runtime = '\xff'", "m.toml")
    missing = str(tmp_path / "nope.toml")
    with pytest.raises(ManifestError, match=f"^{missing}: No such file"):
        load_manifest(missing)


def test_expand_pins_hashes_and_dump_round_trips(rootfs):
    for text in (NATIVE, WASM):
        template = parse_manifest(text, "t.toml")
        expanded = expand_trusted_files(template, rootfs)
        assert not expanded.is_template
        again = parse_manifest(dump_manifest(expanded), "t.toml")
        assert again == expanded
    native = expand_trusted_files(parse_manifest(NATIVE), rootfs)
    by_path = {t.path: t.sha256.hex() for t in native.trusted_files}
    assert by_path["/bin/app"] == sha(b"\x7fELF app v1")
    assert by_path["/lib/libc.so"] == sha(b"libc bytes")  # the symlink resolved inside the rootfs


def test_dump_escapes_awkward_strings(rootfs):
    m = parse_manifest(NATIVE)
    weird = dataclasses.replace(
        m, argv=("/bin/app", 'quote " back \\ tab\t nl\n del\x7f é 😀'), env_fixed=(("A.B c", "x"),)
    )
    assert parse_manifest(dump_manifest(weird)) == weird


def test_expand_refuses_wrong_pinned_hash_and_missing_files(rootfs):
    wrong = NATIVE.replace('"/etc/app.conf"]', f'{{path = "/etc/app.conf", sha256 = "{sha(b"other")}"}}]')
    with pytest.raises(ManifestError, match=r"^m.toml: trusted_files\[2\].sha256: mismatch for /etc/app.conf$"):
        expand_trusted_files(parse_manifest(wrong, "m.toml"), rootfs)
    missing = NATIVE.replace('"/etc/app.conf"]', '"/etc/missing"]')
    with pytest.raises(ManifestError, match=r"trusted_files\[2\]: /etc/missing: No such file or directory in rootfs"):
        expand_trusted_files(parse_manifest(missing, "m.toml"), rootfs)
    directory = NATIVE.replace('"/etc/app.conf"]', '"/etc"]')
    with pytest.raises(ManifestError, match=r"trusted_files\[2\]: /etc: not a regular file"):
        expand_trusted_files(parse_manifest(directory, "m.toml"), rootfs)


def test_symlink_cannot_escape_rootfs(rootfs, tmp_path):
    (tmp_path / "outside").write_bytes(b"host file")
    import os

    os.symlink("../../outside", os.path.join(rootfs, "etc/escape"))
    os.symlink(str(tmp_path / "outside"), os.path.join(rootfs, "etc/escape-abs"))
    for name in ("escape", "escape-abs"):
        text = NATIVE.replace('"/etc/app.conf"]', f'"/etc/{name}"]')
        with pytest.raises(ManifestError, match="No such file or directory in rootfs"):
            expand_trusted_files(parse_manifest(text), rootfs)
