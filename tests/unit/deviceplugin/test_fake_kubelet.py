"""The device plugin against a fake kubelet (fakekubelet.py) driving the whole protocol.

Registration, ListAndWatch (and its updates when health or capacity
changes), Allocate, GetPreferredAllocation, re-registration after kubelet
restarts, and Allocate's latency. Timings are printed (pytest -s) for the
record: the targets are Allocate < 5 ms and re-registration < 1 s.
"""

from __future__ import annotations

import os
import time

import grpc
import pytest
from fakehost import RUNE, make_misc_device, needs_root

from inclavare._proto.k8s_io.kubelet.pkg.apis.deviceplugin.v1beta1 import api_pb2 as pb
from inclavare.deviceplugin import features
from inclavare.deviceplugin.plugin import Options
from inclavare.deviceplugin.resources import ENCLAVE_MEMORY, GRANT_ENV, SGX_ENCLAVE, SGX_PROVISION

HEALTHY = "Healthy"


def all_health(devices, health):
    return bool(devices) and all(h == health for _, h in devices)


def test_registers_and_lists_the_enclave_memory(kubelet, run_plugin, kubelet_dir):
    run_plugin(memory_mib=64)
    reg = kubelet.registered(ENCLAVE_MEMORY)
    assert reg.request.version == "v1beta1"
    assert reg.request.endpoint == "inclavare.io-enclave-memory-mib.sock"
    assert reg.request.options.get_preferred_allocation_available
    assert not reg.request.options.pre_start_required
    devices = kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 64)
    assert devices == [(f"mib-{i}", HEALTHY) for i in range(64)]
    assert reg.options is not None  # kubelet's GetDevicePluginOptions
    assert reg.options.get_preferred_allocation_available
    assert os.stat(os.path.join(kubelet_dir, reg.request.endpoint)).st_mode & 0o777 == 0o600


def test_allocate_grants_the_enclave_memory_in_the_env(kubelet, run_plugin):
    run_plugin(memory_mib=64)
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 64)
    plugin = kubelet.client(ENCLAVE_MEMORY)
    answer = plugin.Allocate(pb.AllocateRequest(container_requests=[
        pb.ContainerAllocateRequest(devices_ids=[f"mib-{i}" for i in range(16)]),
        pb.ContainerAllocateRequest(devices_ids=["mib-40", "mib-41"]),
    ]))  # fmt: skip
    first, second = answer.container_responses
    assert dict(first.envs) == {GRANT_ENV: "16"}
    assert dict(second.envs) == {GRANT_ENV: "2"}
    assert not first.devices  # software enclaves need nothing from the host
    assert not first.mounts


def test_allocate_refuses_devices_it_does_not_have(kubelet, run_plugin):
    run_plugin(memory_mib=8)
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 8)
    plugin = kubelet.client(ENCLAVE_MEMORY)
    for bad in ("mib-8", "mib-01", "gpu-0", "mib--1"):
        with pytest.raises(grpc.RpcError) as err:
            plugin.Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=[bad])]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == f"{ENCLAVE_MEMORY}: Allocate: unknown device {bad!r}"


def test_preferred_allocation_is_lowest_first_with_the_required_ones(kubelet, run_plugin):
    run_plugin(memory_mib=32)
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 32)
    plugin = kubelet.client(ENCLAVE_MEMORY)
    available = [f"mib-{i}" for i in (30, 2, 11, 5, 7, 3, 20)]
    answer = plugin.GetPreferredAllocation(pb.PreferredAllocationRequest(container_requests=[
        pb.ContainerPreferredAllocationRequest(available_deviceIDs=available, must_include_deviceIDs=["mib-20"],
                                               allocation_size=4),
    ]))  # fmt: skip
    assert list(answer.container_responses[0].deviceIDs) == ["mib-20", "mib-2", "mib-3", "mib-5"]


def test_list_and_watch_follows_rune_health(kubelet, run_plugin, host):
    """rune uninstalled: every enclave-memory device turns Unhealthy, and back when it returns."""
    run_plugin(memory_mib=4)
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: all_health(d, HEALTHY))
    rune = os.path.join(host, RUNE.lstrip("/"))
    os.rename(rune, rune + ".gone")
    assert kubelet.wait_list(ENCLAVE_MEMORY, lambda d: all_health(d, "Unhealthy")) == [
        (f"mib-{i}", "Unhealthy") for i in range(4)
    ]
    plugin = kubelet.client(ENCLAVE_MEMORY)
    with pytest.raises(grpc.RpcError) as err:
        plugin.Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=["mib-0"])]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "unhealthy" in err.value.details()
    os.rename(rune + ".gone", rune)
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: all_health(d, HEALTHY))


