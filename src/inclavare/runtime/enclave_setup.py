"""`rune create` for a container whose bundle asks for an enclave — or must.

:func:`decide` reads everything enclave-specific of a bundle in one pass and
returns one value (an :class:`EnclavePlan`, or None for a plain container),
which `rune create` puts in the launch plan (runtime/plan.py); :func:`apply`
makes it part of the spec and the state, :func:`executor` gives init what it
runs instead of execve. The rules, all failing closed:

* the Kubernetes sandbox ("pause") container is never an enclave: pod-level
  ``enclave.*`` annotations, which containerd copies to the sandbox and to
  each container of the pod, are for the pod's containers. It is recognised
  by the CRI annotations (``io.kubernetes.cri.container-type: sandbox``, or
  CRI-O's) *and* the sandbox id being this container's own id, so that a
  workload cannot pass for a sandbox by copying one annotation;
* every setting is checked for spelling (enclave/config.py): unknown or
  misspelt ``enclave.*`` / ``ENCLAVE_*`` names are refused, not ignored;
* with the node's ``enclave.required`` (or ``rune --enclave-required``), a
  container that asks for no enclave is refused;
* a PAL library is opened only from the node's ``pal_dirs``, by fd, never
  from the bundle or the rootfs (enclave/registry.py ``select``).

For an enclave container the plan takes the ENCLAVE_* variables out of the
workload's environment, adds for ``intelSgx`` the host's SGX device nodes
(with device-cgroup allow rules) and the aesmd socket directory, makes the
agent socket ``<root>/<id>/agent.sock`` that `rune exec` and `rune attest`
talk to (mode 0600: only rune, as root, connects), records the enclave
configuration in the container state and gives init an
:class:`~inclavare.runtime.process.enclave_executor.EnclaveExecutor`. A plain bundle imports
only the (small) settings reader.
"""

from __future__ import annotations

import os

from ..errors import SpecError
from ..spec.model import Device, Mount, Spec
from . import state as st
from .context import RuntimeContext

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from ..enclave.config import EnclaveConfig, Settings
    from ..enclave.provision import KbsPlan
    from .process.executor import Executor

AGENT_SOCKET = "agent.sock"
# CRI's marks of a pod's sandbox container: (container-type key, sandbox-id key),
# containerd's (pkg/cri/annotations) and CRI-O's (pkg/annotations).
SANDBOX_MARKS = (("io.kubernetes.cri.container-type", "io.kubernetes.cri.sandbox-id"),
                 ("io.kubernetes.cri-o.ContainerType", "io.kubernetes.cri-o.SandboxID"))  # fmt: skip


class EnclavePlan:
    """Everything a bundle's enclave settings make of a container."""

    __slots__ = ("config", "devices", "env", "kbs", "mounts", "pal_fd", "pool_fd", "relay_fd")

    def __init__(self, config: EnclaveConfig, env: list[str], devices: list[Device], mounts: list[Mount],
                 kbs: KbsPlan | None, pal_fd: int) -> None:  # fmt: skip
        self.config = config
        self.env = env  # the workload's environment, without rune's ENCLAVE_* parameters
        self.devices = devices  # host devices the enclave type needs (SGX), not yet in the spec
        self.mounts = mounts  # host mounts it needs (aesmd), plus the secrets' tmpfs
        self.kbs = kbs
        self.pal_fd = pal_fd  # the checked PAL library, or -1 for a registered runtime
        self.relay_fd = -1  # rune create's end of the provisioning tunnel (executor() makes it)
        self.pool_fd = -1  # a warm instance's control socket (claim_pooled), or -1

    def close(self) -> None:
        """Close the PAL library's fd (`rune create`'s copy; init has its own), the tunnel's
        and a pooled instance's (which, if init never took it, ends the instance)."""
        for fd in (self.pal_fd, self.relay_fd, self.pool_fd):
            if fd >= 0:
                os.close(fd)
        self.pal_fd = self.relay_fd = self.pool_fd = -1

    def take_relay_fd(self) -> int:
        """The tunnel's host end, for the relay (enclave/provision/host_relay.py), which closes it."""
        fd, self.relay_fd = self.relay_fd, -1
        return fd


