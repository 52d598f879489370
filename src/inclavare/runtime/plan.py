"""What a bundle will become: the launch plan, decided once by `rune create`.

:func:`build` reads the validated spec, the command-line options, the
enclave plan (runtime/enclave_setup.py ``decide``) and the container's
cgroups, refuses what this host cannot honour, and returns a
:class:`LaunchPlan` — frozen, because the forked children (intermediate and
init, process/messages.py has the diagram) read it from their copy of
create's memory and nothing after this point may change what they do. The
open ends the children use up (fds, the channel) are apart, in
:class:`.process.launch.LaunchFds`. runc keeps the same split between its
``configs.Config`` (made by specconv) and the ``initProcess``; youki builds
its ``ContainerArgs`` in one builder call.
"""

from __future__ import annotations

from .._sys import consts as c
from ..errors import InclavareError
from . import lsm, rdt
from .config import mount_entries, namespace_plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ..seccomp import Filter
    from ..spec.model import Linux, Process, Root, Spec
    from .config import MountEntry
    from .create import CreateOptions
    from .enclave_setup import EnclavePlan


class LaunchPlan:
    """Everything intermediate and init do, decided; immutable once made."""

    __slots__ = ("bundle", "cgroup_mounts", "container_id", "enclave", "joins", "mounts", "new_flags",
                 "no_new_keyring", "no_pivot", "preserve_fds", "rootfs", "seccomp", "spec")  # fmt: skip
    container_id: str
    bundle: str
    rootfs: str  # absolute path of root.path
    spec: Spec  # as validated, with the enclave plan applied (env, devices, mounts)
    mounts: tuple[MountEntry, ...]  # in spec order, mount labels applied
    new_flags: int  # CLONE_NEW* of the namespaces to create
    joins: tuple[tuple[str, str], ...]  # (type, path) of the namespaces to join
    cgroup_mounts: dict[str, str]  # what a "cgroup" mount binds (CgroupManager.mount_sources)
    seccomp: Filter | None  # compiled linux.seccomp, loaded right before execve
    enclave: EnclavePlan | None  # None for a plain container
    no_pivot: bool
    no_new_keyring: bool
    preserve_fds: int

    def __init__(self, *, container_id: str, bundle: str, rootfs: str, spec: Spec, mounts: tuple[MountEntry, ...],
                 new_flags: int, joins: tuple[tuple[str, str], ...], cgroup_mounts: dict[str, str],
                 seccomp: Filter | None, enclave: EnclavePlan | None, no_pivot: bool, no_new_keyring: bool,
                 preserve_fds: int) -> None:  # fmt: skip
        init = object.__setattr__  # our own __setattr__ refuses every assignment
        init(self, "container_id", container_id)
        init(self, "bundle", bundle)
        init(self, "rootfs", rootfs)
        init(self, "spec", spec)
        init(self, "mounts", mounts)
        init(self, "new_flags", new_flags)
        init(self, "joins", joins)
        init(self, "cgroup_mounts", cgroup_mounts)
        init(self, "seccomp", seccomp)
        init(self, "enclave", enclave)
        init(self, "no_pivot", no_pivot)
        init(self, "no_new_keyring", no_new_keyring)
        init(self, "preserve_fds", preserve_fds)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"the launch plan is frozen: {name} cannot change")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"the launch plan is frozen: {name} cannot change")

    # spec.validate refused a bundle without these: never None here.
    @property
    def process(self) -> Process:
        assert self.spec.process is not None
        return self.spec.process

    @property
    def root(self) -> Root:
        assert self.spec.root is not None
        return self.spec.root

    @property
    def linux(self) -> Linux:
        assert self.spec.linux is not None
        return self.spec.linux

    @property
    def own_mount_ns(self) -> bool:
        """A mount namespace of its own (created or joined); else it shares the host's."""
        return bool(self.new_flags & c.CLONE_NEWNS) or any(t == "mount" for t, _p in self.joins)

    @property
    def in_userns(self) -> bool:
        """In a user namespace (created or joined): device nodes are bind-mounted, not made."""
        return bool(self.new_flags & c.CLONE_NEWUSER) or any(t == "user" for t, _p in self.joins)


def build(container_id: str, bundle: str, rootfs: str, spec: Spec, opts: CreateOptions,
          enclave: EnclavePlan | None, cgroup_mounts: dict[str, str]) -> LaunchPlan:  # fmt: skip
    """The plan for a validated `spec`; raises what this host or the options cannot honour."""
    process, linux = spec.process, spec.linux
    # spec.validate refused a bundle without these
    assert process is not None
    assert linux is not None
    lsm.check(process.apparmor_profile, process.selinux_label)
    rdt.check(linux.intel_rdt)
    if process.terminal and not opts.console_socket:
        raise InclavareError("cannot allocate a tty without --console-socket when detached (process.terminal is true)")
    new_flags, joins = namespace_plan(spec)
    return LaunchPlan(
        container_id=container_id, bundle=bundle, rootfs=rootfs, spec=spec,
        mounts=_labelled(mount_entries(spec, bundle), lsm.mount_context(linux.mount_label)),
        new_flags=new_flags, joins=tuple(joins), cgroup_mounts=cgroup_mounts, seccomp=_seccomp(linux.seccomp),
        enclave=enclave, no_pivot=opts.no_pivot, no_new_keyring=opts.no_new_keyring,
        preserve_fds=opts.preserve_fds,
    )  # fmt: skip


def _labelled(mounts: list[MountEntry], context: str) -> tuple[MountEntry, ...]:
    """linux.mountLabel as the ``context=`` option of the filesystems that take one."""
    for m in mounts:
        if context and not m.is_bind and m.fstype in ("tmpfs", "devpts", "mqueue"):
            m.data = f"{m.data},{context}" if m.data else context
    return tuple(mounts)


def _seccomp(section: object) -> Filter | None:
    if section is None:
        return None
    from .. import seccomp  # libseccomp: only for containers that ask for a filter

    return seccomp.compile_filter(section)
