"""enclave.* annotations and ENCLAVE_* env -> EnclaveConfig; SGX host resources."""

from __future__ import annotations

import os
import stat

import pytest

from inclavare.enclave.config import EnclaveConfig, host_resources, read_settings, sgx_host_resources
from inclavare.enclave.config import enclave_config as config_of
from inclavare.enclave.errors import EnclaveConfigError, EnclaveUnavailable

LIB = "/usr/lib/inclavare/pal/liberpal-x.so"  # not opened here: enclave_setup/registry check paths


def enclave_config(annotations: dict[str, str], env: list[str]) -> tuple[EnclaveConfig | None, list[str]]:
    settings = read_settings(annotations, env)
    return config_of(settings), settings.env


def error_of(annotations: dict[str, str], env: list[str]) -> str:
    with pytest.raises(EnclaveConfigError) as err:
        enclave_config(annotations, env)
    return str(err.value)


def test_no_setting_means_runc_behaviour_and_env_untouched():
    env = ["PATH=/bin", "HOME=/root", "MY_ENCLAVE_NAME=x"]
    assert enclave_config({"other": "x"}, env) == (None, env)
    assert enclave_config({}, ["ENCLAVE_TYPE="]) == (None, [])  # empty: unset, but still rune's variable


def test_settings_without_a_type_are_refused_not_ignored():
    """A dropped or misspelt type must not run the workload unprotected."""
    assert error_of({"enclave.runtime.path": "wasm"}, []) == (
        "annotations.enclave.runtime.path: is an enclave setting, but enclave.type (or ENCLAVE_TYPE) is not set: "
        "refusing to run the container without an enclave (set the type to one of intelSgx, software)"
    )
    assert error_of({}, ["ENCLAVE_KBS_URL=https://kbs"]).startswith(
        "process.env ENCLAVE_KBS_URL: is an enclave setting"
    )


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("enclave-type", "enclave.type"),
        ("enclave_type", "enclave.type"),
        ("Enclave.Type", "enclave.type"),
        ("ENCLAVE_TYPE", "enclave.type"),
        ("ENCLAVE-TYPE", "enclave.type"),
        ("encalve.type", "enclave.type"),
        ("enclav.type", "enclave.type"),
        ("enclaves.runtime.path", "enclave.runtime.path"),
        ("enclave.runtime-path", "enclave.runtime.path"),
        ("enclave.kbs.secrets-dir", "enclave.kbs.secrets_dir"),
    ],
)
def test_near_miss_annotations_are_refused_with_the_name_meant(key, meant):
    assert error_of({key: "software"}, []) == f"annotations.{key}: not an enclave setting: did you mean {meant}?"
    # also next to a complete, valid configuration: the typo may be the one that mattered
    assert error_of({"enclave.type": "software", "enclave.runtime.path": "wasm", key: "x"}, []).startswith(
        f"annotations.{key}: "
    )


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("enclave.type", "ENCLAVE_TYPE"),
        ("ENCLAVE-TYPE", "ENCLAVE_TYPE"),
        ("Enclave_Type", "ENCLAVE_TYPE"),
        ("ENCALVE_TYPE", "ENCLAVE_TYPE"),
        ("ENCLAVE_RUNTIME-PATH", "ENCLAVE_RUNTIME_PATH"),
        ("enclave_kbs_url", "ENCLAVE_KBS_URL"),
    ],
)
def test_near_miss_variables_are_refused_with_the_name_meant(key, meant):
    assert error_of({}, [f"{key}=software"]) == f"process.env {key}: not an enclave setting: did you mean {meant}?"


def test_unknown_names_under_the_prefixes_are_refused():
    msg = error_of({"enclave.runtime.pth": "wasm"}, [])
    assert msg.startswith(
        "annotations.enclave.runtime.pth: unknown enclave setting (did you mean enclave.runtime.path?"
    )
    msg = error_of({}, ["ENCLAVE_OTHER=kept"])
    assert msg.startswith("process.env ENCLAVE_OTHER: unknown enclave setting (")
    assert "valid: ENCLAVE_KBS_RESOURCES, ENCLAVE_KBS_URL," in msg
    assert error_of({}, ["ENCLAVE_KBS_CACERT=/x"]) == (
        "process.env ENCLAVE_KBS_CACERT: enclave.kbs.cacert can only be given as an annotation"
    )