def is_sandbox(annotations: dict[str, str], container_id: str) -> bool:
    """True for a Kubernetes pod's sandbox container (see the module docstring)."""
    for kind_key, id_key in SANDBOX_MARKS:
        if annotations.get(kind_key) == "sandbox":
            if annotations.get(id_key) != container_id:
                raise SpecError(f"annotations.{kind_key}",
                                f"says sandbox, but {id_key} is not this container's id ({container_id})")  # fmt: skip
            return True
    return False


def decide(ctx: RuntimeContext, spec: Spec, container_id: str, forbidden: tuple[str, ...]) -> EnclavePlan | None:
    """The enclave plan of a bundle, or None for a plain container; refuses
    what must not run (see the module docstring). `forbidden`: places a PAL
    may never come from (the bundle, the rootfs)."""
    if is_sandbox(spec.annotations, container_id):
        return None
    from ..enclave.config import enclave_config, read_settings
    from ..enclave.errors import EnclaveConfigError

    env = spec.process.env if spec.process else []
    try:
        settings = read_settings(spec.annotations, env)
        config = enclave_config(settings)
    except EnclaveConfigError as exc:
        raise SpecError(exc.source, exc.reason) from None
    if config is None:
        node = ctx.node()
        if node.required_by:
            raise SpecError("annotations.enclave.type", f"this runtime runs enclave containers only "
                            f"({node.required_by}), and the container asks for none")  # fmt: skip
        return None
    return _enclave_plan(ctx, spec, config, settings, forbidden)


def _enclave_plan(ctx: RuntimeContext, spec: Spec, config: EnclaveConfig, settings: Settings,
                  forbidden: tuple[str, ...]) -> EnclavePlan:  # fmt: skip
    from ..enclave import registry
    from ..enclave.config import host_resources
    from ..enclave.errors import EnclaveConfigError, EnclaveRuntimeNotFound
    from ..enclave.provision import KbsPlan, secrets_mount
    from . import memory_grant

    assert spec.linux is not None
    try:
        kbs = KbsPlan.from_settings(settings)
    except EnclaveConfigError as exc:
        raise SpecError(exc.source, exc.reason) from None
    config = memory_grant.bound(config, settings, rootfs=forbidden[-1])  # forbidden: (bundle, rootfs)
    devices, mounts = host_resources(config)
    known = {d.path for d in spec.linux.devices}
    targets = {m.destination for m in spec.mounts}
    devices = [d for d in devices if d.path not in known]
    mounts = [m for m in mounts if m.destination not in targets]
    if kbs is not None:
        _check_secrets_home(spec, kbs.secrets_dir, targets, settings.source("kbs_url"))
        mounts.append(secrets_mount(kbs.secrets_dir))
        if kbs.insecure_unpinned:
            ctx.warn(f"{settings.source('kbs_insecure_unpinned')}: an enclave that pins no key broker will "
                     "attest to the one the host names (development only; enclave/provision/pin.py)")  # fmt: skip
    try:
        pal_fd = registry.select(config.runtime, pal_dirs=ctx.node().pal_dirs, forbidden=forbidden)
    except EnclaveRuntimeNotFound as exc:
        raise SpecError(config.sources.get("runtime", "annotations.enclave.runtime.path"), str(exc)) from None
    return EnclavePlan(config, settings.env, devices, mounts, kbs, pal_fd)


def apply(plan: EnclavePlan, spec: Spec, state: st.State) -> None:
    """Make the plan part of the spec (before the cgroups and the launch plan
    read it) and of the state (`rune exec`, `attest`, `state` read it there)."""
    # spec.validate refused a bundle without these
    assert spec.process is not None
    assert spec.linux is not None
    spec.process.env = plan.env
    spec.linux.devices.extend(plan.devices)
    spec.mounts.extend(plan.mounts)
    state.extra["enclave"] = plan.config.to_json()