def test_list_and_watch_follows_the_capacity_in_the_settings_file(kubelet, run_plugin, tmp_path):
    config = tmp_path / "device-plugin.toml"
    config.write_text("enclave_memory_mib = 16\n")
    run_plugin(memory_mib=4, config=str(config))
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 16)
    # as kubelet updates a ConfigMap volume: a new file swapped in
    (tmp_path / "new.toml").write_text("enclave_memory_mib = 24\n")
    os.replace(tmp_path / "new.toml", config)
    assert len(kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 24)) == 24
    # a broken file keeps the capacity in force
    config.write_text("enclave_memory_mib = -1\n")
    time.sleep(0.3)
    assert len(kubelet.lists[ENCLAVE_MEMORY][-1]) == 24


def test_feature_file_labels_the_node(kubelet, run_plugin, tmp_path, host):
    feature_file = tmp_path / "features.d" / "inclavare"
    run_plugin(memory_mib=4, feature_file=str(feature_file))
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 4)
    lines = feature_file.read_text().splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [f"{features.ENCLAVE}=true", f"{features.ENCLAVE}-memory-mib=4"]
    os.unlink(os.path.join(host, RUNE.lstrip("/")))
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: all_health(d, "Unhealthy"))
    deadline = time.monotonic() + 5
    while "inclavare-enclave=true" in feature_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert feature_file.read_text().splitlines()[1:] == []  # no rune, no enclave label


@pytest.mark.parametrize("interval", [0.05, Options.interval])
def test_reregisters_after_a_kubelet_restart(kubelet, run_plugin, interval):
    """How soon is measured in bench/deviceplugin.py; here, that it happens and the new socket serves."""
    run_plugin(memory_mib=8, interval=interval)
    first = kubelet.registered(ENCLAVE_MEMORY)
    kubelet.wait_list(ENCLAVE_MEMORY, lambda d: len(d) == 8)
    for _ in range(3):
        restarted = kubelet.restart()
        again = kubelet.registered(ENCLAVE_MEMORY, after=restarted)
        assert again.request.endpoint == first.request.endpoint
        # the new socket works: the new kubelet gets the list and can allocate
        plugin = kubelet.client(ENCLAVE_MEMORY)
        answer = plugin.Allocate(
            pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=["mib-1"])])
        )
        assert dict(answer.container_responses[0].envs) == {GRANT_ENV: "1"}


@needs_root
def test_sgx_resources_and_what_they_hand_out(kubelet, run_plugin, host):
    make_misc_device(host, "/dev/sgx_enclave", 125)
    make_misc_device(host, "/dev/sgx_provision", 126)
    os.makedirs(os.path.join(host, "var/run/aesmd"))
    run_plugin(memory_mib=4)
    kubelet.wait_list(SGX_ENCLAVE, lambda d: len(d) == 110 and all_health(d, HEALTHY))
    kubelet.wait_list(SGX_PROVISION, lambda d: len(d) == 110)
    enclave = (
        kubelet.client(SGX_ENCLAVE)
        .Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=["enclave-0"])]))
        .container_responses[0]
    )
    assert [(d.host_path, d.container_path, d.permissions) for d in enclave.devices] == [
        ("/dev/sgx_enclave", "/dev/sgx_enclave", "rw")
    ]
    assert [(m.host_path, m.container_path, m.read_only) for m in enclave.mounts] == [
        ("/var/run/aesmd", "/var/run/aesmd", True)
    ]
    assert not enclave.envs
    provision = (
        kubelet.client(SGX_PROVISION)
        .Allocate(pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=["provision-1"])]))
        .container_responses[0]
    )
    assert [d.host_path for d in provision.devices] == ["/dev/sgx_provision"]
    # the device disappears: its resource stays, unhealthy
    os.unlink(os.path.join(host, "dev/sgx_enclave"))
    kubelet.wait_list(SGX_ENCLAVE, lambda d: len(d) == 110 and all_health(d, "Unhealthy"))
    with pytest.raises(grpc.RpcError) as err:
        kubelet.client(SGX_ENCLAVE).Allocate(
            pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=["enclave-0"])])
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    make_misc_device(host, "/dev/sgx_enclave", 125)
    kubelet.wait_list(SGX_ENCLAVE, lambda d: all_health(d, HEALTHY))


def test_registration_refused_by_kubelet_is_logged_once_and_retried(kubelet, run_plugin, caplog):
    kubelet.refuse = "unsupported API version v1beta1"  # as a kubelet too old or too new would answer
    with caplog.at_level("ERROR", logger="inclavare.deviceplugin"):
        run_plugin(memory_mib=2)
        time.sleep(0.3)  # six steps
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1  # reported once while it lasts, not at every step
    assert errors[0].endswith(f"Register {ENCLAVE_MEMORY}: INVALID_ARGUMENT: unsupported API version v1beta1")
    kubelet.refuse = None
    kubelet.registered(ENCLAVE_MEMORY)
