"""What every lifecycle operation needs to know about how rune was invoked."""

from __future__ import annotations

import os

DEFAULT_ROOT = "/run/rune"


class RuntimeContext:
    """The global flags of the CLI, as the library sees them."""

    __slots__ = ("debug", "log", "root", "systemd_cgroup")

    def __init__(self, root: str = DEFAULT_ROOT, systemd_cgroup: bool = False, debug: bool = False,
                 log: object = None) -> None:  # fmt: skip
        self.root = os.path.abspath(root)
        self.systemd_cgroup = systemd_cgroup
        self.debug = debug
        self.log = log  # an inclavare.runtime.log.Logger, or None for silence

    def warn(self, msg: str) -> None:
        if self.log is not None:
            self.log.warning(msg)  # type: ignore[attr-defined]
