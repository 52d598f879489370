"""A recording stand-in for :class:`~inclavare._sys.linux.LinuxSyscalls`.

Unit tests hand a ``FakeSyscalls`` to container-setup code and then assert on
``calls`` — which namespaces were unshared versus joined, which mounts were
made in which order — without root and without touching the host. A call can
be made to fail with ``fail_on[(name, first_arg)] = errno``.
"""

from __future__ import annotations

import os
import tempfile

from ..errors import SyscallError
from . import consts as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from . import Syscalls


class FakeSyscalls:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.fail_on: dict[tuple[str, object], int] = {}
        self.caps = (0, 0, 0)
        self._next_fd = 1000

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, *args))
        errno = self.fail_on.get((name, args[0] if args else None))
        if errno:
            raise SyscallError(name, errno, str(args[0]) if args else "")

    def names(self) -> list[str]:
        return [str(call[0]) for call in self.calls]

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        self._record("mount", target, source, fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def chroot(self, path: str) -> None:
        self._record("chroot", path)

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        self._record("openat2", path, dirfd, flags, resolve)
        self._next_fd += 1
        return self._next_fd

    def mount_id(self, fd: int) -> int:
        """A query, not recorded: the real id for a real fd, else 0."""
        try:
            with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(b"mnt_id:"))
        except (OSError, StopIteration):
            return 0

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int, path: str = "") -> None:
        self._record("setns", path, nstype)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._record("setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self._record("prctl", option, arg2, arg3)
        return 0

    def set_name(self, name: str) -> None:
        self._record("set_name", name)

    def capget(self) -> tuple[int, int, int]:
        return self.caps

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._record("capset", effective, permitted, inheritable)
        self.caps = (effective, permitted, inheritable)

    def join_session_keyring(self, name: str | None) -> None:
        self._record("join_session_keyring", name)

    def personality(self, persona: int) -> None:
        self._record("personality", persona)

    def close_range_cloexec(self, first: int) -> None:
        self._record("close_range_cloexec", first)


class TreeSyscalls(FakeSyscalls):
    """A FakeSyscalls over a real directory tree (a scratch rootfs).

    openat2 resolves for real — the kernel's RESOLVE_IN_ROOT needs no
    privilege, so symlink and ``..`` handling is the kernel's, not a model
    of it — while mounts are recorded, never made. What the code under test
    can observe of a mount is played out in the tree instead: the target
    then reports a new mount id (:meth:`mount_id`), and a tmpfs covers its
    target with an empty directory (the old one is moved under `scratch`,
    where fds opened before the mount still find its contents, as they do
    under a real mount). Everything else (mkdir, mknod, symlink, files)
    really happens, inside the tree.

    ``mounts`` lists each mount(2) call as (source, real path the target
    named at the time, fstype, flags, data).
    ``fail_mount_at[real path of the target] = errno`` makes one mount fail;
    ``after_mount(real path)``, if set, runs after each recorded mount (a
    test swaps a path there, as a racing container process would).
    """

    # Flags of a mount(2) call that changes an existing mount rather than making one.
    _CHANGES = c.MS_REMOUNT | c.MS_MOVE | c.MS_SHARED | c.MS_SLAVE | c.MS_PRIVATE | c.MS_UNBINDABLE

    def __init__(self, scratch: str) -> None:
        super().__init__()
        from .linux import LinuxSyscalls

        self._kernel = LinuxSyscalls()
        self._scratch = scratch
        self._mounted: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of a mount's root -> its id
        self._next_id = 1 << 20
        self.mounts: list[tuple[str | None, str, str | None, int, str | None]] = []
        self.fail_mount_at: dict[str, int] = {}
        self.after_mount: Callable[[str], None] | None = None

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        self._record("openat2", path, dirfd, flags, resolve)
        return self._kernel.openat2(dirfd, path, flags, resolve, mode)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        real = os.path.realpath(target)
        self.mounts.append((source, real, fstype, flags, data))
        errno = self.fail_mount_at.get(real)
        if errno:
            self.calls.append(("mount", target, source, fstype, flags, data))
            raise SyscallError("mount", errno, target)
        super().mount(source, target, fstype, flags, data)
        if flags & self._CHANGES or not target.startswith("/proc/self/fd/"):
            return  # a remount or propagation change, or the tree itself (prepare_root)
        if fstype == "tmpfs":
            self._cover(real)
        self._next_id += 1
        self._mounted[_identity(os.stat(real))] = self._next_id
        if self.after_mount is not None:
            self.after_mount(real)

    def _cover(self, directory: str) -> None:
        mode = os.stat(directory).st_mode & 0o7777
        os.rename(directory, tempfile.mkdtemp(dir=self._scratch) + "/covered")
        os.mkdir(directory, mode)

    def mount_id(self, fd: int) -> int:
        return self._mounted.get(_identity(os.fstat(fd))) or self._kernel.mount_id(fd)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


if TYPE_CHECKING:

    def _both_are_syscalls(fake: FakeSyscalls, tree: TreeSyscalls) -> tuple[Syscalls, Syscalls]:
        return fake, tree  # mypy checks that the fakes implement the whole seam
