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
    [pool]                                # the warm enclave pool (src/inclavare/epm/pool)
    socket = "/run/inclavare/epm-pool.sock"
    metrics_address = ""                  # "127.0.0.1:9465": Prometheus text at /metrics
    refill_delay_ms = 1000                # refill once no claim came for this long
    [[pool.enclaves]]
    bundle = "/var/lib/inclavare/pool/hello"   # a template OCI bundle (pool/template.py)
    size = 2                              # instances kept ready (0 to 64)

A missing file means these defaults. The original's ``tcp_address``,
``tcp_tls_cert`` and ``tcp_tls_key`` (unused there) are refused when set:
epm hands out signed enclaves and serves root on its unix socket only.
Unknown keys are errors, never ignored. The file says where enclaves are
cached and who may read them, so, like the carrier's, it must be root's and
not writable by others (:mod:`inclavare._sys.trusted`).

The file is read with ``tomllib``: ``[[pool.enclaves]]`` is an array of
tables, which rune's lean reader (src/inclavare/_toml.py) refuses by design,
and epm is a daemon that reads its file once. Every value is still checked
for its type and bounds below, so nothing TOML allows beyond that subset
(floats, dates, inline tables) gets through as something else.
"""

from __future__ import annotations

import dataclasses
import os

from ..enclave.pool.claim import DEFAULT_SOCKET as POOL_SOCKET
from ..errors import UntrustedPath
from .errors import EpmError
from .pool.template import Template, parse_entries

DEFAULT_PATH = "/etc/epm/config.toml"
_INT_LIMITS = {
    "db_timeout": (0, 3600),
    "max_size": (1 << 20, 1 << 50),
    "max_age": (60, 10 * 365 * 86400),
    "grpc.uid": (0, 0),
    "grpc.gid": (0, 0),
    "grpc.max_recv_message_size": (1 << 10, 1 << 30),
    "grpc.max_send_message_size": (1 << 10, 1 << 30),
    "pool.refill_delay_ms": (0, 60_000),
}
_PATHS = ("root", "db_path", "grpc.address", "pool.socket")
_MAX_SUN_PATH = 107  # sockaddr_un.sun_path is 108 bytes with its NUL (unix(7))
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
    socket: str = POOL_SOCKET  # the pool's claim socket
    metrics_address: str = ""  # host:port of the pool's /metrics; "" = off
    refill_delay_ms: int = 1000  # a refill waits until no claim came for this long (pool/manager.py)
    enclaves: tuple[Template, ...] = ()  # the pool's templates; none = no pool

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
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise EpmError(path, "not UTF-8") from None
    values: dict[str, object] = {}
    for name, value in _flatten(_toml(text, path), path).items():
        where = f"{path}: {name}"
        if name in _REFUSED:
            raise EpmError(where, "not supported: epm serves root on its unix socket only")
        if name == "pool.enclaves":
            value = parse_entries(value, where)
        elif name == "pool.metrics_address":
            _check_address(value, where)
        elif name in _PATHS:
            if not isinstance(value, str) or not os.path.isabs(value):
                raise EpmError(where, f"{value!r} is not an absolute path")
            if name == "pool.socket" and len(os.fsencode(value)) > _MAX_SUN_PATH:
                raise EpmError(where, f"too long for a unix socket (at most {_MAX_SUN_PATH} bytes)")
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
            known = sorted([*_PATHS, *_INT_LIMITS, "pool.enclaves", "pool.metrics_address"])
            raise EpmError(where, f"unknown setting (known: {', '.join(known)})")
        values[name.removeprefix("grpc.").removeprefix("pool.")] = value
    values.pop("uid", None)
    values.pop("gid", None)
    return EpmConfig(path=path, **values)  # type: ignore[arg-type]  # each value was checked against its field above


def _toml(text: str, path: str) -> dict[str, object]:
    import re
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib (3.11) says where only in its message: "... (at line 2, column 6)".
        msg = str(exc)
        found = re.fullmatch(r"(.*) \(at (?:line (\d+), column \d+|end of document)\)", msg, re.S)
        if found is None:
            raise EpmError(path, msg.splitlines()[0] if msg else "malformed TOML") from None
        line = found.group(2) or text.count("\n") + 1
        raise EpmError(path, f"line {line}: {found.group(1)}") from None


def _check_address(value: object, where: str) -> None:
    """``host:port`` (``[v6]:port``), or "" for no metrics."""
    if not isinstance(value, str):
        raise EpmError(where, f"must be a string, not {value!r}")
    if value == "":
        return
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EpmError(where, f"{value!r} is not host:port (e.g. 127.0.0.1:9465)")


def _flatten(doc: dict[str, object], path: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in doc.items():
        if key in ("grpc", "pool"):
            if not isinstance(value, dict):
                raise EpmError(f"{path}: {key}", "must be a table")
            out.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, dict):
            raise EpmError(f"{path}: {key}", "unknown table (known: grpc, pool)")
        else:
            out[key] = value
    return out
