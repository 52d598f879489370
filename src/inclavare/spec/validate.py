"""Semantic checks of a parsed spec, before anything is created.

Shape errors are caught while loading (:mod:`.load`); this module checks
meaning: values the kernel would reject, combinations the runtime spec
forbids, and host paths that must exist. The first problem found is raised
as one SpecError line. What can only be checked against the live system at
create time (e.g. that a namespace path really is a namespace of that type)
is checked there.
"""

from __future__ import annotations

import os

from .._sys import consts
from ..errors import SpecError
from .model import Spec

ROOTFS_PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")
DEVICE_TYPES = ("c", "b", "u", "p")
_UINT32 = (1 << 32) - 1

# sysctl prefixes and the namespace that makes them container-local
# (runc libcontainer/configs/validate: sysctl()).
_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")  # fmt: skip


def validate(spec: Spec, bundle: str, file: str = "config.json") -> None:
    """Raise SpecError for the first violation found in `spec`."""
    _check_version(spec, file)
    _check_root(spec, bundle, file)
    _check_process(spec, file)
    _check_mounts(spec, file)
    _check_hooks(spec, file)
    _check_linux(spec, file)


def _check_version(spec: Spec, file: str) -> None:
    if not spec.oci_version.startswith("1."):
        raise SpecError("ociVersion", f"unsupported version {spec.oci_version!r} (rune implements 1.x)", file)


def _check_root(spec: Spec, bundle: str, file: str) -> None:
    if spec.root is None:
        raise SpecError("root", "is required on Linux", file)
    path = os.path.join(bundle, spec.root.path)
    if not os.path.isdir(path):
        raise SpecError("root.path", f"rootfs {path} does not exist or is not a directory", file)


def _check_process(spec: Spec, file: str) -> None:
    proc = spec.process
    if proc is None:
        raise SpecError("process", "is required to create a container", file)
    if not proc.args:
        raise SpecError("process.args", "must be a non-empty array", file)
    if not proc.cwd.startswith("/"):
        raise SpecError("process.cwd", f"must be an absolute path, not {proc.cwd!r}", file)
    for i, entry in enumerate(proc.env):
        if "=" not in entry:
            raise SpecError(f"process.env[{i}]", f"{entry!r} is not KEY=VALUE", file)
    for field in ("uid", "gid"):
        value = getattr(proc.user, field)
        if not 0 <= value <= _UINT32:
            raise SpecError(f"process.user.{field}", f"{value} is out of range", file)
    for i, gid in enumerate(proc.user.additional_gids):
        if not 0 <= gid <= _UINT32:
            raise SpecError(f"process.user.additionalGids[{i}]", f"{gid} is out of range", file)
    _check_capabilities(spec, file)
    _check_rlimits(spec, file)
    if proc.oom_score_adj is not None and not -1000 <= proc.oom_score_adj <= 1000:
        raise SpecError("process.oomScoreAdj", f"{proc.oom_score_adj} is outside [-1000, 1000]", file)


def _check_capabilities(spec: Spec, file: str) -> None:
    caps = spec.process.capabilities if spec.process else None
    if caps is None:
        return
    for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        for i, name in enumerate(getattr(caps, kind)):
            if name not in consts.CAP_BITS:
                # The spec: "unknown capability names MUST generate an error".
                raise SpecError(f"process.capabilities.{kind}[{i}]", f"unknown capability {name!r}", file)


def _check_rlimits(spec: Spec, file: str) -> None:
    seen: set[str] = set()
    for i, rl in enumerate(spec.process.rlimits if spec.process else []):
        where = f"process.rlimits[{i}]"
        if rl.type not in consts.RLIMITS:
            raise SpecError(where + ".type", f"unknown rlimit {rl.type!r}", file)
        if rl.type in seen:
            raise SpecError(where + ".type", f"duplicate rlimit {rl.type}", file)
        seen.add(rl.type)
        if rl.soft > rl.hard:
            raise SpecError(where, f"soft limit {rl.soft} exceeds hard limit {rl.hard}", file)


