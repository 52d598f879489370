"""What the plugin advertises, as plain values: resources, their devices, what a grant hands out.

No gRPC and no files here (docs/principles.md §5): the node scan
(:mod:`.node`) and the operator's settings go in, :class:`Resource` values
come out, and the servers (:mod:`.server`) turn them into kubelet's messages.

Kubernetes counts a device plugin resource in whole devices, so each
resource is a number of interchangeable devices:

================================  ==========  ==============================================
resource                          device ids  a container granted N of them gets
================================  ==========  ==============================================
inclavare.io/enclave-memory-mib   mib-0 ...   ENCLAVE_MEMORY_GRANT_MIB=N, which rune enforces:
                                              the enclave's memory limit must be <= N MiB
sgx.intel.com/enclave             enclave-0   /dev/sgx_enclave (rw), the aesmd socket directory
sgx.intel.com/provision           provision-0 /dev/sgx_provision (rw)
================================  ==========  ==============================================

The SGX slots are shares of one device node, as in Intel's SGX device plugin
(cmd/sgx_plugin: ``-enclave-limit``/``-provision-limit``, default 110, the
kubelet's default pod limit): a pod asks for one to get the device at all.
``sgx.intel.com/epc`` is not among them: Intel counts it in bytes, which no
device list can (one device per byte); it is published through NFD instead
(:mod:`.features`).
"""

from __future__ import annotations

import dataclasses

from ..enclave.config import AESMD_DIR, MEMORY_GRANT_ENV
from .errors import AllocationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .node import NodeScan

ENCLAVE_MEMORY = "inclavare.io/enclave-memory-mib"
SGX_ENCLAVE = "sgx.intel.com/enclave"
SGX_PROVISION = "sgx.intel.com/provision"
SGX_EPC = "sgx.intel.com/epc"  # bytes, an NFD extended resource (features.py), not a device list
HEALTHY, UNHEALTHY = "Healthy", "Unhealthy"  # kubelet's constants (deviceplugin/v1beta1/constants.go)
GRANT_ENV = MEMORY_GRANT_ENV  # the variable rune reads (enclave/config.py SOURCES, runtime/memory_grant.py)
# A ListAndWatch answer lists every device; kubelet reads at most 4 MiB (gRPC's
# default), ~20 bytes a device: 128 GiB of enclave memory in MiB stays well under.
MAX_ENCLAVE_MEMORY_MIB = 128 << 10
DEFAULT_SGX_LIMIT = 110


@dataclasses.dataclass(frozen=True)
class DeviceNode:
    """A host device node made available to the container (kubelet's DeviceSpec)."""

    host_path: str
    container_path: str
    permissions: str = "rw"  # device cgroup r/w/m; no m: the container makes no device nodes


@dataclasses.dataclass(frozen=True)
class HostMount:
    """A host path bind-mounted into the container (kubelet's Mount)."""

    host_path: str
    container_path: str
    read_only: bool = True


@dataclasses.dataclass(frozen=True)
class Grant:
    """What one container gets for the devices it was allocated."""

    envs: tuple[tuple[str, str], ...] = ()
    mounts: tuple[HostMount, ...] = ()
    devices: tuple[DeviceNode, ...] = ()


