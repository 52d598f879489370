"""What a runtime handler configures: the options containerd hands the shim.

containerd sends one ``google.protobuf.Any`` with ``start`` (on stdin) and
with Create: the task's options if the client set some, else the runtime's
(runtime/v2/manager.go startShim, shim.go Create). Three kinds arrive:

``runtimeoptions.v1.Options`` (config_path)
    what the CRI plugin sends any runtime type that is not runc's, built from
    the handler's ``options`` table (pkg/cri/config: getRuntimeOptionsType);
    ``ConfigPath`` names this shim's configuration file, below. It is how a
    Kubernetes RuntimeClass configures shim-rune, and how one handler asks
    for ``--enclave-required``: containerd's CRI cannot pass the runc
    options (BinaryName, Root, SystemdCgroup) to a runtime type of its own.
``containerd.runc.v1.Options``
    the runc shim's options, from a client that sends them to any v2 shim;
    BinaryName, Root, SystemdCgroup, IoUid/IoGid, NoPivotRoot, NoNewKeyring
    and ShimCgroup are honoured; CRIU's are refused (no checkpoint/restore).
``containerd.linux.runc.CreateOptions``
    what ctr sends for a runtime not named io.containerd.runc.* (IoUid/IoGid
    for ``ctr run --uidmap``, no_pivot, no_new_keyring, shim_cgroup;
    task_opts_unix.go).

The type URL is the message's full name (typeurl v1.0.2 falls back to
proto.MessageName); a ``type.googleapis.com/`` prefix is accepted too.

The configuration file (TOML, every key optional, unknown keys refused)::

    binary_name = "rune"                 # rune's path, or a name found in $PATH
    root = "/run/containerd/rune"        # rune --root is <root>/<containerd namespace>
    systemd_cgroup = false               # rune --systemd-cgroup
    enclave_required = false             # rune --enclave-required: a "confidential" handler
    carrier_config = "/etc/inclavare-containers/config.toml"  # the carrier's file (inclavare.carrier.config)

It must be the administrator's (root-owned, not writable by group or
others, on a path only root can change: :mod:`inclavare._sys.trusted`),
because it names the binary the shim runs as root.
"""

from __future__ import annotations

import os

from .errors import InvalidArgument

DEFAULT_BINARY = "rune"
DEFAULT_ROOT = "/run/containerd/rune"  # beside the runc shim's /run/containerd/runc

RUNC_OPTIONS = "containerd.runc.v1.Options"
CREATE_OPTIONS = "containerd.linux.runc.CreateOptions"
RUNTIME_OPTIONS = "runtimeoptions.v1.Options"
_CONFIG_KEYS = {
    "binary_name": str,
    "root": str,
    "systemd_cgroup": bool,
    "enclave_required": bool,
    "carrier_config": str,
}


class ShimOptions:
    """The resolved options of one container (written to <bundle>/options.json for `delete`)."""

    __slots__ = ("binary_name", "carrier_config", "config_path", "enclave_required", "io_gid", "io_uid",
                 "no_new_keyring", "no_pivot_root", "root", "shim_cgroup", "systemd_cgroup")  # fmt: skip

    def __init__(self) -> None:
        self.binary_name = DEFAULT_BINARY
        self.root = DEFAULT_ROOT
        self.systemd_cgroup = False
        self.enclave_required = False
        self.io_uid = 0
        self.io_gid = 0
        self.no_pivot_root = False
        self.no_new_keyring = False
        self.shim_cgroup = ""
        self.config_path = ""
        self.carrier_config = ""  # "": the carrier's default path

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> ShimOptions:
        opts = cls()
        for name in cls.__slots__:
            if name in doc and isinstance(doc[name], type(getattr(opts, name))):
                setattr(opts, name, doc[name])
        return opts


def decode(type_url: str, value: bytes) -> ShimOptions:
    """The options an Any carries (an empty type URL means none: the defaults)."""
    opts = ShimOptions()
    name = type_url.rpartition("/")[2]
    if not name:
        return opts
    from .pb import DecodeError, runtime_options

    try:
        if name == RUNTIME_OPTIONS:
            config = runtime_options.Options.FromString(value).config_path
            if config:
                apply_config(opts, config)
        elif name in (RUNC_OPTIONS, CREATE_OPTIONS):
            _apply_runc(opts, name, value)
        else:
            raise InvalidArgument(f"shim options: unsupported type {type_url!r} (want {RUNTIME_OPTIONS}, "
                                  f"{RUNC_OPTIONS} or {CREATE_OPTIONS})")  # fmt: skip
    except DecodeError as exc:
        raise InvalidArgument(f"shim options: {name}: {exc}") from None
    return opts


def _apply_runc(opts: ShimOptions, name: str, value: bytes) -> None:
    from .pb import runc, runc_legacy

    if name == RUNC_OPTIONS:
        m = runc.Options.FromString(value)
        if m.criu_path or m.criu_image_path or m.criu_work_path:
            raise InvalidArgument(f"shim options: {name}: CRIU settings: rune has no checkpoint/restore")
        opts.binary_name = _binary(m.binary_name, f"shim options: {name}") or opts.binary_name
        opts.root = m.root or opts.root
        opts.systemd_cgroup = m.systemd_cgroup
    else:
        m = runc_legacy.CreateOptions.FromString(value)
    opts.io_uid, opts.io_gid = m.io_uid, m.io_gid
    opts.no_pivot_root, opts.no_new_keyring, opts.shim_cgroup = m.no_pivot_root, m.no_new_keyring, m.shim_cgroup


def apply_config(opts: ShimOptions, path: str) -> None:
    """Read the shim's configuration file at `path` into `opts`."""
    from .._sys.trusted import open_trusted
    from .._toml import TomlError, loads
    from ..errors import UntrustedPath

    try:
        fd = open_trusted(path, allowed=(), owners=(0,))
    except UntrustedPath as exc:
        raise InvalidArgument(f"shim configuration {exc}") from None
    try:
        text = os.read(fd, 1 << 20).decode()
    except UnicodeDecodeError:
        raise InvalidArgument(f"{path}: not UTF-8") from None
    finally:
        os.close(fd)
    try:
        doc = loads(text)
    except TomlError as exc:
        raise InvalidArgument(f"{path}: line {exc.lineno}: {exc.msg}") from None
    for key, value in doc.items():
        kind = _CONFIG_KEYS.get(key)
        if kind is None:
            raise InvalidArgument(f"{path}: {key}: unknown setting (known: {', '.join(sorted(_CONFIG_KEYS))})")
        if not isinstance(value, kind):
            raise InvalidArgument(f"{path}: {key}: must be {'true or false' if kind is bool else 'a string'}")
        if key == "binary_name" and not _binary(str(value), path):
            raise InvalidArgument(f"{path}: binary_name: must not be empty")
        if key in ("root", "carrier_config") and not os.path.isabs(str(value)):
            raise InvalidArgument(f"{path}: {key}: must be an absolute path")
        setattr(opts, key, value)
    opts.config_path = path


def _binary(value: str, where: str) -> str:
    """An absolute path or a bare name looked up in $PATH: a relative path would name another
    binary in each command (`delete` runs in the bundle, beside the container's rootfs)."""
    if value and not os.path.isabs(value) and "/" in value:
        raise InvalidArgument(f"{where}: binary_name: {value!r}: an absolute path or a name in $PATH")
    return value
