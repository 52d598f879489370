"""The typed OCI runtime-spec model (config.json), Linux subset.

Ref: https://github.com/opencontainers/runtime-spec/blob/v1.2.0/config.md and
config-linux.md. Each class lists its JSON members in ``FIELDS`` as
``(json name, kind, required)``; :mod:`inclavare.spec.load` builds instances
from that table with located errors, so the field list is written once.
Kinds: "str", "int", "bool", "any" (kept as parsed JSON), a model class,
("list", kind) and ("map", kind).

The model is what the user wrote, checked for shape. What rune does with it is
decided in :mod:`inclavare.runtime.config`, which derives the internal
configuration; runc keeps the same split (specconv vs configs).
Plain classes with ``__slots__`` rather than dataclasses: importing
``dataclasses`` costs more than a third of runc's whole `run` (see
docs/architecture.md, "start-up").
"""

from __future__ import annotations

Kind = object  # "str" | "int" | "bool" | "any" | type[Model] | tuple[str, Kind]


class Model:
    FIELDS: tuple[tuple[str, Kind, bool], ...] = ()
    __slots__ = ()

    def __init__(self, **values: object) -> None:
        for name, kind, _req in self.FIELDS:
            default: object = [] if _is_list(kind) else {} if _is_map(kind) else None
            setattr(self, _attr(name), values.get(name, default))

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, _attr(n))!r}" for n, _k, _r in self.FIELDS)
        return f"{type(self).__name__}({shown})"


_ATTRS: dict[str, str] = {}


def _attr(json_name: str) -> str:
    """JSON camelCase member -> Python attribute (``cgroupsPath`` -> ``cgroups_path``).

    Memoised: every config load asks for the same few dozen names hundreds of
    times, on rune's start-up path."""
    attr = _ATTRS.get(json_name)
    if attr is None:
        out = []
        prev = ""
        for ch in json_name:
            out.append("_" + ch.lower() if ch.isupper() and prev.islower() else ch.lower())
            prev = ch
        attr = _ATTRS[json_name] = "".join(out)
    return attr


def _is_list(kind: Kind) -> bool:
    return isinstance(kind, tuple) and kind[0] == "list"


def _is_map(kind: Kind) -> bool:
    return isinstance(kind, tuple) and kind[0] == "map"


class User(Model):
    FIELDS = (("uid", "int", True), ("gid", "int", True), ("umask", "int", False),
              ("additionalGids", ("list", "int"), False), ("username", "str", False))  # fmt: skip
    __slots__ = ("additional_gids", "gid", "uid", "umask", "username")
    uid: int
    gid: int
    umask: int | None
    additional_gids: list[int]
    username: str | None


class Capabilities(Model):
    FIELDS = tuple(
        (n, ("list", "str"), False) for n in ("bounding", "effective", "inheritable", "permitted", "ambient")
    )
    __slots__ = ("ambient", "bounding", "effective", "inheritable", "permitted")
    bounding: list[str]
    effective: list[str]
    inheritable: list[str]
    permitted: list[str]
    ambient: list[str]


class Rlimit(Model):
    FIELDS = (("type", "str", True), ("hard", "int", True), ("soft", "int", True))
    __slots__ = ("hard", "soft", "type")
    type: str
    hard: int
    soft: int


class ConsoleSize(Model):
    FIELDS = (("height", "int", True), ("width", "int", True))
    __slots__ = ("height", "width")
    height: int
    width: int


class Process(Model):
    FIELDS = (("terminal", "bool", False), ("consoleSize", ConsoleSize, False), ("user", User, True),
              ("args", ("list", "str"), False), ("commandLine", "str", False), ("env", ("list", "str"), False),
              ("cwd", "str", True), ("capabilities", Capabilities, False), ("rlimits", ("list", Rlimit), False),
              ("noNewPrivileges", "bool", False), ("apparmorProfile", "str", False), ("oomScoreAdj", "int", False),
              ("selinuxLabel", "str", False), ("scheduler", "any", False), ("ioPriority", "any", False))  # fmt: skip
    __slots__ = (
        "apparmor_profile",
        "args",
        "capabilities",
        "command_line",
        "console_size",
        "cwd",
        "env",
        "io_priority",
        "no_new_privileges",
        "oom_score_adj",
        "rlimits",
        "scheduler",
        "selinux_label",
        "terminal",
        "user",
    )  # fmt: skip
    terminal: bool | None
    console_size: ConsoleSize | None
    user: User
    args: list[str]
    command_line: str | None
    env: list[str]
    cwd: str
    capabilities: Capabilities | None
    rlimits: list[Rlimit]
    no_new_privileges: bool | None
    apparmor_profile: str | None
    oom_score_adj: int | None
    selinux_label: str | None
    scheduler: object
    io_priority: object


