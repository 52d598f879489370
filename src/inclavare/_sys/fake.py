"""A recording stand-in for :class:`~inclavare._sys.linux.LinuxSyscalls`.

Unit tests hand a ``FakeSyscalls`` to container-setup code and then assert on
``calls`` — which namespaces were unshared versus joined, which mounts were
made in which order — without root and without touching the host. A call can
be made to fail with ``fail_on[(name, first_arg)] = errno``.
"""

from __future__ import annotations

from ..errors import SyscallError


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
