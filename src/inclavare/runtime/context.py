"""What every lifecycle operation needs to know about how rune was invoked."""

from __future__ import annotations

import os

DEFAULT_ROOT = "/run/rune"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..log import Logger
    from .nodeconfig import NodeConfig


class RuntimeContext:
    """The global flags of the CLI, as the library sees them."""

    __slots__ = ("_node", "config_path", "debug", "enclave_required", "log", "root", "rootless", "systemd_cgroup")

    def __init__(self, root: str = DEFAULT_ROOT, systemd_cgroup: bool = False, debug: bool = False,
                 log: Logger | None = None, rootless: bool = False, config_path: str | None = None,
                 enclave_required: bool = False) -> None:  # fmt: skip
        self.root = os.path.abspath(root)
        self.systemd_cgroup = systemd_cgroup
        self.debug = debug
        self.log = log  # None for silence
        # Not root: cgroups may not be writable (runc's --rootless auto) and
        # id maps need setgroups "deny" first (user_namespaces(7)).
        self.rootless = rootless
        self.config_path = config_path  # --config; None: /etc/inclavare/rune.toml if it exists
        self.enclave_required = enclave_required  # --enclave-required
        self._node: NodeConfig | None = None

    def node(self) -> NodeConfig:
        """The node operator's configuration (runtime/nodeconfig.py), read once."""
        if self._node is None:
            from .nodeconfig import load

            node = load(self.config_path)
            if self.enclave_required:
                node.required_by = "rune --enclave-required"
            self._node = node
        return self._node

    def warn(self, msg: str) -> None:
        if self.log is not None:
            self.log.warning(msg)

    def trace(self, msg: str) -> None:
        """A debug-level line (shown with --debug)."""
        if self.log is not None:
            self.log.debug(msg)