class Root(Model):
    FIELDS = (("path", "str", True), ("readonly", "bool", False))
    __slots__ = ("path", "readonly")
    path: str
    readonly: bool | None


class IDMapping(Model):
    FIELDS = (("containerID", "int", True), ("hostID", "int", True), ("size", "int", True))
    __slots__ = ("container_id", "host_id", "size")
    container_id: int
    host_id: int
    size: int


class Mount(Model):
    FIELDS = (("destination", "str", True), ("type", "str", False), ("source", "str", False),
              ("options", ("list", "str"), False), ("uidMappings", ("list", IDMapping), False),
              ("gidMappings", ("list", IDMapping), False))  # fmt: skip
    __slots__ = ("destination", "gid_mappings", "options", "source", "type", "uid_mappings")
    destination: str
    type: str | None
    source: str | None
    options: list[str]
    uid_mappings: list[IDMapping]
    gid_mappings: list[IDMapping]


class Hook(Model):
    FIELDS = (("path", "str", True), ("args", ("list", "str"), False), ("env", ("list", "str"), False),
              ("timeout", "int", False))  # fmt: skip
    __slots__ = ("args", "env", "path", "timeout")
    path: str
    args: list[str]
    env: list[str]
    timeout: int | None


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class Hooks(Model):
    FIELDS = tuple((n, ("list", Hook), False) for n in HOOK_KINDS)
    __slots__ = ("create_container", "create_runtime", "poststart", "poststop", "prestart", "start_container")
    prestart: list[Hook]
    create_runtime: list[Hook]
    create_container: list[Hook]
    start_container: list[Hook]
    poststart: list[Hook]
    poststop: list[Hook]


class Namespace(Model):
    FIELDS = (("type", "str", True), ("path", "str", False))
    __slots__ = ("path", "type")
    type: str
    path: str | None


class Device(Model):
    FIELDS = (("type", "str", True), ("path", "str", True), ("major", "int", False), ("minor", "int", False),
              ("fileMode", "int", False), ("uid", "int", False), ("gid", "int", False))  # fmt: skip
    __slots__ = ("file_mode", "gid", "major", "minor", "path", "type", "uid")
    type: str
    path: str
    major: int | None
    minor: int | None
    file_mode: int | None
    uid: int | None
    gid: int | None


class Linux(Model):
    FIELDS = (("namespaces", ("list", Namespace), False), ("uidMappings", ("list", IDMapping), False),
              ("gidMappings", ("list", IDMapping), False), ("timeOffsets", "any", False),
              ("devices", ("list", Device), False), ("cgroupsPath", "str", False), ("resources", "any", False),
              ("rootfsPropagation", "str", False), ("seccomp", "any", False), ("sysctl", ("map", "str"), False),
              ("maskedPaths", ("list", "str"), False), ("readonlyPaths", ("list", "str"), False),
              ("mountLabel", "str", False), ("personality", "any", False), ("intelRdt", "any", False))  # fmt: skip
    __slots__ = (
        "cgroups_path",
        "devices",
        "gid_mappings",
        "intel_rdt",
        "masked_paths",
        "mount_label",
        "namespaces",
        "personality",
        "readonly_paths",
        "resources",
        "rootfs_propagation",
        "seccomp",
        "sysctl",
        "time_offsets",
        "uid_mappings",
    )  # fmt: skip
    namespaces: list[Namespace]
    uid_mappings: list[IDMapping]
    gid_mappings: list[IDMapping]
    time_offsets: object
    devices: list[Device]
    cgroups_path: str | None
    resources: object
    rootfs_propagation: str | None
    seccomp: object
    sysctl: dict[str, str]
    masked_paths: list[str]
    readonly_paths: list[str]
    mount_label: str | None
    personality: object
    intel_rdt: object


class Spec(Model):
    FIELDS = (("ociVersion", "str", True), ("process", Process, False), ("root", Root, False),
              ("hostname", "str", False), ("domainname", "str", False), ("mounts", ("list", Mount), False),
              ("hooks", Hooks, False), ("annotations", ("map", "str"), False), ("linux", Linux, False))  # fmt: skip
    __slots__ = (
        "annotations",
        "domainname",
        "hooks",
        "hostname",
        "linux",
        "mounts",
        "oci_version",
        "process",
        "raw",
        "root",
    )  # fmt: skip
    oci_version: str
    process: Process | None
    root: Root | None
    hostname: str | None
    domainname: str | None
    mounts: list[Mount]
    hooks: Hooks | None
    annotations: dict[str, str]
    linux: Linux | None
    raw: dict[str, object]  # the document as parsed, unknown members included