@dataclasses.dataclass(frozen=True)
class Resource:
    """One resource name: how many devices, whether they are usable, and what a grant carries."""

    name: str
    prefix: str  # device ids are prefix + 0, 1, ...
    count: int
    healthy: bool
    devices: tuple[DeviceNode, ...] = ()
    mounts: tuple[HostMount, ...] = ()
    memory: bool = False  # a grant of N devices is N MiB of enclave memory (GRANT_ENV)

    @property
    def endpoint(self) -> str:
        """The plugin's socket for this resource, in kubelet's device-plugins directory."""
        return self.name.replace("/", "-") + ".sock"

    def device_list(self) -> list[tuple[str, str]]:
        """(id, health) of every device, in ListAndWatch order."""
        health = HEALTHY if self.healthy else UNHEALTHY
        return [(f"{self.prefix}{i}", health) for i in range(self.count)]

    def unhealthy(self) -> Resource:
        return dataclasses.replace(self, healthy=False)

    def allocate(self, ids: list[str]) -> Grant:
        """The grant for one container's devices; refuses ids we do not have healthy."""
        self._check(ids, "Allocate")
        if not self.healthy:
            raise AllocationError(self.name, f"Allocate: the devices are unhealthy ({self.prefix}*)")
        envs = ((GRANT_ENV, str(len(ids))),) if self.memory else ()
        return Grant(envs=envs, mounts=self.mounts, devices=self.devices)

    def preferred(self, available: list[str], must_include: list[str], size: int) -> list[str]:
        """`size` devices: those that must be included, then the lowest-numbered available ones.

        The devices are interchangeable; lowest first keeps a node's
        allocations deterministic and the ids in use compact (kubelet's
        checkpoint and `kubectl describe node` stay readable).
        """
        self._check(available + must_include, "GetPreferredAllocation")
        chosen = list(dict.fromkeys(must_include))
        rest = sorted(set(available) - set(chosen), key=self._index)
        return (chosen + rest)[: max(size, len(chosen))]

    def _index(self, device_id: str) -> int:
        return int(device_id[len(self.prefix) :])

    def _check(self, ids: list[str], call: str) -> None:
        for device_id in ids:
            digits = device_id[len(self.prefix) :] if device_id.startswith(self.prefix) else ""
            if not (digits.isdigit() and digits.isascii() and int(digits) < self.count and str(int(digits)) == digits):
                raise AllocationError(self.name, f"{call}: unknown device {device_id!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The operator's settings (flags or the configuration file, :mod:`.config`)."""

    enclave_memory_mib: int = 0
    sgx_enclave_limit: int = DEFAULT_SGX_LIMIT
    sgx_provision_limit: int = DEFAULT_SGX_LIMIT


def enclave_memory(settings: Settings, runnable: bool) -> Resource:
    """The enclave memory of the built-in software runtimes; usable while rune is installed."""
    return Resource(ENCLAVE_MEMORY, "mib-", settings.enclave_memory_mib, runnable, memory=True)


def sgx_enclave(settings: Settings, nodes: tuple[str, ...], aesmd: bool) -> Resource:
    """Shares of the SGX enclave device node(s); aesmd's socket directory with them when the host runs aesmd
    (launch tokens on hosts without flexible launch control, out-of-process quotes)."""
    mounts = (HostMount(AESMD_DIR, AESMD_DIR),) if aesmd else ()
    return Resource(SGX_ENCLAVE, "enclave-", settings.sgx_enclave_limit, bool(nodes),
                    devices=tuple(DeviceNode(p, p) for p in nodes), mounts=mounts)  # fmt: skip


def sgx_provision(settings: Settings, nodes: tuple[str, ...]) -> Resource:
    """Shares of the SGX provisioning device node: the provisioning key, for in-process DCAP quotes."""
    return Resource(SGX_PROVISION, "provision-", settings.sgx_provision_limit, bool(nodes),
                    devices=tuple(DeviceNode(p, p) for p in nodes))  # fmt: skip


def carry_over(previous: dict[str, Resource], current: dict[str, Resource]) -> dict[str, Resource]:
    """`current`, plus every resource of `previous` that is gone, kept as unhealthy.

    A resource kubelet knows never silently vanishes: when the SGX device
    nodes disappear, its devices turn Unhealthy (kubelet stops placing pods
    that ask for them) instead of the plugin going quiet.
    """
    merged = dict(current)
    for name, resource in previous.items():
        if name not in merged:
            merged[name] = resource.unhealthy()
    return merged


def inventory(scan: NodeScan, settings: Settings) -> dict[str, Resource]:
    """The resources of a node as scanned: enclave memory always, the SGX ones where the nodes exist."""
    found = {ENCLAVE_MEMORY: enclave_memory(settings, scan.rune)}
    if scan.sgx is not None:
        if scan.sgx.enclave:
            found[SGX_ENCLAVE] = sgx_enclave(settings, scan.sgx.enclave, scan.sgx.aesmd)
        if scan.sgx.provision:
            found[SGX_PROVISION] = sgx_provision(settings, scan.sgx.provision)
    return found
