"""The open ends `rune create` hands its forked children, beside the plan.

What the children do is decided in :class:`~inclavare.runtime.plan.LaunchPlan`
(frozen); this is what they do it with: file descriptors opened by create
and the channel to it. Each process uses some up and closes them — the
intermediate its namespace fds, init the console and the state directory —
so this part changes as the spawn goes on. Nothing is serialised: the
children read both from their copy of create's memory.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .messages import Channel


class LaunchFds:
    __slots__ = ("channel", "console_fd", "dmz_fd", "fifo_fd", "join_fds", "state_dir_fd")

    def __init__(self) -> None:
        self.channel: Channel | None = None  # to `rune create` (main), once forked
        self.join_fds: list[tuple[str, int, str]] = []  # (type, fd, path) to setns into
        self.state_dir_fd = -1  # O_PATH fd of <root>/<id>, for exec.fifo after pivot_root
        self.console_fd = -1  # connected --console-socket, or -1
        self.dmz_fd = -1  # sealed memfd of the exec trampoline (_sys/dmz.py)
        self.fifo_fd = -1  # exec.fifo, written by init at start; its closing tells `rune start` we run

    def close(self) -> None:
        """Close create's copies of the fds (the channel is closed by its owner)."""
        fds = [fd for _t, fd, _p in self.join_fds] + [self.state_dir_fd, self.console_fd, self.dmz_fd, self.fifo_fd]
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.join_fds = []
        self.state_dir_fd = self.console_fd = self.dmz_fd = self.fifo_fd = -1
