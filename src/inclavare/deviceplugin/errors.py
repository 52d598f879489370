"""Errors of the device plugin.

    InclavareError                  (inclavare.errors)
    └── DevicePluginError           `inclavare device-plugin` cannot start, or its configuration
        │                           is wrong (``device-plugin.toml: enclave_memory_mib: ...``)
        └── AllocationError         kubelet asked for devices this plugin cannot hand out
                                    (unknown, or unhealthy since the last ListAndWatch)

Allocation errors go back to kubelet as the gRPC status of the call (the
pod's container then fails to start with that line in its events); the
others end the command with one line on stderr.
"""

from __future__ import annotations

from ..errors import InclavareError, one_line


class DevicePluginError(InclavareError):
    """``where: reason``: a configuration file and key, a directory, a socket."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(one_line(f"{where}: {reason}"))


class AllocationError(DevicePluginError):
    """An Allocate or GetPreferredAllocation request names devices we do not have healthy."""
