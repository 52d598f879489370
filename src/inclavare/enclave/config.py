"""Is this an enclave container, and how? ``enclave.*`` annotations and ``ENCLAVE_*`` env.

Ref: inventory §1.2. Each setting comes from an entry of ``process.env`` if
there is a non-empty one, else from the OCI annotation:

==================  ==========================  ==========================
setting             env (wins)                  annotation
==================  ==========================  ==========================
type                ENCLAVE_TYPE                enclave.type
runtime             ENCLAVE_RUNTIME_PATH        enclave.runtime.path
args                ENCLAVE_RUNTIME_ARGS        enclave.runtime.args
log level           ENCLAVE_RUNTIME_LOGLEVEL    enclave.runtime.loglevel
==================  ==========================  ==========================

No type means no enclave: rune then behaves exactly like runc and leaves the
environment alone. For an enclave container the ``ENCLAVE_*`` entries above
are only parameters for rune and are removed from the workload's environment.

Deliberate differences from the original rune: a one-character value counts
(it ignored values of length 1); an invalid log level is an error (it
silently used ``info``); every error names the annotation or variable.
Types are ``intelSgx`` and ``software`` (no hardware protection, for
development and the built-in runtimes); Nitro and Jailhouse are not supported.

Only ``os``, ``stat`` and the spec model are imported here (not even
``typing``, which costs ~15 ms): `rune create` calls :func:`enclave_config`
for every container.
"""

from __future__ import annotations

import os
import stat

from ..spec.model import Device, Mount
from .errors import EnclaveConfigError, EnclaveRuntimeNotFound, EnclaveUnavailable

# enclave.type values: real SGX, or no hardware protection.
TEE_KINDS = ("intelSgx", "software")
# enclave.runtime.loglevel values, as the PAL API defines them (§1.2).
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "fatal", "panic", "off")

# setting -> (env variable, annotation)
SOURCES = {
    "type": ("ENCLAVE_TYPE", "enclave.type"),
    "runtime": ("ENCLAVE_RUNTIME_PATH", "enclave.runtime.path"),
    "args": ("ENCLAVE_RUNTIME_ARGS", "enclave.runtime.args"),
    "log_level": ("ENCLAVE_RUNTIME_LOGLEVEL", "enclave.runtime.loglevel"),
}
DEFAULT_LOG_LEVEL = "info"

# inventory §1.2: SGX device nodes rune passes through (in-tree driver, DCAP
# and legacy out-of-tree drivers, Graphene's gsgx), all misc devices.
SGX_DEVICES = ("/dev/sgx_enclave", "/dev/sgx/enclave", "/dev/sgx_provision",
               "/dev/sgx/provision", "/dev/isgx", "/dev/gsgx")  # fmt: skip
MISC_MAJOR = 10
AESMD_DIR = "/var/run/aesmd"  # aesm.socket: launch tokens, quotes (§1.8)


class EnclaveConfig:
    """The enclave settings of one container, persisted in its state."""

    __slots__ = ("args", "log_level", "runtime", "type")

    def __init__(self, type: str, runtime: str, args: str = "", log_level: str = DEFAULT_LOG_LEVEL) -> None:
        self.type = type  # one of TEE_KINDS
        self.runtime = runtime  # PAL path or registered runtime name (registry.resolve)
        self.args = args  # options, space-separated
        self.log_level = log_level

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnclaveConfig) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"EnclaveConfig({self.type!r}, {self.runtime!r}, {self.args!r}, {self.log_level!r})"

    def to_json(self) -> dict[str, str]:
        """The original's state.json ``enclave_config.Enclave`` keys (§1.9)."""
        return {"type": self.type, "path": self.runtime, "args": self.args, "loglevel": self.log_level}

    @classmethod
    def from_json(cls, value: object) -> EnclaveConfig:
        keys = ("type", "path", "args", "loglevel")
        if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in keys):
            raise EnclaveConfigError("state.json: enclave_config", f"expected strings {', '.join(keys)}")
        return cls(value["type"], value["path"], value["args"], value["loglevel"])


