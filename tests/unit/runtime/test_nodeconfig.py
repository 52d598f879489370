"""/etc/inclavare/rune.toml: defaults, located refusals, the administrator's file only."""

from __future__ import annotations

import os

import pytest

from inclavare.errors import InclavareError, SpecError
from inclavare.runtime import nodeconfig
from inclavare.runtime.context import RuntimeContext


def parse(text: str):
    return nodeconfig.parse(text.encode(), "/etc/inclavare/rune.toml")


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as err:
        parse(text)
    return str(err.value)


def test_defaults():
    cfg = parse("")
    assert (cfg.pal_dirs, cfg.required_by) == (("/usr/lib/inclavare/pal", "/opt/inclavare/pal"), "")


def test_settings():
    cfg = parse('[enclave]\npal_dirs = ["/srv/pal/", "/opt/x"]\nrequired = true\n')
    assert cfg.pal_dirs == ("/srv/pal", "/opt/x")
    assert cfg.required_by == "enclave.required in /etc/inclavare/rune.toml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[enclave]\nrequird = true\n", "enclave.requird: unknown setting (known: pal_dirs, pool_socket, required)"),
        ("[enclaves]\n", "enclaves: unknown setting (known tables: enclave)"),
        ("required = true\n", "required: unknown setting (known tables: enclave)"),
        ('[enclave]\nrequired = "yes"\n', "enclave.required: must be true or false"),
        ('[enclave]\npal_dirs = "/x"\n', "enclave.pal_dirs: must be an array of absolute directory paths"),
        ('[enclave]\npal_dirs = ["rel"]\n', "enclave.pal_dirs: must be an array of absolute directory paths"),
        ("[enclave\n", "line 1: a table header must end with ']'"),
    ],
)
def test_refusals_are_located(text, message):
    assert error_of(text) == f"/etc/inclavare/rune.toml: {message}"


def test_not_utf8():
    with pytest.raises(SpecError, match=r"rune\.toml: not UTF-8$"):
        nodeconfig.parse(b"\xff", "/etc/inclavare/rune.toml")


def test_a_missing_default_file_means_defaults_but_an_explicit_one_must_exist(tmp_path, monkeypatch):
    monkeypatch.setattr(nodeconfig, "DEFAULT_PATH", str(tmp_path / "absent.toml"))
    assert nodeconfig.load().pal_dirs == nodeconfig.DEFAULT_PAL_DIRS
    with pytest.raises(InclavareError, match=r"^rune configuration .*absent\.toml: No such file or directory$"):
        nodeconfig.load(str(tmp_path / "absent.toml"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a file owned by another user")
def test_a_file_someone_else_owns_is_refused(tmp_path):
    path = tmp_path / "rune.toml"
    path.write_text("[enclave]\nrequired = false\n")
    os.chown(path, 1000, 1000)
    with pytest.raises(InclavareError, match=r"is owned by uid 1000, not root$"):
        nodeconfig.load(str(path))


def test_the_flag_overrides_the_file(tmp_path):
    path = tmp_path / "rune.toml"
    path.write_text("[enclave]\nrequired = false\n")
    assert RuntimeContext(config_path=str(path)).node().required_by == ""
    ctx = RuntimeContext(config_path=str(path), enclave_required=True)
    assert ctx.node().required_by == "rune --enclave-required"
    assert ctx.node() is ctx.node()  # read once


def test_the_pool_socket_is_absolute_or_off():
    assert nodeconfig.parse(b"", "/etc/inclavare/rune.toml").pool_socket == "/run/inclavare/epm-pool.sock"
    assert nodeconfig.parse(b'[enclave]\npool_socket = ""\n', "f").pool_socket == ""
    with pytest.raises(SpecError, match=r'enclave.pool_socket: must be an absolute path, or "" for no pool'):
        nodeconfig.parse(b'[enclave]\npool_socket = "run/pool.sock"\n', "f")
