"""The resources as plain values (deviceplugin/resources.py): ids, health, grants, preferences."""

from __future__ import annotations

import pytest

from inclavare.deviceplugin.errors import AllocationError
from inclavare.deviceplugin.node import ENCLAVE_NODES, PROVISION_NODES, NodeScan, Sgx
from inclavare.deviceplugin.resources import (
    ENCLAVE_MEMORY,
    GRANT_ENV,
    SGX_ENCLAVE,
    SGX_PROVISION,
    Settings,
    carry_over,
    inventory,
)
from inclavare.enclave.config import AESMD_DIR, SGX_DEVICES, SOURCES

SGX = Sgx(("/dev/sgx_enclave",), ("/dev/sgx_provision",), aesmd=True, epc_bytes=98566144, flc=True)


def test_grant_env_is_rune_s_setting():
    assert SOURCES["memory_grant"] == (GRANT_ENV, None)


def test_sgx_nodes_are_ones_rune_knows():
    assert set(ENCLAVE_NODES) | set(PROVISION_NODES) <= set(SGX_DEVICES)


def test_inventory_of_a_node_without_sgx():
    found = inventory(NodeScan(None, rune=True), Settings(enclave_memory_mib=3))
    assert list(found) == [ENCLAVE_MEMORY]
    assert found[ENCLAVE_MEMORY].device_list() == [("mib-0", "Healthy"), ("mib-1", "Healthy"), ("mib-2", "Healthy")]
    assert found[ENCLAVE_MEMORY].endpoint == "inclavare.io-enclave-memory-mib.sock"
    no_rune = inventory(NodeScan(None, rune=False), Settings(enclave_memory_mib=1))
    assert no_rune[ENCLAVE_MEMORY].device_list() == [("mib-0", "Unhealthy")]


def test_inventory_of_an_sgx_node():
    found = inventory(NodeScan(SGX, rune=True), Settings(0, sgx_enclave_limit=2, sgx_provision_limit=1))
    assert found[ENCLAVE_MEMORY].device_list() == []
    assert found[SGX_ENCLAVE].device_list() == [("enclave-0", "Healthy"), ("enclave-1", "Healthy")]
    grant = found[SGX_ENCLAVE].allocate(["enclave-1"])
    assert [(d.host_path, d.permissions) for d in grant.devices] == [("/dev/sgx_enclave", "rw")]
    assert [(m.host_path, m.container_path, m.read_only) for m in grant.mounts] == [(AESMD_DIR, AESMD_DIR, True)]
    assert grant.envs == ()
    assert [d.host_path for d in found[SGX_PROVISION].allocate(["provision-0"]).devices] == ["/dev/sgx_provision"]


def test_a_resource_that_disappears_stays_unhealthy():
    before = inventory(NodeScan(SGX, rune=True), Settings(4))
    after = carry_over(before, inventory(NodeScan(None, rune=True), Settings(4)))
    assert set(after) == {ENCLAVE_MEMORY, SGX_ENCLAVE, SGX_PROVISION}
    assert {h for _, h in after[SGX_ENCLAVE].device_list()} == {"Unhealthy"}
    assert {h for _, h in after[ENCLAVE_MEMORY].device_list()} == {"Healthy"}
    with pytest.raises(AllocationError, match="unhealthy"):
        after[SGX_ENCLAVE].allocate(["enclave-0"])


def test_memory_grant_counts_the_devices():
    memory = inventory(NodeScan(None, rune=True), Settings(10))[ENCLAVE_MEMORY]
    assert memory.allocate(["mib-3", "mib-9", "mib-0"]).envs == ((GRANT_ENV, "3"),)


@pytest.mark.parametrize("bad", ["mib-10", "mib-", "mib-+1", "mib-01", "mib-1 ", "enclave-0", "", "mib-٣"])
def test_unknown_ids_are_refused(bad):
    memory = inventory(NodeScan(None, rune=True), Settings(10))[ENCLAVE_MEMORY]
    with pytest.raises(AllocationError) as err:
        memory.allocate([bad])
    assert str(err.value) == f"{ENCLAVE_MEMORY}: Allocate: unknown device {bad!r}"


def test_preferred_allocation():
    memory = inventory(NodeScan(None, rune=True), Settings(100))[ENCLAVE_MEMORY]
    available = ["mib-50", "mib-7", "mib-12", "mib-8", "mib-99"]
    assert memory.preferred(available, [], 3) == ["mib-7", "mib-8", "mib-12"]
    assert memory.preferred(available, ["mib-99", "mib-50"], 3) == ["mib-99", "mib-50", "mib-7"]
    assert memory.preferred(available, ["mib-99"], 0) == ["mib-99"]  # what must be included always is
    assert memory.preferred(available, [], 9) == ["mib-7", "mib-8", "mib-12", "mib-50", "mib-99"]
    with pytest.raises(AllocationError):
        memory.preferred(["mib-100"], [], 1)
