"""enclave.* annotations and ENCLAVE_* env -> EnclaveConfig; SGX host resources."""

from __future__ import annotations

import os
import stat

import pytest

from inclavare.enclave.config import EnclaveConfig, enclave_config, host_resources, sgx_host_resources
from inclavare.enclave.errors import EnclaveConfigError, EnclaveUnavailable


@pytest.fixture
def lib(tmp_path) -> str:
    path = tmp_path / "liberpal-x.so"
    path.write_bytes(b"")  # only its existence is checked here
    return str(path)


def error_of(annotations: dict[str, str], env: list[str]) -> str:
    with pytest.raises(EnclaveConfigError) as err:
        enclave_config(annotations, env)
    return str(err.value)


def test_no_type_means_runc_behaviour_and_env_untouched(lib):
    env = ["PATH=/bin", f"ENCLAVE_RUNTIME_PATH={lib}", "ENCLAVE_RUNTIME_ARGS=debug"]
    assert enclave_config({"enclave.runtime.path": lib}, env) == (None, env)
    assert enclave_config({}, ["ENCLAVE_TYPE="]) == (None, ["ENCLAVE_TYPE="])


def test_annotations_alone(lib):
    annotations = {
        "enclave.type": "intelSgx",
        "enclave.runtime.path": lib,
        "enclave.runtime.args": "debug,no-epm",
        "enclave.runtime.loglevel": "debug",
        "other": "x",
    }
    config, env = enclave_config(annotations, ["PATH=/bin"])
    assert config == EnclaveConfig("intelSgx", lib, "debug no-epm", "debug")
    assert env == ["PATH=/bin"]


def test_env_wins_and_is_removed_from_the_workload(lib, tmp_path):
    other = str(tmp_path / "liberpal-y.so")
    open(other, "w").close()
    annotations = {"enclave.type": "intelSgx", "enclave.runtime.path": other, "enclave.runtime.loglevel": "off"}
    env = [
        "A=1",
        "ENCLAVE_TYPE=software",
        f"ENCLAVE_RUNTIME_PATH={lib}",
        "B=2",
        "ENCLAVE_RUNTIME_ARGS=a,b c",
        "ENCLAVE_RUNTIME_LOGLEVEL=ERROR",
        "ENCLAVE_OTHER=kept",
    ]
    config, rest = enclave_config(annotations, env)
    assert config == EnclaveConfig("software", lib, "a b c", "error")
    assert rest == ["A=1", "B=2", "ENCLAVE_OTHER=kept"]


def test_one_character_values_count(lib):
    """The original ignored values of length 1 (a `len(value) > 1` check)."""
    config, _ = enclave_config({"enclave.type": "software", "enclave.runtime.path": lib}, ["ENCLAVE_RUNTIME_ARGS=x"])
    assert config is not None
    assert config.args == "x"


def test_an_empty_env_value_falls_back_to_the_annotation_but_is_removed(lib):
    annotations = {"enclave.type": "software", "enclave.runtime.path": lib, "enclave.runtime.args": "debug"}
    config, rest = enclave_config(annotations, ["ENCLAVE_RUNTIME_ARGS=", "ENCLAVE_TYPE="])
    assert config == EnclaveConfig("software", lib, "debug", "info")
    assert rest == []


def test_the_last_env_entry_of_a_name_wins(lib):
    env = ["ENCLAVE_TYPE=intelSgx", "ENCLAVE_TYPE=software", f"ENCLAVE_RUNTIME_PATH={lib}"]
    config, _ = enclave_config({}, env)
    assert config is not None
    assert config.type == "software"


def test_defaults(lib):
    config, _ = enclave_config({"enclave.type": "software", "enclave.runtime.path": lib}, [])
    assert config == EnclaveConfig("software", lib, "", "info")


def test_errors_name_their_source(lib):
    assert error_of({"enclave.type": "AwsNitroEnclaves"}, []) == (
        "enclave.type: unsupported enclave type 'AwsNitroEnclaves' (supported: intelSgx, software)"
    )
    assert error_of({}, ["ENCLAVE_TYPE=sgx"]) == (
        "ENCLAVE_TYPE: unsupported enclave type 'sgx' (supported: intelSgx, software)"
    )
    assert error_of({"enclave.type": "software"}, []) == (
        "enclave.runtime.path: not set, but an enclave runtime is needed (or set ENCLAVE_RUNTIME_PATH)"
    )
    assert error_of({"enclave.type": "software"}, ["ENCLAVE_RUNTIME_PATH=/nonexistent/liberpal.so"]) == (
        "ENCLAVE_RUNTIME_PATH: enclave runtime /nonexistent/liberpal.so: no such file"
    )
    assert error_of({"enclave.type": "software", "enclave.runtime.path": "rel/lib.so"}, []) == (
        "enclave.runtime.path: enclave runtime rel/lib.so: a PAL library path must be absolute"
    )
    levels = "(one of trace, debug, info, warning, error, fatal, panic, off)"
    base = {"enclave.type": "software", "enclave.runtime.path": lib}
    assert error_of({**base, "enclave.runtime.loglevel": "loud"}, []) == (
        f"enclave.runtime.loglevel: invalid log level 'loud' {levels}"
    )
    assert error_of(base, ["ENCLAVE_RUNTIME_LOGLEVEL=v"]) == f"ENCLAVE_RUNTIME_LOGLEVEL: invalid log level 'v' {levels}"


def test_unknown_runtime_name(lib):
    msg = error_of({"enclave.type": "software", "enclave.runtime.path": "no-such-runtime"}, [])
    assert msg.startswith("enclave.runtime.path: enclave runtime no-such-runtime: no runtime registered")


def test_state_round_trip(lib):
    config = EnclaveConfig("intelSgx", lib, "debug no-epm", "warning")
    as_json = config.to_json()
    assert as_json == {"type": "intelSgx", "path": lib, "args": "debug no-epm", "loglevel": "warning"}
    assert EnclaveConfig.from_json(as_json) == config
    for bad in (None, [], {"type": "intelSgx"}, {**as_json, "args": 3}):
        with pytest.raises(EnclaveConfigError, match=r"^state\.json: enclave_config: expected strings"):
            EnclaveConfig.from_json(bad)


def test_software_needs_nothing_from_the_host(lib):
    assert host_resources(EnclaveConfig("software", lib)) == ([], [])


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