def enclave_config(annotations: dict[str, str], env: list[str]) -> tuple[EnclaveConfig | None, list[str]]:
    """(config, the workload's env) of a container; (None, env) if not an enclave container.

    Raises :class:`EnclaveConfigError` naming the annotation or variable at fault.
    """
    from_env = _env_values(env)
    found: dict[str, tuple[str, str]] = {}  # setting -> (value, where it came from)
    for setting, (var, annotation) in SOURCES.items():
        if from_env.get(var):
            found[setting] = (from_env[var], var)
        elif annotations.get(annotation):
            found[setting] = (annotations[annotation], annotation)
    if "type" not in found:
        return None, list(env)
    kind = _check_type(*found["type"])
    if "runtime" not in found:
        var, annotation = SOURCES["runtime"]
        raise EnclaveConfigError(annotation, f"not set, but an enclave runtime is needed (or set {var})")
    config = EnclaveConfig(
        type=kind,
        runtime=_check_runtime(*found["runtime"]),
        args=found.get("args", ("", ""))[0].replace(",", " "),  # §1.2: commas become spaces
        log_level=_check_log_level(*found.get("log_level", (DEFAULT_LOG_LEVEL, ""))),
    )
    own = {var for var, _ in SOURCES.values()}
    return config, [e for e in env if e.partition("=")[0] not in own]


def _env_values(env: list[str]) -> dict[str, str]:
    """KEY -> value; the last entry of a key wins, as in a shell."""
    values: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        values[key] = value
    return values


def _check_type(value: str, source: str) -> str:
    if value not in TEE_KINDS:
        raise EnclaveConfigError(source, f"unsupported enclave type {value!r} (supported: {', '.join(TEE_KINDS)})")
    return value


def _check_runtime(value: str, source: str) -> str:
    from . import registry

    try:
        registry.check(value)
    except EnclaveRuntimeNotFound as exc:
        raise EnclaveConfigError(source, str(exc)) from None
    return value


def _check_log_level(value: str, source: str) -> str:
    level = value.lower()
    if level not in LOG_LEVELS:
        raise EnclaveConfigError(source, f"invalid log level {value!r} (one of {', '.join(LOG_LEVELS)})")
    return level


def host_resources(config: EnclaveConfig, root: str = "/") -> tuple[list[Device], list[Mount]]:
    """Devices and mounts the container needs from the host for its enclave type."""
    if config.type == "intelSgx":
        return sgx_host_resources(root)
    return [], []


def sgx_host_resources(root: str = "/") -> tuple[list[Device], list[Mount]]:
    """The host's SGX device nodes and the aesmd socket directory (§1.2).

    A device counts if it exists under `root` as a character device of the
    misc major (symlinks followed, the link's path kept, as the original).
    Each needs a device-cgroup "allow rwm" rule, which the caller adds along
    with the nodes; a path the spec already lists should be left alone.
    Raises :class:`EnclaveUnavailable` on a host without any SGX device.
    """
    devices = [dev for path in SGX_DEVICES if (dev := _misc_device(root, path)) is not None]
    if not devices:
        raise EnclaveUnavailable(
            "enclave.type intelSgx needs an SGX device, but this host has none of "
            f"{', '.join(SGX_DEVICES)}; without SGX hardware use enclave.type=software"
        )
    mounts = []
    host_aesmd = _under(root, AESMD_DIR)
    if os.path.isdir(host_aesmd):
        mounts.append(Mount(destination=AESMD_DIR, type="bind", source=host_aesmd, options=["rbind", "rprivate"]))
    return devices, mounts


def _misc_device(root: str, path: str) -> Device | None:
    try:
        st = os.stat(_under(root, path))
    except OSError:
        return None
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != MISC_MAJOR:
        return None
    return Device(type="c", path=path, major=MISC_MAJOR, minor=os.minor(st.st_rdev),
                  fileMode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)  # fmt: skip


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))
