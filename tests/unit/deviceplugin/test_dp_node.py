"""What the plugin reads of a node (deviceplugin/node.py): the EPC from sysfs or CPUID leaf 0x12, flags, devices."""

from __future__ import annotations

import os
import struct

import pytest
from fakehost import RUNE, make_misc_device, needs_root

from inclavare.deviceplugin.node import (
    CPUID_DEVICE,
    Probe,
    _cpuid,
    cpu_flags,
    epc_from_cpuid,
    epc_from_leaves,
    epc_from_sysfs,
)


def leaves_of(table: dict[tuple[int, int], tuple[int, int, int, int]]):
    """CPUID as a table: (leaf, subleaf) -> (EAX, EBX, ECX, EDX); zeros elsewhere, as the CPU answers."""
    return lambda leaf, subleaf: table.get((leaf, subleaf), (0, 0, 0, 0))


def intel(max_leaf: int = 0x1F) -> tuple[int, int, int, int]:
    ebx, edx, ecx = struct.unpack("<3I", b"GenuineIntel")
    return (max_leaf, ebx, ecx, edx)


def section(size: int) -> tuple[int, int, int, int]:
    # EAX[3:0] = 1 (valid); base irrelevant; ECX[31:12] size bits 31:12, EDX[19:0] bits 51:32
    return (0x1, 0, size & 0xFFFFF000, size >> 32)


def test_epc_from_cpuid_leaf_0x12_sums_the_sections():
    big = 0x1_0000_0000 + (30 << 20)  # a section over 4 GiB: size bits 51:32 in EDX
    leaves = {(0, 0): intel(), (7, 0): (0, 1 << 2, 0, 0), (0x12, 0): (0x3, 0, 0, 0),
              (0x12, 2): section(64 << 20), (0x12, 3): section(big), (0x12, 5): section(1 << 20)}  # fmt: skip
    assert epc_from_leaves(leaves_of(leaves)) == (64 << 20) + big  # sub-leaf 4 invalid: the list ends there


def test_no_epc_without_intel_sgx(tmp_path):
    no_sgx = {(0, 0): intel(), (7, 0): (0, 0, 0, 0), (0x12, 2): section(64 << 20)}
    assert epc_from_leaves(leaves_of(no_sgx)) == 0
    ebx, edx, ecx = struct.unpack("<3I", b"AuthenticAMD")
    amd = {(0, 0): (0x10, ebx, ecx, edx), (7, 0): (0, 4, 0, 0), (0x12, 2): section(1 << 20)}
    assert epc_from_leaves(leaves_of(amd)) == 0
    old = {(0, 0): intel(max_leaf=0xD), (7, 0): (0, 4, 0, 0), (0x12, 2): section(1 << 20)}
    assert epc_from_leaves(leaves_of(old)) == 0
    assert epc_from_cpuid(str(tmp_path / "no-cpuid-driver")) == 0


def test_this_machine_s_cpuid_device_reads():
    """The real driver, where it is loaded: the vendor read through it is this CPU's."""
    if not os.access(CPUID_DEVICE, os.R_OK):
        pytest.skip(f"no {CPUID_DEVICE} (the cpuid driver is not loaded, or not root)")
    seen = []
    fd = os.open(CPUID_DEVICE, os.O_RDONLY)
    try:
        epc_from_leaves(lambda leaf, subleaf: seen.append((leaf, subleaf)) or _cpuid(fd, leaf, subleaf))
        _max, ebx, ecx, edx = _cpuid(fd, 0, 0)
    finally:
        os.close(fd)
    with open("/proc/cpuinfo") as f:
        vendor = next(line.split(":")[1].strip() for line in f if line.startswith("vendor_id"))
    assert struct.pack("<3I", ebx, edx, ecx).decode() == vendor
    assert seen[0] == (0, 0)
    assert epc_from_cpuid(CPUID_DEVICE) >= 0


def test_epc_from_sysfs_sums_the_numa_nodes(tmp_path):
    for node, size in ((0, 32 << 20), (1, 48 << 20)):
        d = tmp_path / f"sys/devices/system/node/node{node}/x86"
        d.mkdir(parents=True)
        (d / "sgx_total_bytes").write_text(f"{size}\n")
    assert epc_from_sysfs(str(tmp_path)) == 80 << 20
    assert epc_from_sysfs(str(tmp_path / "elsewhere")) == 0


def test_cpu_flags(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sgx sgx_lc avx\n\nprocessor\t: 1\n")
    assert {"sgx", "sgx_lc"} <= cpu_flags(str(tmp_path / "cpuinfo"))
    assert cpu_flags(str(tmp_path / "none")) == frozenset()


def test_rune_makes_the_node_enclave_capable(tmp_path):
    probe = Probe(str(tmp_path), RUNE)
    assert probe.scan().rune is False
    (tmp_path / "usr/local/bin").mkdir(parents=True)
    (tmp_path / "usr/local/bin/rune").write_text("")
    assert probe.scan().rune is False  # not executable
    (tmp_path / "usr/local/bin/rune").chmod(0o755)
    assert probe.scan().rune is True
    assert probe.scan().sgx is None


@needs_root
def test_sgx_device_nodes_and_the_epc(tmp_path):
    make_misc_device(str(tmp_path), "/dev/sgx_enclave", 125)
    (tmp_path / "dev/sgx_provision").write_text("")  # a regular file is no device
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("flags\t\t: sgx\n")
    d = tmp_path / "sys/devices/system/node/node0/x86"
    d.mkdir(parents=True)
    (d / "sgx_total_bytes").write_text("98566144\n")
    sgx = Probe(str(tmp_path)).scan().sgx
    assert sgx is not None
    assert (sgx.enclave, sgx.provision, sgx.aesmd, sgx.epc_bytes, sgx.flc) == (
        ("/dev/sgx_enclave",),
        (),
        False,
        98566144,
        False,
    )
