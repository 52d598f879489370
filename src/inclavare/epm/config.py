"""epm's configuration file: the original's keys, plus the bounds of the caches.

    root = "/var/local/epm"               # cached data, and the database by default
    db_path = "/var/local/epm/epm.db"     # the original's key (its default was /etc/epm/epm.db)
    db_timeout = 10                       # seconds to wait for the database lock
    max_size = 1073741824                 # bytes of cached data; least recently used go first
    max_age = 604800                      # seconds an entry lives after it was saved
    [grpc]
    address = "/var/run/epm/epm.sock"
    uid = 0                               # the socket's owner: root only (0)
    gid = 0
    max_recv_message_size = 16777216
    max_send_message_size = 16777216

A missing file means these defaults. The original's ``tcp_address``,
``tcp_tls_cert`` and ``tcp_tls_key`` (unused there) are refused when set:
epm hands out signed enclaves and serves root on its unix socket only.
Unknown keys are errors, never ignored. The file says where enclaves are
cached and who may read them, so, like the carrier's, it must be root's and
not writable by others (:mod:`inclavare._sys.trusted`).
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import UntrustedPath
from .errors import EpmError

DEFAULT_PATH = "/etc/epm/config.toml"
_INT_LIMITS = {
    "db_timeout": (0, 3600),
    "max_size": (1 << 20, 1 << 50),
    "max_age": (60, 10 * 365 * 86400),
    "grpc.uid": (0, 0),
    "grpc.gid": (0, 0),
    "grpc.max_recv_message_size": (1 << 10, 1 << 30),
    "grpc.max_send_message_size": (1 << 10, 1 << 30),
}
_PATHS = ("root", "db_path", "grpc.address")
_REFUSED = ("grpc.tcp_address", "grpc.tcp_tls_cert", "grpc.tcp_tls_key")


@dataclasses.dataclass(frozen=True)
class EpmConfig:
    path: str = ""  # the file it came from; "" for the defaults
    root: str = "/var/local/epm"
    db_path: str = ""  # "" -> <root>/epm.db
    db_timeout: int = 10
    max_size: int = 1 << 30
    max_age: int = 7 * 86400
    address: str = "/var/run/epm/epm.sock"
    max_recv_message_size: int = 16 << 20
    max_send_message_size: int = 16 << 20

    @property
    def database(self) -> str:
        return self.db_path or os.path.join(self.root, "epm.db")


def load(path: str | None = None) -> EpmConfig:
    """The configuration at `path` (default /etc/epm/config.toml, optional)."""
    explicit = path is not None
    path = os.path.abspath(path) if path is not None else DEFAULT_PATH
    if not explicit and not os.path.lexists(path):
        return EpmConfig()
    from .._sys.trusted import open_trusted

    try:
        fd = open_trusted(path, allowed=(), owners=(0,))
    except UntrustedPath as exc:
        raise EpmError(path, exc.reason) from None
    try:
        data = os.read(fd, (1 << 16) + 1)
    finally:
        os.close(fd)
    if len(data) > 1 << 16:
        raise EpmError(path, "larger than 64 KiB")
    return parse(data, path)


def parse(data: bytes, path: str) -> EpmConfig:
    from .._toml import TomlError, loads

    try:
        doc = loads(data.decode())
    except UnicodeDecodeError:
        raise EpmError(path, "not UTF-8") from None
    except TomlError as exc:
        raise EpmError(path, f"line {exc.lineno}: {exc.msg}") from None
    values: dict[str, object] = {}
    for name, value in _flatten(doc, path).items():
        where = f"{path}: {name}"
        if name in _REFUSED:
            raise EpmError(where, "not supported: epm serves root on its unix socket only")
        if name in _PATHS:
            if not isinstance(value, str) or not os.path.isabs(value):
                raise EpmError(where, f"{value!r} is not an absolute path")
        elif name in _INT_LIMITS:
            low, high = _INT_LIMITS[name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise EpmError(where, f"must be an integer, not {value!r}")
            if not low <= value <= high:
                reason = (
                    "must be 0: epm serves root only" if high == 0 else f"{value} is out of range ({low} to {high})"
                )
                raise EpmError(where, reason)
        else:
            known = sorted([*_PATHS, *_INT_LIMITS])
            raise EpmError(where, f"unknown setting (known: {', '.join(known)})")
        values[name.removeprefix("grpc.")] = value
    values.pop("uid", None)
    values.pop("gid", None)
    return EpmConfig(path=path, **values)  # type: ignore[arg-type]  # each value was checked against its field above


def _flatten(doc: dict[str, object], path: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in doc.items():
        if key == "grpc":
            if not isinstance(value, dict):
                raise EpmError(f"{path}: grpc", "must be a table")
            out.update({f"grpc.{k}": v for k, v in value.items()})
        elif isinstance(value, dict):
            raise EpmError(f"{path}: {key}", "unknown table (known: grpc)")
        else:
            out[key] = value
    return out
