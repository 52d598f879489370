"""What every lifecycle operation needs to know about how rune was invoked."""

from __future__ import annotations

import os

DEFAULT_ROOT = "/run/rune"


class RuntimeContext:
    """The global flags of the CLI, as the library sees them."""

    __slots__ = ("debug", "log", "root", "rootless", "systemd_cgroup")

    def __init__(self, root: str = DEFAULT_ROOT, systemd_cgroup: bool = False, debug: bool = False,
                 log: object = None, rootless: bool = False) -> None:  # fmt: skip
        self.root = os.path.abspath(root)
        self.systemd_cgroup = systemd_cgroup
        self.debug = debug
        self.log = log  # an inclavare.runtime.log.Logger, or None for silence
        # Not root: cgroups may not be writable (runc's --rootless auto) and
        # id maps need setgroups "deny" first (user_namespaces(7)).
        self.rootless = rootless

    def warn(self, msg: str) -> None:
        if self.log is not None:
            self.log.warning(msg)  # type: ignore[attr-defined]

    def trace(self, msg: str) -> None:
        """A debug-level line (shown with --debug)."""
        if self.log is not None:
            self.log.debug(msg)  # type: ignore[attr-defined]
