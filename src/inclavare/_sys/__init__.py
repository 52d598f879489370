"""The syscall seam: the only place in inclavare that uses ctypes.

Everything that reaches the kernel beyond what :mod:`os` offers (mount,
pivot_root, unshare, setns, prctl, capset, openat2, keyctl, ...) goes through
an object with the :class:`Syscalls` interface. ``linux.LinuxSyscalls`` is the
real one; ``fake.FakeSyscalls`` records the calls so unit tests can check what
container setup *would* do without root (as youki's ``TestHelperSyscall``).

Importing this package is free; ``ctypes`` is loaded on the first call to
:func:`default`, so `rune state`/`list`/`kill` never pay for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Syscalls(Protocol):
        """The kernel as rune's container setup sees it. Each call raises
        :class:`inclavare.errors.SyscallError` naming itself and its target."""

        def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
                  data: str | None = None) -> None: ...  # fmt: skip

        def umount2(self, target: str, flags: int = 0) -> None: ...

        def pivot_root(self, new_root: str, put_old: str) -> None: ...

        def chroot(self, path: str) -> None: ...

        def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int: ...

        def mount_id(self, fd: int) -> int:
            """The id of the mount `fd` is on (proc(5) /proc/pid/fdinfo ``mnt_id``)."""

        def unshare(self, flags: int) -> None: ...

        def setns(self, fd: int, nstype: int, path: str = "") -> None: ...

        def sethostname(self, name: str) -> None: ...

        def setdomainname(self, name: str) -> None: ...

        def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int: ...

        def set_name(self, name: str) -> None: ...

        def capget(self) -> tuple[int, int, int]: ...

        def capset(self, effective: int, permitted: int, inheritable: int) -> None: ...

        def join_session_keyring(self, name: str | None) -> None: ...

        def personality(self, persona: int) -> None: ...

        def close_range_cloexec(self, first: int) -> None: ...


_default: Syscalls | None = None


def default() -> Syscalls:
    """The process-wide real syscall implementation (created on first use)."""
    global _default
    if _default is None:
        from .linux import LinuxSyscalls

        _default = LinuxSyscalls()
    return _default
