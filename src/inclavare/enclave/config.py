"""Is this an enclave container, and how? ``enclave.*`` annotations and ``ENCLAVE_*`` env.

Each setting comes from an entry of ``process.env`` if there is a non-empty
one, else from the OCI annotation (the original rune's rule, kept):

==================  ==========================  =============================
setting             env (wins)                  annotation
==================  ==========================  =============================
type                ENCLAVE_TYPE                enclave.type
runtime             ENCLAVE_RUNTIME_PATH        enclave.runtime.path
args                ENCLAVE_RUNTIME_ARGS        enclave.runtime.args
log level           ENCLAVE_RUNTIME_LOGLEVEL    enclave.runtime.loglevel
kbs url             ENCLAVE_KBS_URL             enclave.kbs.url
kbs resources       ENCLAVE_KBS_RESOURCES       enclave.kbs.resources
kbs secrets dir     (annotation only)           enclave.kbs.secrets_dir
kbs CA bundle       (annotation only)           enclave.kbs.cacert
kbs unpinned        (annotation only)           enclave.kbs.insecure_unpinned
carrier             RUNE_CARRIER                enclave.carrier
memory grant        ENCLAVE_MEMORY_GRANT_MIB    (variable only)
==================  ==========================  =============================

Kubernetes passes env, not annotations, to a container by default, hence
the KBS pair as variables too. The two host paths stay annotations: a file
on the host is not something a container's environment should name; so does
the opt-out from a pinned broker (enclave/provision/pin.py), a host decision.
``carrier`` asks containerd-shim-rune-v2 to build and sign the enclave from
an ordinary image before `rune create` (src/inclavare/carrier,
docs/kubernetes.md); the variable keeps the original shim's name. rune itself
only recognises it: a carrier setting that reaches rune without the enclave
settings the carrier writes is refused like any setting without a type, so an
image meant to run as an enclave never runs plain under a shim that has no
carrier. Near-misses of ``enclave.carrier`` (``enclave-carrier``,
``ENCLAVE_CARRIER``) are refused here; those of ``RUNE_CARRIER`` are not under
``enclave``/``ENCLAVE_`` and are refused by the carrier
(``inclavare.carrier.choose``), not by rune.

The memory grant is a variable only, because that is how kubelet hands a
device plugin's Allocate answer to a container: one granted N devices of
``inclavare.io/enclave-memory-mib`` gets N (src/inclavare/deviceplugin), and
runtime/memory_grant.py refuses an enclave whose memory limit is larger. A
pod can set the variable itself too; docs/kubernetes.md says how a cluster
refuses such pods at admission.

Fail closed (docs/architecture.md, "Enclave containers"): a setting that
rune would otherwise not see must not silently turn an enclave container into
a plain one. So every annotation or variable that *looks like* an enclave
setting must be one: unknown names under ``enclave.`` / ``ENCLAVE_`` and
near-misses (``enclave-type``, ``Enclave.Type``, ``ENCLAVE-TYPE``,
``encalve.type``, ``ENCLAVE_TYPE`` as an annotation) are refused with the
name that was probably meant; settings without a type are refused too.
No setting at all means no enclave: rune then behaves exactly like runc and
leaves the environment alone. For an enclave container the ``ENCLAVE_*``
entries are parameters for rune and are removed from the workload's
environment.

Deliberate differences from the original rune: a one-character value counts
(it ignored values of length 1); an invalid log level is an error (it
silently used ``info``); every error names the annotation or variable.
Types are ``intelSgx`` and ``software`` (no hardware protection, for
development and the built-in runtimes); Nitro and Jailhouse are not supported.

Only ``os``, ``stat`` and the spec model are imported here (not even
``typing``, which costs ~15 ms): `rune create` reads every container's
settings with this module.
"""

from __future__ import annotations

import os
import stat

from ..spec.model import Device, Mount
from .errors import EnclaveConfigError, EnclaveUnavailable
from .names import CARRIER_ANNOTATION, CARRIER_VARIABLE, near

# enclave.type values: real SGX, or no hardware protection.
TEE_KINDS = ("intelSgx", "software")
# enclave.runtime.loglevel values, as the PAL API defines them (docs/pal-abi.md).
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "fatal", "panic", "off")
DEFAULT_LOG_LEVEL = "info"

MEMORY_GRANT_ENV = "ENCLAVE_MEMORY_GRANT_MIB"  # MiB of enclave memory kubelet granted (the device plugin)

