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
    from .linux import LinuxSyscalls as Syscalls

_default = None


def default() -> Syscalls:
    """The process-wide real syscall implementation (created on first use)."""
    global _default
    if _default is None:
        from .linux import LinuxSyscalls

        _default = LinuxSyscalls()
    return _default
