"""epm's config.toml: the original's file loads, the bounds are read, mistakes are one located line."""

from __future__ import annotations

import pytest

from inclavare.epm import config
from inclavare.epm.errors import EpmError

# The original's conf/config.toml.
ORIGINAL = """\
root = "/var/local/epm"
db_path = "/etc/epm/epm.db"
db_timeout = 10

[grpc]
  address = "/var/run/epm/epm.sock"
  uid = 0
  gid = 0
  max_recv_message_size = 16777216
  max_send_message_size = 16777216
"""


def test_the_original_file_loads():
    c = config.parse(ORIGINAL.encode(), "config.toml")
    assert c == config.EpmConfig(path="config.toml", db_path="/etc/epm/epm.db")
    assert c.database == "/etc/epm/epm.db"


def test_bounds_and_default_database():
    c = config.parse(b'root = "/srv/epm"\nmax_size = 2097152\nmax_age = 3600\n', "c.toml")
    assert (c.max_size, c.max_age, c.database) == (2 << 20, 3600, "/srv/epm/epm.db")


@pytest.mark.parametrize(("text", "message"), [
    ("rot = \"/x\"\n", "c.toml: rot: unknown setting (known: "),
    ("[grpc]\nuid = 1000\n", "c.toml: grpc.uid: must be 0: epm serves root only"),
    ("[grpc]\ntcp_address = \"0.0.0.0:1\"\n", "c.toml: grpc.tcp_address: not supported"),
    ("root = \"relative\"\n", "c.toml: root: 'relative' is not an absolute path"),
    ("max_size = \"1G\"\n", "c.toml: max_size: must be an integer"),
    ("max_age = 1\n", "c.toml: max_age: 1 is out of range"),
    ("[pools]\n", "c.toml: pools: unknown table"),
    ("grpc = 1\n", "c.toml: grpc: must be a table"),
    ("root = [\n", "c.toml: line 2: "),
])  # fmt: skip
def test_mistakes_are_refused(text, message):
    with pytest.raises(EpmError) as info:
        config.parse(text.encode(), "c.toml")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_missing_default_file_means_defaults(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "DEFAULT_PATH", str(tmp_path / "absent.toml"))
    assert config.load() == config.EpmConfig()


def test_a_file_others_may_write_is_refused(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    path.chmod(0o666)
    with pytest.raises(EpmError, match=r"config\.toml"):
        config.load(str(path))


def test_serve_with_a_bad_file_is_one_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "epm.toml"
    path.write_text('[grpc]\naddress = "/tmp/x.sock"\nuid = 1000\n')
    r = subprocess.run([sys.executable, "-m", "inclavare.cli.tool._main", "epm", "serve", "--config", str(path)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr == f"inclavare epm: {path}: grpc.uid: must be 0: epm serves root only\n"