# setting -> (env variable or None, annotation or None)
SOURCES = {
    "type": ("ENCLAVE_TYPE", "enclave.type"),
    "runtime": ("ENCLAVE_RUNTIME_PATH", "enclave.runtime.path"),
    "args": ("ENCLAVE_RUNTIME_ARGS", "enclave.runtime.args"),
    "log_level": ("ENCLAVE_RUNTIME_LOGLEVEL", "enclave.runtime.loglevel"),
    "kbs_url": ("ENCLAVE_KBS_URL", "enclave.kbs.url"),
    "kbs_resources": ("ENCLAVE_KBS_RESOURCES", "enclave.kbs.resources"),
    "kbs_secrets_dir": (None, "enclave.kbs.secrets_dir"),
    "kbs_cacert": (None, "enclave.kbs.cacert"),
    "kbs_insecure_unpinned": (None, "enclave.kbs.insecure_unpinned"),  # enclave/provision/pin.py
    "carrier": (CARRIER_VARIABLE, CARRIER_ANNOTATION),
    "memory_grant": (MEMORY_GRANT_ENV, None),
}
_BY_ANNOTATION = {a: s for s, (_, a) in SOURCES.items() if a}
_BY_ENV = {e: s for s, (e, _) in SOURCES.items() if e}
_PREFIX = "enclave"

# The SGX device nodes rune passes through (in-tree driver, DCAP and legacy
# out-of-tree drivers, Graphene's gsgx), all misc devices; the original's list
# is in rune/libenclave/intelsgx/device_linux.go.
SGX_DEVICES = ("/dev/sgx_enclave", "/dev/sgx/enclave", "/dev/sgx_provision",
               "/dev/sgx/provision", "/dev/isgx", "/dev/gsgx")  # fmt: skip
MISC_MAJOR = 10
AESMD_DIR = "/var/run/aesmd"  # aesm.socket: launch tokens, quotes (docs/attestation.md)


class EnclaveConfig:
    """The enclave settings of one container, persisted in its state."""

    __slots__ = ("args", "log_level", "runtime", "sources", "type")

    def __init__(self, type: str, runtime: str, args: str = "", log_level: str = DEFAULT_LOG_LEVEL,
                 sources: dict[str, str] | None = None) -> None:  # fmt: skip
        self.type = type  # one of TEE_KINDS
        self.runtime = runtime  # PAL path or registered runtime name (registry.resolve)
        self.args = args  # options, space-separated
        self.log_level = log_level
        self.sources = sources or {}  # setting -> where it came from ("annotations.enclave.type", ...)

    def __eq__(self, other: object) -> bool:
        """The same enclave, wherever its settings came from."""
        mine = (self.type, self.runtime, self.args, self.log_level)
        return isinstance(other, EnclaveConfig) and mine == (other.type, other.runtime, other.args, other.log_level)

    def __repr__(self) -> str:
        return f"EnclaveConfig({self.type!r}, {self.runtime!r}, {self.args!r}, {self.log_level!r})"

    def to_json(self) -> dict[str, object]:
        """The original's state.json ``enclave_config.Enclave`` keys, and where each came from."""
        doc: dict[str, object] = {"type": self.type, "path": self.runtime, "args": self.args,
                                  "loglevel": self.log_level}  # fmt: skip
        if self.sources:
            doc["sources"] = dict(self.sources)
        return doc

    @classmethod
    def from_json(cls, value: object) -> EnclaveConfig:
        keys = ("type", "path", "args", "loglevel")
        if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in keys):
            raise EnclaveConfigError("state.json: enclave_config", f"expected strings {', '.join(keys)}")
        sources = value.get("sources")
        sources = sources if isinstance(sources, dict) else {}
        return cls(value["type"], value["path"], value["args"], value["loglevel"], sources)


class Settings:
    """Every enclave setting a container's config gives, checked for spelling.

    ``found`` maps a setting (a key of :data:`SOURCES`) to (value, source),
    the source being ``annotations.enclave.type`` or ``process.env ENCLAVE_TYPE``.
    ``env`` is the workload's environment without rune's ``ENCLAVE_*`` entries.
    """

    __slots__ = ("env", "found")

    def __init__(self, found: dict[str, tuple[str, str]], env: list[str]) -> None:
        self.found = found
        self.env = env

    def get(self, setting: str, default: str = "") -> str:
        return self.found[setting][0] if setting in self.found else default

    def source(self, setting: str) -> str:
        var, annotation = SOURCES[setting]
        if setting in self.found:
            return self.found[setting][1]
        return f"annotations.{annotation}" if annotation else f"process.env {var}"


def read_settings(annotations: dict[str, str], env: list[str]) -> Settings:
    """The enclave settings of a container; refuses unknown and misspelled ones.

    Raises :class:`EnclaveConfigError` naming the annotation or variable.
    """
    for key in annotations:
        if key not in _BY_ANNOTATION:
            _refuse_lookalike(key, f"annotations.{key}", env_style=False)
    from_env = _env_values(env)
    for key in from_env:
        if key not in _BY_ENV:
            _refuse_lookalike(key, f"process.env {key}", env_style=True)
    found: dict[str, tuple[str, str]] = {}
    grant = _memory_grant(env)
    if grant is not None:
        found["memory_grant"] = (grant, f"process.env {MEMORY_GRANT_ENV}")
    for setting, (var, annotation) in SOURCES.items():
        if setting == "memory_grant":
            continue
        if var and from_env.get(var):
            found[setting] = (from_env[var], f"process.env {var}")
        elif annotation and annotations.get(annotation):
            found[setting] = (annotations[annotation], f"annotations.{annotation}")
    return Settings(found, [e for e in env if e.partition("=")[0] not in _BY_ENV])


