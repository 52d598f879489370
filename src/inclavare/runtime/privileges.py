"""Who the container process runs as: rlimits, user and groups, capabilities.

Order matters (capabilities(7), "Effect of user ID changes on capabilities"):

1. rlimits, while still privileged (raising a hard limit needs CAP_SYS_RESOURCE);
2. drop the bounding set (PR_CAPBSET_DROP needs CAP_SETPCAP);
3. PR_SET_KEEPCAPS, then setgroups/setresgid/setresuid — without KEEPCAPS
   leaving uid 0 would clear the permitted set;
4. capset(effective, permitted, inheritable) from the spec;
5. raise the ambient set (each cap must be permitted and inheritable).

execve(2) recomputes the sets afterwards; for uid 0 without file
capabilities the new permitted set is inheritable | bounding, which is why
the bounding set is the one that really limits a root container.
"""

from __future__ import annotations

import os
import resource  # imported here, not lazily: after pivot_root the host's stdlib is out of reach

from .._sys import consts as c
from ..errors import InclavareError
from ..spec.model import Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .._sys import Syscalls


def cap_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << c.CAP_BITS[name]
    return mask


def apply_rlimits(process: Process) -> None:
    for i, rl in enumerate(process.rlimits):
        try:
            resource.setrlimit(c.RLIMITS[rl.type], (rl.soft, rl.hard))
        except (ValueError, OSError) as exc:
            _, current = resource.getrlimit(c.RLIMITS[rl.type])
            why = (f"cannot raise the hard limit above {current} (needs CAP_SYS_RESOURCE)"
                   if rl.hard > current else str(exc))  # fmt: skip
            raise InclavareError(f"process.rlimits[{i}] {rl.type}: {why}") from None


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(c.CAPABILITIES) - 1


def drop_bounding(sc: Syscalls, keep: int) -> None:
    for bit in range(last_cap() + 1):
        if not keep & (1 << bit):
            sc.prctl(c.PR_CAPBSET_DROP, bit)


def switch_user(sc: Syscalls, process: Process) -> None:
    user = process.user
    sc.prctl(c.PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(user.additional_gids)
    except PermissionError:
        # Rootless: setgroups(2) is denied in the user namespace; dropping to
        # no supplementary groups was all that was asked, and there are none.
        if user.additional_gids or os.getgroups():
            raise
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    sc.prctl(c.PR_SET_KEEPCAPS, 0)


def apply_capabilities(sc: Syscalls, process: Process, keep: int = 0) -> None:
    """Steps 2 to 5 of the module docstring (user switch included).

    `keep`: capabilities to hold on to in the effective and permitted sets
    until execve — only CAP_SYS_ADMIN, when a seccomp filter must be loaded
    without no_new_privs (seccomp(2) demands one or the other). execve drops
    it again: the new permitted set comes from the bounding and ambient sets,
    and `keep` is never added to those.
    """
    caps = process.capabilities
    if caps is None:
        # No capabilities object: the process gets none at all (spec default).
        drop_bounding(sc, 0)
        switch_user(sc, process)
        sc.capset(keep, keep, 0)
        return
    drop_bounding(sc, cap_mask(caps.bounding))
    switch_user(sc, process)
    sc.capset(cap_mask(caps.effective) | keep, cap_mask(caps.permitted) | keep, cap_mask(caps.inheritable))
    sc.prctl(c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in caps.ambient:
        # A capability can only be ambient if it is permitted *and* inheritable;
        # runc's template lists ambient caps without inheritable ones, and runc
        # skips those silently, so rune does too.
        if cap_mask([name]) & cap_mask(caps.inheritable) & cap_mask(caps.permitted):
            sc.prctl(c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_RAISE, c.CAP_BITS[name])
