"""The operator's settings (deviceplugin/config.py): flags, a TOML file, re-read when it changes."""

from __future__ import annotations

import os

import pytest

from inclavare.deviceplugin.config import SettingsFile, parse
from inclavare.deviceplugin.errors import DevicePluginError
from inclavare.deviceplugin.resources import Settings

DEFAULTS = Settings(enclave_memory_mib=8)


def test_file_keys_override_the_flags():
    assert parse(b"enclave_memory_mib = 4096\n", "dp.toml", DEFAULTS) == Settings(4096)
    assert parse(b"sgx_provision_limit = 3\n", "dp.toml", DEFAULTS) == Settings(8, 110, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"enclave_memory = 1\n", "dp.toml: enclave_memory: unknown setting (known: enclave_memory_mib, "
                                  "sgx_enclave_limit, sgx_provision_limit)"),
        (b'enclave_memory_mib = "1G"\n', "dp.toml: enclave_memory_mib: must be an integer, not '1G'"),
        (b"enclave_memory_mib = true\n", "dp.toml: enclave_memory_mib: must be an integer, not True"),
        (b"enclave_memory_mib = -1\n", "dp.toml: enclave_memory_mib: -1 is out of range (0 to 131072)"),
        (b"sgx_enclave_limit = 0\n", "dp.toml: sgx_enclave_limit: 0 is out of range (1 to 100000)"),
        (b"enclave_memory_mib = \n", "dp.toml: not valid TOML (Invalid value (at line 1, column 22))"),
        (b"\xff", "dp.toml: not valid TOML ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)"),
    ],
)  # fmt: skip
def test_file_errors_are_located(text, message):
    with pytest.raises(DevicePluginError) as err:
        parse(text, "dp.toml", DEFAULTS)
    assert str(err.value) == message


def test_flags_out_of_range():
    with pytest.raises(DevicePluginError) as err:
        SettingsFile(None, Settings(enclave_memory_mib=1 << 20))
    assert str(err.value) == "--enclave-memory-mib: 1048576 is out of range (0 to 131072)"


def test_reload_reads_again_only_when_the_file_changed(tmp_path):
    path = tmp_path / "dp.toml"
    path.write_text("enclave_memory_mib = 16\n")
    settings = SettingsFile(str(path), DEFAULTS)
    assert settings.settings.enclave_memory_mib == 16
    assert settings.reload() is False
    new = tmp_path / "new"
    new.write_text("enclave_memory_mib = 32\n")
    os.replace(new, path)
    assert settings.reload() is True
    assert settings.settings.enclave_memory_mib == 32
    path.write_text("enclave_memory_mib = [\n")
    with pytest.raises(DevicePluginError):
        settings.reload()
    assert settings.settings.enclave_memory_mib == 32  # the settings in force stay
    assert settings.reload() is False  # and the same bad file is reported once
    path.unlink()
    with pytest.raises(DevicePluginError, match="No such file or directory"):
        settings.reload()


def test_a_bad_file_at_start_is_an_error(tmp_path):
    with pytest.raises(DevicePluginError, match=r"dp\.toml: No such file or directory"):
        SettingsFile(str(tmp_path / "dp.toml"), DEFAULTS)