def enclave_config(settings: Settings) -> EnclaveConfig | None:
    """The container's enclave, or None for a plain container (no setting at all)."""
    if "type" not in settings.found:
        if settings.found:
            setting = next(iter(settings.found))
            raise EnclaveConfigError(
                settings.found[setting][1],
                "is an enclave setting, but enclave.type (or ENCLAVE_TYPE) is not set: refusing to run "
                f"the container without an enclave (set the type to one of {', '.join(TEE_KINDS)})",
            )
        return None
    kind = _check_type(*settings.found["type"])
    if "runtime" not in settings.found:
        var, annotation = SOURCES["runtime"]
        raise EnclaveConfigError(
            f"annotations.{annotation}", f"not set, but an enclave runtime is needed (or set {var})"
        )
    runtime, source = settings.found["runtime"]
    if not runtime.strip():
        raise EnclaveConfigError(source, "is empty")
    return EnclaveConfig(
        type=kind,
        runtime=runtime,
        args=settings.get("args").replace(",", " "),  # commas become spaces, as in the original rune
        log_level=_check_log_level(*settings.found.get("log_level", (DEFAULT_LOG_LEVEL, ""))),
        sources={s: src for s, (_v, src) in settings.found.items() if s in ("type", "runtime", "args", "log_level")},
    )


def _memory_grant(env: list[str]) -> str | None:
    """The smallest of every ENCLAVE_MEMORY_GRANT_MIB entry; None without one.

    kubelet puts the device plugin's entry before the pod's own env, so "the
    last one wins" would let a pod raise its grant, and an empty value must
    not read as "no grant". A value that is not a number is returned as it
    is, for runtime/memory_grant.py to refuse by name."""
    values = [e.partition("=")[2] for e in env if e.partition("=")[0] == MEMORY_GRANT_ENV]
    if not values:
        return None
    if any(not v.strip() for v in values):
        raise EnclaveConfigError(f"process.env {MEMORY_GRANT_ENV}", "is empty: a grant of enclave memory is a number")
    bad = [v for v in values if not (v.isascii() and v.isdigit())]
    return bad[0] if bad else min(values, key=lambda v: int(v))


def _env_values(env: list[str]) -> dict[str, str]:
    """KEY -> value; the last entry of a key wins, as in a shell."""
    values: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        values[key] = value
    return values


def _normal(key: str) -> str:
    """enclave.type, enclave-type, ENCLAVE_TYPE, Enclave.Type -> enclave.type"""
    return key.lower().replace("-", ".").replace("_", ".").replace(" ", ".")


_NORMAL = {_normal(a or e or ""): s for s, (e, a) in SOURCES.items()}


def _refuse_lookalike(key: str, where: str, env_style: bool) -> None:
    """Raise if `key` is not an enclave setting but looks like one."""
    normal = _normal(key)
    head = normal.partition(".")[0]
    if head != _PREFIX and not near(head, _PREFIX):
        return
    setting = _NORMAL.get(_PREFIX + normal[len(head) :])
    if setting is None:
        raise EnclaveConfigError(where, f"unknown enclave setting{_closest(normal, env_style)}")
    var, annotation = SOURCES[setting]
    if env_style and var is None:
        raise EnclaveConfigError(where, f"{annotation} can only be given as an annotation")
    if not env_style and annotation is None:
        raise EnclaveConfigError(where, f"{var} can only be given as an environment variable")
    raise EnclaveConfigError(where, f"not an enclave setting: did you mean {var if env_style else annotation}?")


def _closest(normal: str, env_style: bool) -> str:
    import difflib  # error path only

    names = {_normal(a or e or ""): n for _s, (e, a) in SOURCES.items() if (n := e if env_style else a)}
    match = difflib.get_close_matches(normal, list(names), n=1, cutoff=0.6)
    valid = ", ".join(sorted(names.values()))
    return f" (did you mean {names[match[0]]}? valid: {valid})" if match else f" (valid: {valid})"


def _check_type(value: str, source: str) -> str:
    if value not in TEE_KINDS:
        raise EnclaveConfigError(source, f"unsupported enclave type {value!r} (supported: {', '.join(TEE_KINDS)})")
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
    """The host's SGX device nodes and the aesmd socket directory, as the original rune adds them.

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
