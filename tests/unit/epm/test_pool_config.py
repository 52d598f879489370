"""epm's [pool] section: templates read from their bundles at load, every mistake one located line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inclavare.enclave.pool.key import pool_key
from inclavare.epm import config
from inclavare.epm.errors import EpmError

ANNOTATIONS = {"enclave.type": "software", "enclave.runtime.path": "wasm",
               "enclave.runtime.args": "manifest=/app/m.toml,fuel=1000"}  # fmt: skip


def bundle(directory, annotations=ANNOTATIONS, env=(), files=True) -> str:
    rootfs = directory / "rootfs"
    (rootfs / "app").mkdir(parents=True)
    if files:
        (rootfs / "app" / "m.toml").write_bytes(b"manifest")
        (rootfs / "app" / "m.toml.sig").write_bytes(b"signature")
    cfg = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "annotations": annotations,
           "process": {"cwd": "/", "args": ["/app/x"], "env": list(env), "user": {"uid": 0, "gid": 0}}}  # fmt: skip
    (directory / "config.json").write_text(json.dumps(cfg))
    return str(directory)


def pool(entries: str, head: str = "") -> bytes:
    return f"[pool]\n{head}{entries}".encode()


def test_an_entry_is_read_from_its_bundle(tmp_path):
    b = bundle(tmp_path / "hello")
    c = config.parse(pool(f'socket = "/run/p/pool.sock"\nmetrics_address = "127.0.0.1:9465"\n'
                          f'[[pool.enclaves]]\nbundle = "{b}"\nsize = 2\n'), "c.toml")  # fmt: skip
    (t,) = c.enclaves
    assert (c.socket, c.metrics_address) == ("/run/p/pool.sock", "127.0.0.1:9465")
    expected = (b, 2, os.path.join(b, "rootfs"), "wasm", "manifest=/app/m.toml fuel=1000", "software")
    assert (t.bundle, t.size, t.rootfs, t.runtime, t.args, t.tee) == expected
    assert t.key == pool_key("wasm", "manifest=/app/m.toml fuel=1000", b"manifest", b"signature")  # what init computes


def test_defaults_no_pool(tmp_path):
    c = config.parse(b"", "c.toml")
    assert (c.socket, c.metrics_address, c.enclaves) == ("/run/inclavare/epm-pool.sock", "", ())


def test_settings_from_the_environment_count_as_rune_reads_them(tmp_path):
    b = bundle(tmp_path / "env", annotations={}, env=["ENCLAVE_TYPE=software", "ENCLAVE_RUNTIME_PATH=native",
                                                       "ENCLAVE_RUNTIME_ARGS=manifest=/app/m.toml"])  # fmt: skip
    (t,) = config.parse(pool(f'[[pool.enclaves]]\nbundle = "{b}"\n'), "c.toml").enclaves
    assert (t.runtime, t.size) == ("native", 1)


@pytest.mark.parametrize(("entry", "message"), [
    ('bundle = "relative"\n', "c.toml: pool.enclaves[0].bundle: 'relative' is not an absolute path"),
    ("size = 1\n", "c.toml: pool.enclaves[0].bundle: None is not an absolute path"),
    ('bundle = "{b}"\nsize = 65\n', "c.toml: pool.enclaves[0].size: 65 is out of range (0 to 64)"),
    ('bundle = "{b}"\nsize = -1\n', "c.toml: pool.enclaves[0].size: -1 is out of range (0 to 64)"),
    ('bundle = "{b}"\nsize = true\n', "c.toml: pool.enclaves[0].size: must be an integer, not True"),
    ('bundle = "{b}"\nsize = 2.0\n', "c.toml: pool.enclaves[0].size: must be an integer, not 2.0"),
    ('bundle = "{b}"\nsise = 2\n', "c.toml: pool.enclaves[0].sise: unknown setting (known: bundle, size)"),
    ('bundle = "{b}/absent"\n', "c.toml: pool.enclaves[0].bundle: {b}/absent/config.json: no such file"),
])  # fmt: skip
def test_bad_entries(tmp_path, entry, message):
    b = bundle(tmp_path / "b")
    with pytest.raises(EpmError) as info:
        config.parse(pool("[[pool.enclaves]]\n" + entry.replace("{b}", b)), "c.toml")
    assert str(info.value).startswith(message.replace("{b}", b))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("annotations", "files", "message"), [
    ({}, True, "config.json: annotations: no enclave settings"),
    ({**ANNOTATIONS, "enclave.runtime.path": "/usr/lib/libpal.so"}, True,
     "config.json: annotations.enclave.runtime.path: '/usr/lib/libpal.so' is not a built-in runtime"),
    ({**ANNOTATIONS, "enclave.runtime.path": "occlum"}, True, "'occlum' is not a built-in runtime"),
    ({**ANNOTATIONS, "enclave.type": "intelSgx"}, True,
     "config.json: annotations.enclave.type: 'intelSgx': the built-in runtimes are software enclaves"),
    ({**ANNOTATIONS, "enclave.tpye": "software"}, True, "annotations.enclave.tpye"),
    ({**ANNOTATIONS, "enclave.runtime.args": "fuel=1"}, True, "/rootfs: enclave.runtime.args: manifest=: is required"),
    (ANNOTATIONS, False, "/rootfs: enclave pool: /app/m.toml: No such file or directory"),
])  # fmt: skip
def test_bad_bundles_are_refused_at_load(tmp_path, annotations, files, message):
    b = bundle(tmp_path / "b", annotations=annotations, files=files)
    with pytest.raises(EpmError) as info:
        config.parse(pool(f'[[pool.enclaves]]\nbundle = "{b}"\n'), "c.toml")
    text = str(info.value)
    assert text.startswith("c.toml: pool.enclaves[0].bundle: "), text
    assert message in text
    assert "\n" not in text


def test_two_entries_for_one_enclave_are_refused(tmp_path):
    b = bundle(tmp_path / "b")
    with pytest.raises(EpmError, match=r"^c\.toml: pool\.enclaves\[1\]\.bundle: prepares the same enclave .* entry 0"):
        config.parse(pool(f'[[pool.enclaves]]\nbundle = "{b}"\n[[pool.enclaves]]\nbundle = "{b}/."\n'), "c.toml")


@pytest.mark.parametrize(("text", "message"), [
    ('[pool]\nsocket = "pool.sock"\n', "c.toml: pool.socket: 'pool.sock' is not an absolute path"),
    (f'[pool]\nsocket = "/{"x" * 120}"\n', "c.toml: pool.socket: too long for a unix socket (at most 107 bytes)"),
    ('[pool]\nmetrics_address = "9465"\n', "c.toml: pool.metrics_address: '9465' is not host:port"),
    ('[pool]\nmetrics_address = "localhost:0"\n', "c.toml: pool.metrics_address: 'localhost:0' is not host:port"),
    ("[pool]\nmetrics_address = 9465\n", "c.toml: pool.metrics_address: must be a string, not 9465"),
    ("[pool]\nsize = 2\n", "c.toml: pool.size: unknown setting (known: "),
    ("[pool]\nenclaves = 3\n", "c.toml: pool.enclaves: must be an array of tables ([[pool.enclaves]])"),
    ("[pool]\nenclaves = [1]\n", "c.toml: pool.enclaves[0]: must be a table"),
    ("pool = 1\n", "c.toml: pool: must be a table"),
    ("[[pool.enclaves]]\nbundle = \n", "c.toml: line 2: "),
])  # fmt: skip
def test_bad_pool_settings(text, message):
    with pytest.raises(EpmError) as info:
        config.parse(text.encode(), "c.toml")
    assert str(info.value).startswith(message), str(info.value)


def test_metrics_address_forms():
    for address in ("", "127.0.0.1:9465", "[::1]:9465", "localhost:65535"):
        assert config.parse(f'[pool]\nmetrics_address = "{address}"\n'.encode(), "c.toml").metrics_address == address


def test_serve_with_a_bad_entry_is_one_line(tmp_path):
    b = bundle(tmp_path / "b", annotations={**ANNOTATIONS, "enclave.runtime.path": "occlum"})
    path = tmp_path / "epm.toml"
    path.write_text(f'[[pool.enclaves]]\nbundle = "{b}"\n')
    r = subprocess.run([sys.executable, "-m", "inclavare.cli.tool._main", "epm", "serve", "--config", str(path)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.startswith(f"inclavare epm: {path}: pool.enclaves[0].bundle: {b}/config.json: "
                               "annotations.enclave.runtime.path: 'occlum' is not a built-in runtime")  # fmt: skip
    assert r.stderr.count("\n") == 1


def test_the_refill_delay_is_bounded_milliseconds():
    assert config.parse(b"", "epm.toml").refill_delay_ms == 1000
    assert config.parse(b"[pool]\nrefill_delay_ms = 0\n", "epm.toml").refill_delay_ms == 0
    with pytest.raises(EpmError, match=r"epm.toml: pool.refill_delay_ms: 60001 is out of range \(0 to 60000\)"):
        config.parse(b"[pool]\nrefill_delay_ms = 60001\n", "epm.toml")