def test_names_that_only_resemble_the_prefix_pass():
    env = ["ENABLE_X=1", "ENCODE=utf8", "MY_ENCLAVE_TYPE=x", "SLAVE=1", "ENCLAVEXYZ_A=1"]
    assert enclave_config({"io.enclave.type": "x", "enclosure": "y"}, env) == (None, env)


def test_annotations_alone():
    annotations = {
        "enclave.type": "intelSgx",
        "enclave.runtime.path": LIB,
        "enclave.runtime.args": "debug,no-epm",
        "enclave.runtime.loglevel": "debug",
        "other": "x",
    }
    config, env = enclave_config(annotations, ["PATH=/bin"])
    assert config == EnclaveConfig("intelSgx", LIB, "debug no-epm", "debug")
    assert config is not None
    assert config.sources == {
        "type": "annotations.enclave.type",
        "runtime": "annotations.enclave.runtime.path",
        "args": "annotations.enclave.runtime.args",
        "log_level": "annotations.enclave.runtime.loglevel",
    }
    assert env == ["PATH=/bin"]


def test_env_wins_and_is_removed_from_the_workload():
    annotations = {"enclave.type": "intelSgx", "enclave.runtime.path": "/other.so", "enclave.runtime.loglevel": "off"}
    env = [
        "A=1",
        "ENCLAVE_TYPE=software",
        f"ENCLAVE_RUNTIME_PATH={LIB}",
        "B=2",
        "ENCLAVE_RUNTIME_ARGS=a,b c",
        "ENCLAVE_RUNTIME_LOGLEVEL=ERROR",
        "ENCLAVE_KBS_URL=https://kbs.example",
        "ENCLAVE_KBS_RESOURCES=default/key/db",
    ]
    config, rest = enclave_config(annotations, env)
    assert config == EnclaveConfig("software", LIB, "a b c", "error")
    assert rest == ["A=1", "B=2"]


def test_kbs_settings_by_env_and_annotation():
    from inclavare.enclave.provision import KbsPlan

    env = ["ENCLAVE_KBS_URL=https://kbs.example", "ENCLAVE_KBS_RESOURCES=default/key/db"]
    settings = read_settings({"enclave.kbs.secrets_dir": "/run/s"}, env)
    plan = KbsPlan.from_settings(settings)
    assert plan is not None
    assert (plan.urls, plan.resources, plan.secrets_dir) == (["https://kbs.example:443"], ["default/key/db"], "/run/s")
    bad = read_settings({}, ["ENCLAVE_KBS_URL=http://kbs.example"])
    with pytest.raises(EnclaveConfigError, match=r"^process\.env ENCLAVE_KBS_URL: 'http://kbs.example' must be https"):
        KbsPlan.from_settings(bad)


def test_one_character_values_count():
    """The original ignored values of length 1 (a `len(value) > 1` check)."""
    config, _ = enclave_config({"enclave.type": "software", "enclave.runtime.path": LIB}, ["ENCLAVE_RUNTIME_ARGS=x"])
    assert config is not None
    assert config.args == "x"


def test_an_empty_env_value_falls_back_to_the_annotation_but_is_removed():
    annotations = {"enclave.type": "software", "enclave.runtime.path": LIB, "enclave.runtime.args": "debug"}
    config, rest = enclave_config(annotations, ["ENCLAVE_RUNTIME_ARGS=", "ENCLAVE_TYPE="])
    assert config == EnclaveConfig("software", LIB, "debug", "info")
    assert rest == []


def test_the_last_env_entry_of_a_name_wins():
    env = ["ENCLAVE_TYPE=intelSgx", "ENCLAVE_TYPE=software", f"ENCLAVE_RUNTIME_PATH={LIB}"]
    config, _ = enclave_config({}, env)
    assert config is not None
    assert config.type == "software"


def test_defaults():
    config, _ = enclave_config({"enclave.type": "software", "enclave.runtime.path": LIB}, [])
    assert config == EnclaveConfig("software", LIB, "", "info")