def claim_pooled(ctx: RuntimeContext, plan: EnclavePlan, spec: Spec, state: st.State, preserve_fds: int) -> None:
    """Take a warm instance of exactly this enclave from epm's pool, if one is ready
    (enclave/pool/). Any reason not to is one debug line and the unpooled path,
    which verifies everything itself: the pool only ever saves time."""
    config = plan.config
    socket_path = ctx.node().pool_socket
    if not socket_path or config.runtime not in ("wasm", "native") or config.type != "software":
        return
    why = ""
    if os.geteuid() != 0:
        why = "rune is not root"
    elif preserve_fds:
        why = "--preserve-fds: the pool serves stdio only"
    elif spec.linux is not None and any(ns.type == "time" for ns in spec.linux.namespaces):
        why = "a time namespace applies to children only: the enclave would keep the host's clocks"
    elif spec.linux is None or not any(ns.type == "mount" and not ns.path for ns in spec.linux.namespaces):
        why = "no mount namespace of its own: the container's root is only init's chroot"
    elif not os.path.exists(socket_path):
        why = f"no pool socket at {socket_path}"
    if not why:
        from .. import _sys
        from ..enclave.pool import claim, key

        try:
            pool_key = key.key_of_rootfs(_sys.default(), state.rootfs, config.runtime, config.args)
            sock, why = claim.claim(socket_path, pool_key)
        except Exception as exc:  # the unpooled path reports what is wrong with the bundle
            sock, why = None, str(exc)
        if sock is not None:
            plan.pool_fd = sock.detach()
            _record(state, "hit")
            ctx.trace(f"enclave pool: hit for {pool_key[:16]}")
            return
    _record(state, "miss")
    ctx.trace(f"enclave pool: miss ({why}): starting the enclave here")


def _record(state: st.State, outcome: str) -> None:
    """`rune state` shows it in the enclave section (apply() wrote that section)."""
    section = state.extra.get("enclave")
    if isinstance(section, dict):
        section["pool"] = outcome


def executor(plan: EnclavePlan, state_dir: str) -> Executor:
    """What init runs instead of execve, with the agent socket it serves;
    the PAL's fd passes to it (the plan no longer closes it). With a KBS, the
    control socketpair of the provisioning tunnel: init passes the connections
    it wants rune to make over it (enclave/provision/host_relay.py)."""
    import socket

    from .process.enclave_executor import EnclaveExecutor

    tunnel = (-1, -1)
    if plan.kbs is not None:
        enclave_end, host_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        plan.relay_fd = host_end.detach()
        tunnel = (enclave_end.detach(), plan.relay_fd)
    runner = EnclaveExecutor(plan.config, _listen(state_dir), plan.kbs, plan.pal_fd, tunnel, plan.pool_fd)
    plan.pal_fd = plan.pool_fd = -1
    return runner


def _check_secrets_home(spec: Spec, directory: str, targets: set[str], source: str) -> None:
    """Secrets go to a tmpfs private to the container: without a mount
    namespace it would be mounted in the host's, and a bundle mount at the
    same place (a host bind, a volume) would put them on someone's disk."""
    assert spec.linux is not None
    if not any(ns.type == "mount" for ns in spec.linux.namespaces):
        raise SpecError(source, "secret provisioning needs a mount namespace (linux.namespaces)")
    if directory in targets:
        raise SpecError("mounts", f"{directory} is where provisioned secrets go; no bundle mount may be there")


def _listen(state_dir: str) -> int:
    """Bind and listen on <state dir>/agent.sock; the fd goes to init.

    The path is bound through /proc/self/fd/<dir fd>: a long --root would
    overflow sun_path's 108 bytes (inclavare-containers#1123).
    """
    import socket

    dfd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(f"/proc/self/fd/{dfd}/{AGENT_SOCKET}")
        finally:
            os.umask(old)
        sock.listen(16)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dfd)
    return sock.detach()


def connect(state: st.State) -> socket.socket:
    """A socket connected to a running enclave container's init-runelet."""
    import socket

    from ..errors import ContainerError

    dfd = os.open(state.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(f"/proc/self/fd/{dfd}/{AGENT_SOCKET}")
    except OSError as exc:
        sock.close()
        raise ContainerError(f"container {state.id}: enclave agent: {exc.strerror}") from None
    finally:
        os.close(dfd)
    return sock