def _check_mounts(spec: Spec, file: str) -> None:
    for i, m in enumerate(spec.mounts):
        if not m.destination.startswith("/"):
            raise SpecError(f"mounts[{i}].destination", f"must be an absolute path, not {m.destination!r}", file)
        if m.type is None and "bind" not in m.options and "rbind" not in m.options:
            raise SpecError(f"mounts[{i}].type", "is required unless options has bind or rbind", file)


def _check_hooks(spec: Spec, file: str) -> None:
    if spec.hooks is None:
        return
    from .model import HOOK_KINDS, _attr

    for kind in HOOK_KINDS:
        for i, hook in enumerate(getattr(spec.hooks, _attr(kind))):
            where = f"hooks.{kind}[{i}]"
            if not hook.path.startswith("/"):
                raise SpecError(where + ".path", f"must be an absolute path, not {hook.path!r}", file)
            if hook.timeout is not None and hook.timeout <= 0:
                raise SpecError(where + ".timeout", "must be greater than zero", file)


def _check_linux(spec: Spec, file: str) -> None:
    linux = spec.linux
    if linux is None:
        raise SpecError("linux", "is required on Linux", file)
    kinds = _check_namespaces(spec, file)
    if "user" in kinds and kinds["user"] is None and not (linux.uid_mappings and linux.gid_mappings):
        raise SpecError("linux.uidMappings", "a new user namespace needs uid and gid mappings", file)
    if (linux.uid_mappings or linux.gid_mappings) and "user" not in kinds:
        raise SpecError("linux.uidMappings", "mappings need a user namespace", file)
    if spec.hostname and "uts" not in kinds:
        raise SpecError("hostname", "setting the hostname needs a new uts namespace", file)
    if spec.domainname and "uts" not in kinds:
        raise SpecError("domainname", "setting the domainname needs a new uts namespace", file)
    if linux.rootfs_propagation and linux.rootfs_propagation not in ROOTFS_PROPAGATIONS:
        raise SpecError("linux.rootfsPropagation", f"invalid value {linux.rootfs_propagation!r}", file)
    for i, dev in enumerate(linux.devices):
        where = f"linux.devices[{i}]"
        if dev.type not in DEVICE_TYPES:
            raise SpecError(where + ".type", f"invalid device type {dev.type!r}", file)
        if not dev.path.startswith("/dev/"):
            raise SpecError(where + ".path", f"{dev.path!r} is not under /dev", file)
        if dev.type != "p" and (dev.major is None or dev.minor is None):
            raise SpecError(where, "major and minor are required for this device type", file)
    for field in ("masked_paths", "readonly_paths"):
        for i, path in enumerate(getattr(linux, field)):
            if not path.startswith("/"):
                name = "maskedPaths" if field == "masked_paths" else "readonlyPaths"
                raise SpecError(f"linux.{name}[{i}]", f"must be an absolute path, not {path!r}", file)
    _check_sysctl(spec, kinds, file)


def _check_namespaces(spec: Spec, file: str) -> dict[str, str | None]:
    kinds: dict[str, str | None] = {}
    for i, ns in enumerate(spec.linux.namespaces if spec.linux else []):
        where = f"linux.namespaces[{i}]"
        if ns.type not in consts.NAMESPACES:
            raise SpecError(where + ".type", f"unknown namespace type {ns.type!r}", file)
        if ns.type in kinds:
            raise SpecError(where + ".type", f"duplicate namespace {ns.type!r}", file)
        if ns.path is not None and not ns.path.startswith("/"):
            raise SpecError(where + ".path", f"must be an absolute path, not {ns.path!r}", file)
        kinds[ns.type] = ns.path
    return kinds


def sysctl_namespace(key: str) -> str | None:
    """The namespace type that makes sysctl `key` container-local, None if none does."""
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def _check_sysctl(spec: Spec, kinds: dict[str, str | None], file: str) -> None:
    """A sysctl needs the namespace that scopes it. One joined by path may
    still be the host's: `rune create` checks that against the live system."""
    for key in spec.linux.sysctl if spec.linux else {}:
        where = f"linux.sysctl.{key}"
        needed = sysctl_namespace(key)
        if needed is None:
            raise SpecError(where, "is not namespaced and would change the host", file)
        if needed not in kinds:
            raise SpecError(where, f"needs a new {needed} namespace", file)
        if ".." in key or "/" in key:
            raise SpecError(where, "invalid sysctl name", file)
