"""What this node has: SGX device nodes, the EPC size, rune.

Everything is read under ``root`` (``/`` on a node; the host's root mounted
into the plugin's container, or a test's directory) and reported as host
paths. The EPC size comes from the kernel when it says (Linux 5.17+:
``/sys/devices/system/node/node*/x86/sgx_total_bytes``, see the kernel's
Documentation/ABI/stable/sysfs-devices-node), else from CPUID leaf 0x12
through the ``cpuid`` driver's ``/dev/cpu/0/cpuid`` (x86/cpuid(4): a 16-byte
pread at offset ``leaf | subleaf << 32`` returns EAX, EBX, ECX, EDX); the
leaf's EPC sections are read as the Intel SDM, Vol. 3D, "Enumeration of
SGX capabilities" (§36.7.2) lays them out. Neither needs ctypes.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import stat
import struct
from collections.abc import Callable

from ..enclave.config import AESMD_DIR, MISC_MAJOR

# Device nodes a pod gets with each SGX resource: the in-tree driver's first,
# then the legacy DCAP (/dev/sgx/*) and out-of-tree (isgx) drivers' names —
# a subset of rune's own list (enclave/config.py SGX_DEVICES).
ENCLAVE_NODES = ("/dev/sgx_enclave", "/dev/sgx/enclave", "/dev/isgx")
PROVISION_NODES = ("/dev/sgx_provision", "/dev/sgx/provision")
CPUID_DEVICE = "/dev/cpu/0/cpuid"
SYSFS_EPC = "/sys/devices/system/node/node*/x86/sgx_total_bytes"
CPUINFO = "/proc/cpuinfo"
_SGX_LEAF = 0x12
_SECTION_VALID = 1  # CPUID.(12H, n>=2).EAX[3:0]: 1 = an EPC section, 0 = no more


@dataclasses.dataclass(frozen=True)
class Sgx:
    enclave: tuple[str, ...]  # host paths of the enclave device nodes present
    provision: tuple[str, ...]
    aesmd: bool  # the host has aesmd's socket directory
    epc_bytes: int  # 0 when neither the kernel nor CPUID says
    flc: bool  # flexible launch control (/proc/cpuinfo sgx_lc): enclaves need no launch token


@dataclasses.dataclass(frozen=True)
class NodeScan:
    sgx: Sgx | None  # None: no SGX device node at all
    rune: bool  # rune is installed where the plugin was told: software enclaves can run


class Probe:
    """Scans a node; what cannot change while it runs (EPC size, CPU flags) is read once."""

    def __init__(self, root: str = "/", rune: str = "/usr/local/bin/rune") -> None:
        self.root = root
        self.rune = rune
        self._epc: int | None = None
        self._flags: frozenset[str] | None = None

    def host(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def scan(self) -> NodeScan:
        enclave = tuple(p for p in ENCLAVE_NODES if self._misc_device(p))
        provision = tuple(p for p in PROVISION_NODES if self._misc_device(p))
        rune = os.access(self.host(self.rune), os.X_OK) and os.path.isfile(self.host(self.rune))
        if not enclave and not provision:
            return NodeScan(None, rune)
        if self._epc is None:
            self._epc = epc_from_sysfs(self.root) or epc_from_cpuid(self.host(CPUID_DEVICE))
            self._flags = cpu_flags(self.host(CPUINFO))
        sgx = Sgx(enclave, provision, os.path.isdir(self.host(AESMD_DIR)), self._epc, "sgx_lc" in (self._flags or ()))
        return NodeScan(sgx, rune)

    def _misc_device(self, path: str) -> bool:
        """A character device of the misc major (the SGX drivers' nodes), symlinks followed."""
        try:
            st = os.stat(self.host(path))
        except OSError:
            return False
        return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == MISC_MAJOR


def epc_from_sysfs(root: str) -> int:
    """The EPC the kernel manages, summed over NUMA nodes; 0 if the kernel does not say."""
    total = 0
    for path in glob.glob(os.path.join(root, SYSFS_EPC.lstrip("/"))):
        try:
            with open(path) as f:
                total += int(f.read().strip())
        except (OSError, ValueError):
            continue
    return total


def epc_from_cpuid(device: str) -> int:
    """The EPC size from CPUID through the cpuid driver's `device`; 0 without it or without SGX."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        return epc_from_leaves(lambda leaf, subleaf: _cpuid(fd, leaf, subleaf))
    except OSError:
        return 0
    finally:
        os.close(fd)


def epc_from_leaves(cpuid: Callable[[int, int], tuple[int, int, int, int]]) -> int:
    """The EPC sections' total size from CPUID leaf 0x12; 0 on a CPU without SGX.

    `cpuid(leaf, subleaf)` returns (EAX, EBX, ECX, EDX).
    """
    max_leaf, ebx, ecx, edx = cpuid(0, 0)
    if struct.pack("<3I", ebx, edx, ecx) != b"GenuineIntel" or max_leaf < _SGX_LEAF:
        return 0
    if not cpuid(7, 0)[1] & (1 << 2):  # CPUID.(07H,0).EBX[2]: SGX
        return 0
    total = 0
    for subleaf in range(2, 2 + 64):  # sub-leaves 2.. are the EPC sections, until an invalid one
        eax, _ebx, ecx, edx = cpuid(_SGX_LEAF, subleaf)
        if eax & 0xF != _SECTION_VALID:
            break
        total += (ecx & 0xFFFFF000) | ((edx & 0xFFFFF) << 32)  # size bits 31:12 and 51:32
    return total


def _cpuid(fd: int, leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    data = os.pread(fd, 16, leaf | subleaf << 32)
    if len(data) != 16:
        raise OSError("short read from the cpuid device")
    eax, ebx, ecx, edx = struct.unpack("<4I", data)
    return eax, ebx, ecx, edx


def cpu_flags(path: str) -> frozenset[str]:
    """The first processor's flags in /proc/cpuinfo (``sgx``, ``sgx_lc``, ...)."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()
