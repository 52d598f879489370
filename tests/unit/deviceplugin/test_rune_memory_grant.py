"""rune's side of the enclave-memory grant: ENCLAVE_MEMORY_GRANT_MIB caps the enclave's memory limit
(runtime/memory_grant.py), read from the manifest as the runtime will enforce it."""

from __future__ import annotations

import os

import pytest

from inclavare.enclave.config import enclave_config, read_settings
from inclavare.enclave.errors import EnclaveConfigError
from inclavare.errors import SpecError
from inclavare.runtime.memory_grant import bound

WASM = 'runtime = "wasm"\nmemory_limit = "{limit}"\n[wasm]\nmodule = "/app/m.wasm"\n{pages}'
NATIVE = 'runtime = "native"\nentrypoint = "/bin/app"\nmemory_limit = "{limit}"\ntrusted_files = ["/bin/app"]\n'


def rootfs_with(tmp_path, text: str, path: str = "/app/enclave.toml") -> str:
    root = tmp_path / "rootfs"
    (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    (root / path.lstrip("/")).write_text(text)
    return str(root)


def settings_of(runtime: str = "wasm", args: str = "manifest=/app/enclave.toml", grant: str | None = "16"):
    env = ["PATH=/bin", *([f"ENCLAVE_MEMORY_GRANT_MIB={grant}"] if grant is not None else [])]
    annotations = {"enclave.type": "software", "enclave.runtime.path": runtime, "enclave.runtime.args": args}
    settings = read_settings(annotations, env)
    config = enclave_config(settings)
    assert config is not None
    return config, settings


def test_the_variable_is_rune_s_and_leaves_the_workload_env():
    _, settings = settings_of()
    assert settings.found["memory_grant"] == ("16", "process.env ENCLAVE_MEMORY_GRANT_MIB")
    assert settings.env == ["PATH=/bin"]


def test_no_grant_changes_nothing(tmp_path):
    config, settings = settings_of(grant=None)
    assert bound(config, settings, str(tmp_path / "nowhere")) is config


def test_wasm_within_its_grant_is_held_to_what_was_checked(tmp_path):
    rootfs = rootfs_with(tmp_path, WASM.format(limit="16M", pages=""))
    config, settings = settings_of(args="manifest=/app/enclave.toml,memory=32M", grant="16")
    with pytest.raises(SpecError) as err:  # an option may lower the signed limit, never raise it (as the runtime)
        bound(config, settings, rootfs)
    assert str(err.value) == (
        "config.json: annotations.enclave.runtime.args: memory=: 512 pages exceeds the manifest's "
        "signed limit of 256 pages; options can only lower it"
    )
    config, settings = settings_of(args="manifest=/app/enclave.toml,signer=" + "ab" * 32, grant="16")
    held = bound(config, settings, rootfs)
    assert held.args == "manifest=/app/enclave.toml signer=" + "ab" * 32 + " memory=16777216"
    assert (held.type, held.runtime, held.sources) == (config.type, config.runtime, config.sources)


def test_wasm_asking_for_more_than_its_grant_is_refused(tmp_path):
    rootfs = rootfs_with(tmp_path, WASM.format(limit="64M", pages="max_memory_pages = 512\n"))
    config, settings = settings_of(grant="16")
    with pytest.raises(SpecError) as err:
        bound(config, settings, rootfs)
    assert str(err.value) == (
        "config.json: process.env ENCLAVE_MEMORY_GRANT_MIB: the enclave asks for 32 MiB (/app/enclave.toml, "
        "wasm.max_memory_pages = 512), more than the 16 MiB of enclave memory granted"
    )
    # a memory= option that lowers it into the grant makes it fit
    config, settings = settings_of(args="manifest=/app/enclave.toml,memory=256p", grant="16")
    assert bound(config, settings, rootfs).args == "manifest=/app/enclave.toml memory=16777216"


def test_native_memory_limit_against_the_grant(tmp_path):
    rootfs = rootfs_with(tmp_path, NATIVE.format(limit="64M"))
    config, settings = settings_of(runtime="native", grant="32")
    with pytest.raises(SpecError) as err:
        bound(config, settings, rootfs)
    assert "the enclave asks for 64 MiB (/app/enclave.toml, memory_limit = 67108864), more than the 32 MiB" in str(
        err.value
    )
    config, settings = settings_of(runtime="native", grant="64")
    assert bound(config, settings, rootfs).args.endswith(" memory=67108864")


@pytest.mark.parametrize("value", ["0", "abc", "-1", "1e3", "\uff11\uff16", "9999999999"])
def test_a_grant_that_is_not_a_number_of_mib_is_refused(tmp_path, value):
    config, settings = settings_of(grant=value)
    with pytest.raises(SpecError) as err:
        bound(config, settings, str(tmp_path))
    assert str(err.value).startswith(f"config.json: process.env ENCLAVE_MEMORY_GRANT_MIB: {value!r} is not a number")


def test_a_pal_enclave_cannot_be_held_to_a_grant(tmp_path):
    config, settings = settings_of(runtime="/usr/lib/inclavare/pal/liberpal-x.so", args="")
    with pytest.raises(SpecError) as err:
        bound(config, settings, str(tmp_path))
    assert str(err.value) == (
        "config.json: process.env ENCLAVE_MEMORY_GRANT_MIB: 16 MiB of enclave memory granted, but the enclave "
        "runtime '/usr/lib/inclavare/pal/liberpal-x.so' sizes its enclave itself: only native and wasm enclaves "
        "can be held to a grant"
    )


def test_the_manifest_is_read_inside_the_rootfs(tmp_path):
    # a symlink to a host path resolves in the rootfs (openat2 RESOLVE_IN_ROOT), where there is nothing
    host_manifest = tmp_path / "host.toml"
    host_manifest.write_text(WASM.format(limit="1M", pages=""))
    rootfs = rootfs_with(tmp_path, "")
    os.unlink(os.path.join(rootfs, "app/enclave.toml"))
    os.symlink(str(host_manifest), os.path.join(rootfs, "app/enclave.toml"))
    config, settings = settings_of()
    with pytest.raises(SpecError) as err:
        bound(config, settings, rootfs)
    assert str(err.value) == (
        "config.json: annotations.enclave.runtime.args: cannot read the enclave manifest: "
        "/app/enclave.toml: No such file or directory in rootfs"
    )


def test_the_annotation_cannot_stand_in_for_the_variable():
    with pytest.raises(Exception, match="ENCLAVE_MEMORY_GRANT_MIB can only be given as an environment variable"):
        read_settings({"enclave.memory.grant.mib": "1024"}, [])
    with pytest.raises(Exception, match="did you mean ENCLAVE_MEMORY_GRANT_MIB"):
        read_settings({}, ["ENCLAVE_MEMORY_GRANT=16"])


def test_a_pod_cannot_raise_or_erase_its_grant():
    """kubelet puts the device plugin's entry first and the pod's own env after it: the smallest counts."""
    annotations = {"enclave.type": "software", "enclave.runtime.path": "wasm"}
    raised = read_settings(annotations, ["ENCLAVE_MEMORY_GRANT_MIB=16", "ENCLAVE_MEMORY_GRANT_MIB=999999"])
    assert raised.found["memory_grant"] == ("16", "process.env ENCLAVE_MEMORY_GRANT_MIB")
    with pytest.raises(EnclaveConfigError, match="ENCLAVE_MEMORY_GRANT_MIB: is empty"):
        read_settings(annotations, ["ENCLAVE_MEMORY_GRANT_MIB=16", "ENCLAVE_MEMORY_GRANT_MIB="])
    bad = read_settings(annotations, ["ENCLAVE_MEMORY_GRANT_MIB=16", "ENCLAVE_MEMORY_GRANT_MIB=lots"])
    assert bad.found["memory_grant"][0] == "lots"  # refused by name in bound()
