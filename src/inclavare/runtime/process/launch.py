"""Everything the forked children need, gathered by `rune create` before fork.

Nothing is serialised: intermediate and init are forks of `rune create` and
read this object from their copy of its memory.
"""

from __future__ import annotations

from ...spec.model import Spec
from ..config import MountEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..._sys import Syscalls
    from .messages import Channel


class Launch:
    __slots__ = (
        "bundle",
        "cgroup_mounts",
        "channel",
        "console_fd",
        "container_id",
        "dmz_fd",
        "executor",
        "fifo_fd",
        "hook_state",
        "join_fds",
        "made_mounts",
        "mounts",
        "new_flags",
        "no_new_keyring",
        "no_pivot",
        "preserve_fds",
        "rootfs",
        "sc",
        "seccomp",
        "spec",
        "state_dir_fd",
    )  # fmt: skip

    def __init__(self, container_id: str, bundle: str, rootfs: str, spec: Spec, sc: Syscalls) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.rootfs = rootfs
        self.spec = spec
        self.sc = sc
        self.mounts: list[MountEntry] = []
        self.new_flags = 0  # CLONE_NEW* of the namespaces to create
        self.join_fds: list[tuple[str, int, str]] = []  # (type, fd, path) to setns into
        self.fifo_fd = -1  # exec.fifo, written by init at start; its closing tells `rune start` we run
        self.state_dir_fd = -1  # O_PATH fd of <root>/<id>, for exec.fifo after pivot_root
        self.console_fd = -1  # connected --console-socket, or -1
        self.no_pivot = False
        self.no_new_keyring = False
        self.preserve_fds = 0
        self.channel: Channel | None = None
        self.executor: object = None  # how init runs the workload (exec, or an enclave runtime)
        self.cgroup_mounts: dict[str, str] = {}  # host cgroup dirs to expose for "cgroup" mounts
        self.hook_state: dict[str, object] = {}  # the OCI state hooks get on stdin
        self.dmz_fd = -1  # sealed memfd of the exec trampoline (_sys/dmz.py)
        self.seccomp: object = None  # a compiled filter (runtime.seccomp), loaded right before execve
        # Without a mount namespace of its own: [mount id, destination] of each mount
        # init makes, handed to create with "hooks" (rootfs/owned.py); None otherwise.
        self.made_mounts: list[list[object]] | None = None
