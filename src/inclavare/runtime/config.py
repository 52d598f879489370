"""The internal container configuration derived from the OCI spec.

The spec model (:mod:`inclavare.spec.model`) is what the user wrote; this is
what rune will do: namespaces split into "join by path" and "create", mount
options turned into mount(2) flags, propagation and data, paths made absolute.
Like runc's specconv, it is computed once in `rune create` and handed to the
child processes.
"""

from __future__ import annotations

import os

from .._sys import consts as c
from ..spec.model import Spec

# Mount option -> (set?, flag). Ref: mount(8) FILESYSTEM-INDEPENDENT MOUNT OPTIONS,
# and runc libcontainer/specconv mountPropagationMapping/parseMountOptions.
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "async": (False, c.MS_SYNCHRONOUS), "atime": (False, c.MS_NOATIME), "bind": (True, c.MS_BIND),
    "defaults": (True, 0), "dev": (False, c.MS_NODEV), "diratime": (False, c.MS_NODIRATIME),
    "dirsync": (True, c.MS_DIRSYNC), "exec": (False, c.MS_NOEXEC), "mand": (True, c.MS_MANDLOCK),
    "noatime": (True, c.MS_NOATIME), "nodev": (True, c.MS_NODEV), "nodiratime": (True, c.MS_NODIRATIME),
    "noexec": (True, c.MS_NOEXEC), "nomand": (False, c.MS_MANDLOCK), "norelatime": (False, c.MS_RELATIME),
    "nostrictatime": (False, c.MS_STRICTATIME), "nosuid": (True, c.MS_NOSUID),
    "rbind": (True, c.MS_BIND | c.MS_REC), "relatime": (True, c.MS_RELATIME), "remount": (True, c.MS_REMOUNT),
    "ro": (True, c.MS_RDONLY), "rw": (False, c.MS_RDONLY), "strictatime": (True, c.MS_STRICTATIME),
    "suid": (False, c.MS_NOSUID), "sync": (True, c.MS_SYNCHRONOUS), "nosymfollow": (True, c.MS_NOSYMFOLLOW),
    "symfollow": (False, c.MS_NOSYMFOLLOW), "lazytime": (True, c.MS_LAZYTIME),
    "nolazytime": (False, c.MS_LAZYTIME), "iversion": (True, c.MS_I_VERSION),
    "noiversion": (False, c.MS_I_VERSION),
}  # fmt: skip

PROPAGATION: dict[str, int] = {
    "private": c.MS_PRIVATE, "rprivate": c.MS_PRIVATE | c.MS_REC,
    "shared": c.MS_SHARED, "rshared": c.MS_SHARED | c.MS_REC,
    "slave": c.MS_SLAVE, "rslave": c.MS_SLAVE | c.MS_REC,
    "unbindable": c.MS_UNBINDABLE, "runbindable": c.MS_UNBINDABLE | c.MS_REC,
}  # fmt: skip


class MountEntry:
    """One mount as rune performs it."""

    __slots__ = ("copy_up", "data", "destination", "flags", "fstype", "propagation", "source")

    def __init__(self, destination: str, source: str, fstype: str, flags: int,
                 propagation: list[int], data: str, copy_up: bool) -> None:  # fmt: skip
        self.destination = destination
        self.source = source
        self.fstype = fstype
        self.flags = flags
        self.propagation = propagation
        self.data = data
        self.copy_up = copy_up

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & c.MS_BIND)


def parse_mount_options(options: list[str]) -> tuple[int, list[int], str, bool]:
    """Split OCI mount options into (flags, propagation flags, data, tmpcopyup)."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    copy_up = False
    for opt in options:
        if opt in _FLAG_OPTIONS:
            setting, flag = _FLAG_OPTIONS[opt]
            flags = flags | flag if setting else flags & ~flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt == "tmpcopyup":
            copy_up = True  # runc extension: seed a tmpfs with the rootfs content beneath it
        else:
            data.append(opt)
    return flags, propagation, ",".join(data), copy_up


def mount_entries(spec: Spec, bundle: str) -> list[MountEntry]:
    entries = []
    for m in spec.mounts:
        flags, propagation, data, copy_up = parse_mount_options(m.options)
        fstype = m.type or ("bind" if flags & c.MS_BIND else "")
        if fstype == "bind":
            flags |= c.MS_BIND
        source = m.source or ""
        if flags & c.MS_BIND and source and not source.startswith("/"):
            source = os.path.join(bundle, source)  # relative bind sources are bundle-relative
        entries.append(MountEntry(m.destination, source, fstype, flags, propagation, data, copy_up))
    return entries


def namespace_plan(spec: Spec) -> tuple[int, list[tuple[str, str]]]:
    """(flags of namespaces to create, [(type, path)] of namespaces to join)."""
    new_flags = 0
    join: list[tuple[str, str]] = []
    for ns in spec.linux.namespaces if spec.linux else []:
        if ns.path:
            join.append((ns.type, ns.path))
        else:
            new_flags |= c.NAMESPACES[ns.type][0]
    return new_flags, join