def test_errors_name_their_source():
    assert error_of({"enclave.type": "AwsNitroEnclaves"}, []) == (
        "annotations.enclave.type: unsupported enclave type 'AwsNitroEnclaves' (supported: intelSgx, software)"
    )
    assert error_of({}, ["ENCLAVE_TYPE=sgx"]) == (
        "process.env ENCLAVE_TYPE: unsupported enclave type 'sgx' (supported: intelSgx, software)"
    )
    assert error_of({"enclave.type": "software"}, []) == (
        "annotations.enclave.runtime.path: not set, but an enclave runtime is needed (or set ENCLAVE_RUNTIME_PATH)"
    )
    levels = "(one of trace, debug, info, warning, error, fatal, panic, off)"
    base = {"enclave.type": "software", "enclave.runtime.path": LIB}
    assert error_of({**base, "enclave.runtime.loglevel": "loud"}, []) == (
        f"annotations.enclave.runtime.loglevel: invalid log level 'loud' {levels}"
    )
    assert error_of(base, ["ENCLAVE_RUNTIME_LOGLEVEL=v"]) == (
        f"process.env ENCLAVE_RUNTIME_LOGLEVEL: invalid log level 'v' {levels}"
    )


def test_state_round_trip():
    config = EnclaveConfig("intelSgx", LIB, "debug no-epm", "warning")
    as_json = config.to_json()
    assert as_json == {"type": "intelSgx", "path": LIB, "args": "debug no-epm", "loglevel": "warning"}
    assert EnclaveConfig.from_json(as_json) == config
    sourced = EnclaveConfig("software", "wasm", sources={"type": "process.env ENCLAVE_TYPE"})
    assert EnclaveConfig.from_json(sourced.to_json()).sources == {"type": "process.env ENCLAVE_TYPE"}
    for bad in (None, [], {"type": "intelSgx"}, {**as_json, "args": 3}):
        with pytest.raises(EnclaveConfigError, match=r"^state\.json: enclave_config: expected strings"):
            EnclaveConfig.from_json(bad)


def test_software_needs_nothing_from_the_host():
    assert host_resources(EnclaveConfig("software", LIB)) == ([], [])


def test_no_sgx_device_is_a_clear_error(tmp_path):
    with pytest.raises(EnclaveUnavailable) as err:
        sgx_host_resources(str(tmp_path))
    msg = str(err.value)
    assert msg.startswith("enclave.type intelSgx needs an SGX device, but this host has none of /dev/sgx_enclave,")
    assert msg.endswith("; without SGX hardware use enclave.type=software")


needs_mknod = pytest.mark.skipif(os.geteuid() != 0, reason="mknod of character devices needs root")


@needs_mknod
def test_sgx_devices_and_aesmd_mount(tmp_path):
    dev = tmp_path / "dev"
    (dev / "sgx").mkdir(parents=True)
    os.mknod(dev / "sgx_enclave", stat.S_IFCHR, os.makedev(10, 125))
    os.mknod(dev / "sgx_provision", stat.S_IFCHR, os.makedev(10, 126))
    os.chmod(dev / "sgx_enclave", 0o666)  # mknod's mode is subject to the umask
    os.chmod(dev / "sgx_provision", 0o660)
    os.symlink("../sgx_provision", dev / "sgx" / "provision")  # followed; its own path kept
    (dev / "isgx").write_text("")  # a regular file: not a device
    os.mknod(dev / "gsgx", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # not a misc device
    (tmp_path / "var" / "run" / "aesmd").mkdir(parents=True)
    devices, mounts = sgx_host_resources(str(tmp_path))
    assert [(d.path, d.type, d.major, d.minor, d.file_mode) for d in devices] == [
        ("/dev/sgx_enclave", "c", 10, 125, 0o666),
        ("/dev/sgx_provision", "c", 10, 126, 0o660),
        ("/dev/sgx/provision", "c", 10, 126, 0o660),
    ]
    assert [(m.destination, m.type, m.source, m.options) for m in mounts] == [
        ("/var/run/aesmd", "bind", str(tmp_path / "var/run/aesmd"), ["rbind", "rprivate"])
    ]


@needs_mknod
def test_no_aesmd_no_mount(tmp_path):
    (tmp_path / "dev").mkdir()
    os.mknod(tmp_path / "dev" / "isgx", stat.S_IFCHR | 0o666, os.makedev(10, 57))
    devices, mounts = host_resources(EnclaveConfig("intelSgx", "/x.so"), str(tmp_path))
    assert [d.path for d in devices] == ["/dev/isgx"]
    assert mounts == []
