"""`rune create` for a container whose bundle asks for an enclave.

Decides whether the container is an enclave container (the enclave.*
annotations or ENCLAVE_* entries of process.env; inventory §1.2) without
importing any enclave code for a plain one, and otherwise:

* takes the ENCLAVE_* variables out of the workload's environment,
* for ``intelSgx``, adds the host's SGX device nodes (with device-cgroup
  allow rules) and the aesmd socket directory, as the original rune did,
* makes the agent socket ``<root>/<id>/agent.sock`` that `rune exec` and
  `rune attest` talk to (mode 0600: only rune, as root, connects),
* records the enclave configuration in the container state,
* gives init an :class:`~inclavare.enclave.executor.EnclaveExecutor`.
"""

from __future__ import annotations

import os

from ..spec.model import Spec
from . import state as st
from .process.launch import Launch

AGENT_SOCKET = "agent.sock"


def wants_enclave(spec: Spec) -> bool:
    env = spec.process.env if spec.process else []
    return "enclave.type" in spec.annotations or any(e.startswith("ENCLAVE_TYPE=") for e in env)


def prepare(launch: Launch, spec: Spec, state: st.State) -> None:
    """Everything above; a no-op (and no import) for a plain container."""
    if not wants_enclave(spec):
        if "enclave.kbs.url" in spec.annotations:
            from ..errors import SpecError

            raise SpecError(
                "annotations.enclave.kbs.url", "secret provisioning needs an enclave container (enclave.type)"
            )
        return
    from ..enclave import registry
    from ..enclave.config import enclave_config, host_resources
    from ..enclave.executor import EnclaveExecutor
    from ..enclave.provision import KbsPlan

    assert spec.process is not None
    assert spec.linux is not None
    cfg, env = enclave_config(spec.annotations, spec.process.env)
    if cfg is None:
        return
    registry.check(cfg.runtime)
    spec.process.env = env
    devices, mounts = host_resources(cfg)
    known = {d.path for d in spec.linux.devices}
    spec.linux.devices.extend(d for d in devices if d.path not in known)
    targets = {m.destination for m in spec.mounts}
    spec.mounts.extend(m for m in mounts if m.destination not in targets)
    state.extra["enclave"] = cfg.to_json()
    kbs = KbsPlan.from_annotations(spec.annotations)
    if kbs is not None:
        _check_secrets_home(spec, kbs.secrets_dir, targets)
        from ..enclave.provision import secrets_mount

        spec.mounts.append(secrets_mount(kbs.secrets_dir))
    launch.executor = EnclaveExecutor(cfg, _listen(state.dir), kbs)


def _check_secrets_home(spec: Spec, directory: str, targets: set[str]) -> None:
    """Secrets go to a tmpfs private to the container: without a mount
    namespace it would be mounted in the host's, and a bundle mount at the
    same place (a host bind, a volume) would put them on someone's disk."""
    from ..errors import SpecError

    assert spec.linux is not None
    if not any(ns.type == "mount" for ns in spec.linux.namespaces):
        raise SpecError("annotations.enclave.kbs.url", "secret provisioning needs a mount namespace (linux.namespaces)")
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


def connect(state: st.State) -> object:
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
