"""The broker's configuration: TOML -> typed, frozen dataclasses -> validated, with located errors.

Every key is optional except where noted; unknown keys are errors. A
mistake names the file and the dotted location
(``kbs.toml: admin.keys[1].scopes[0]: 'x y' is not '*', 'repo/*' or a resource path``)::

    [http]
    listen = "127.0.0.1:8080"           # host:port (port 0: any free port)
    tls_cert = "/etc/kbs/tls.crt"       # both or neither: HTTPS
    tls_key = "/etc/kbs/tls.key"
    max_body = 1048576                  # bytes (trustee payload_request_size: 1 MiB)

    [attestation]
    session_timeout = 300               # seconds a kbs-session-id lives (trustee: 5 minutes)
    hash_algorithm = "sha384"           # preferred report-data hash (sha256 | sha384 | sha512)
    collateral = ["/var/cache/inclavare/collateral"]  # CollateralStore files/dirs; software host keys (Ed25519 PEM) too
    policy = "default"                  # attestation policy id used to appraise evidence
    collateral_refresh = 1.0            # seconds: how stale admin-added collateral may be on a replica

    [token]
    signing_key = "/etc/kbs/token.pem"  # P-256 or Ed25519 PEM; required with PostgreSQL (replicas share it)
    issuer = "inclavare-kbs"
    lifetime = 300                      # seconds

    [storage]
    type = "sqlite"                     # "sqlite" (embedded, default) or "postgres"
    path = "/var/lib/inclavare/kbs.db"  # sqlite
    dsn_env = "KBS_POSTGRES_DSN"        # postgres: the variable holding the DSN (or `dsn = "..."`)

    [storage.kek]                       # required: the key-encryption key resources are sealed under
    file = "/etc/kbs/kek"               # one of: file = PATH | env = "NAME" | command = [ARGV...]
    # command = ["/usr/local/bin/kms-unwrap"]   # a KMS-style provider: prints the key (kbs/atrest/kek.py)
    # stdin = "/etc/kbs/kek.wrapped"    # command only: fed to its standard input (a KMS-wrapped key)
    # timeout = 10                      # command only: seconds
    [[storage.kek.previous]]            # during a rotation: the key(s) being rotated away from
    file = "/etc/kbs/kek.old"

    [admin]
    max_token_lifetime = 3600
    [[admin.keys]]                      # Ed25519 public keys of administrators, each with its scopes
    name = "ops"
    public_key = "/etc/kbs/admin-ops.pub"
    scopes = ["*"]                      # "*" | "repo/*" | "repo/type/*" | "repo/type/tag"

    [rate_limit]
    enabled = true
    per_address = { rate = 50.0, burst = 100 }   # token bucket per client address
    per_session = { rate = 20.0, burst = 40 }    # token bucket per kbs-session-id
    max_clients = 100000
    trust_forwarded_for = false         # key by X-Forwarded-For (only behind a trusted proxy)
    shared = true                       # PostgreSQL only (its default): one limit across all replicas

    [audit]
    path = "/var/log/inclavare/kbs-audit.jsonl"  # JSON lines (also always in the database)
    replica = "kbs-0"                   # this replica's name in audit records (default: host name)
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

from .admin import AdminKey
from .atrest.kek import KekConfig, KekSource
from .errors import ConfigError
from .protocol.binding import check_algorithm

ENV_CONFIG = "INCLAVARE_KBS_CONFIG"
DEFAULT_DB = "/var/lib/inclavare/kbs.db"


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str | None = None
    tls_key: str | None = None
    max_body: int = 1 << 20


@dataclass(frozen=True)
class AttestationConfig:
    session_timeout: float = 300.0
    hash_algorithm: str = "sha384"
    collateral: tuple[str, ...] = ()
    policy: str = "default"
    collateral_refresh: float = 1.0  # seconds between looks at the database's collateral generation


@dataclass(frozen=True)
class TokenConfig:
    signing_key: str | None = None
    issuer: str = "inclavare-kbs"
    lifetime: float = 300.0


@dataclass(frozen=True)
class StorageConfig:
    type: str = "sqlite"
    path: str = DEFAULT_DB
    dsn: str | None = field(default=None, repr=False)  # may hold a password
    kek: KekConfig | None = None  # where the keys are; required to serve (atrest.load_keyring says so)


@dataclass(frozen=True)
class Bucket:
    rate: float
    burst: int


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = True
    per_address: Bucket = Bucket(50.0, 100)
    per_session: Bucket = Bucket(20.0, 40)
    max_clients: int = 100_000
    trust_forwarded_for: bool = False
    shared: bool = False  # one limit across replicas, in the database (the default with PostgreSQL)


@dataclass(frozen=True)
class AuditConfig:
    path: str | None = None
    replica: str = field(default_factory=socket.gethostname)


@dataclass(frozen=True)
class KbsConfig:
    http: HttpConfig = HttpConfig()
    attestation: AttestationConfig = AttestationConfig()
    token: TokenConfig = TokenConfig()
    storage: StorageConfig = StorageConfig()
    admin_keys: tuple[AdminKey, ...] = ()
    admin_max_token_lifetime: float = 3600.0
    rate_limit: RateLimitConfig = RateLimitConfig()
    audit: AuditConfig = field(default_factory=AuditConfig)
    source: str = "kbs.toml"  # the file's name, for located errors found later (keys, sockets)


def load_config(path: str) -> KbsConfig:
    """Read and validate a TOML config file."""
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError("", exc.strerror or "cannot read", path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # tomllib.load decodes UTF-8 itself
        raise ConfigError("", f"not valid TOML ({str(exc)[:120]})", name) from None
    return parse_config(doc, name, base=os.path.dirname(os.path.abspath(path)))


def parse_config(doc: Mapping[str, object], file: str = "kbs.toml", base: str = ".") -> KbsConfig:
    """Typed config from a TOML document; relative paths are relative to ``base``."""
    top = _Table(doc, "", file, base)
    top.only("http", "attestation", "token", "storage", "admin", "rate_limit", "audit")
    admin_keys, admin_lifetime = _admin(top.table("admin"))
    storage = _storage(top.table("storage"))
    config = KbsConfig(
        http=_http(top.table("http")),
        attestation=_attestation(top.table("attestation")),
        token=_token(top.table("token")),
        storage=storage,
        rate_limit=_rate_limit(top.table("rate_limit"), storage.type == "postgres"),
        audit=_audit(top.table("audit")),
        admin_keys=admin_keys,
        admin_max_token_lifetime=admin_lifetime,
        source=file,
    )
    if config.storage.type == "postgres" and config.token.signing_key is None:
        raise ConfigError("token.signing_key", "required with PostgreSQL storage (replicas must share it)", file)
    if config.rate_limit.shared and config.storage.type != "postgres":
        raise ConfigError("rate_limit.shared", "needs PostgreSQL storage (SQLite serves one replica)", file)
    return config


def _http(t: _Table) -> HttpConfig:
    t.only("listen", "tls_cert", "tls_key", "max_body")
    host, _, port = t.string("listen", "127.0.0.1:8080").rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise t.error("listen", "must be host:port")
    cert, key = t.path("tls_cert"), t.path("tls_key")
    if (cert is None) != (key is None):
        raise t.error("tls_cert" if cert is None else "tls_key", "set both tls_cert and tls_key, or neither")
    return HttpConfig(host.strip("[]"), int(port), cert, key, t.integer("max_body", 1 << 20, minimum=1024))


def _attestation(t: _Table) -> AttestationConfig:
    t.only("session_timeout", "hash_algorithm", "collateral", "policy", "collateral_refresh")
    algorithm = t.string("hash_algorithm", "sha384")
    check_algorithm(algorithm, t.where("hash_algorithm"))
    return AttestationConfig(
        session_timeout=t.number("session_timeout", 300.0, minimum=1.0),
        hash_algorithm=algorithm,
        collateral=tuple(t.resolve(p) for p in t.strings("collateral")),
        policy=t.string("policy", "default"),
        collateral_refresh=t.number("collateral_refresh", 1.0, minimum=0.0),
    )


def _token(t: _Table) -> TokenConfig:
    t.only("signing_key", "issuer", "lifetime")
    return TokenConfig(
        t.path("signing_key"), t.string("issuer", "inclavare-kbs"), t.number("lifetime", 300.0, minimum=1.0)
    )


def _storage(t: _Table) -> StorageConfig:
    t.only("type", "path", "dsn", "dsn_env", "kek")
    kind = t.string("type", "sqlite")
    kek = _kek(t.table("kek")) if "kek" in t.doc else None
    if kind == "sqlite":
        return StorageConfig("sqlite", t.path("path") or DEFAULT_DB, kek=kek)
    if kind != "postgres":
        raise t.error("type", "must be 'sqlite' or 'postgres'")
    dsn, env = t.optional_string("dsn"), t.optional_string("dsn_env")
    if env is not None:
        dsn = os.environ.get(env)
        if not dsn:
            raise t.error("dsn_env", f"the environment variable {env} is not set")
    if not dsn:
        raise t.error("dsn", "postgres storage needs dsn or dsn_env")
    return StorageConfig("postgres", dsn=dsn, kek=kek)


def _kek(t: _Table) -> KekConfig:
    t.only("file", "env", "command", "stdin", "timeout", "previous")
    previous = []
    for p in t.tables("previous"):
        p.only("file", "env", "command", "stdin", "timeout")
        previous.append(_kek_source(p))
    return KekConfig(_kek_source(t), tuple(previous))


def _kek_source(t: _Table) -> KekSource:
    given = [k for k in ("file", "env", "command") if k in t.doc]
    if len(given) != 1:
        raise ConfigError(t.location, "set exactly one of file, env or command", t.file)
    command = tuple(t.strings("command"))
    if "command" in t.doc and not command:
        raise t.error("command", "must name a program")
    if not command and ("stdin" in t.doc or "timeout" in t.doc):
        raise t.error("stdin" if "stdin" in t.doc else "timeout", "only with command")
    return KekSource(
        where=t.location,
        file=t.path("file"),
        env=t.optional_string("env"),
        command=command,
        stdin=t.path("stdin"),
        timeout=t.number("timeout", 10.0, minimum=0.1),
    )


def _admin(t: _Table) -> tuple[tuple[AdminKey, ...], float]:
    t.only("keys", "max_token_lifetime")
    keys = []
    for i, k in enumerate(t.tables("keys")):
        k.only("name", "public_key", "scopes")
        key_path = k.path("public_key")
        if key_path is None:
            raise k.error("public_key", "missing")
        try:
            keys.append(AdminKey.load(k.string("name", f"admin{i}"), key_path, k.strings("scopes", ["*"]), k.location))
        except ConfigError as exc:
            raise ConfigError(exc.location, exc.reason, t.file) from None
    return tuple(keys), t.number("max_token_lifetime", 3600.0, minimum=1.0)


def _rate_limit(t: _Table, replicas: bool) -> RateLimitConfig:
    t.only("enabled", "per_address", "per_session", "max_clients", "trust_forwarded_for", "shared")
    return RateLimitConfig(
        enabled=t.boolean("enabled", True),
        per_address=_bucket(t.table("per_address"), Bucket(50.0, 100)),
        per_session=_bucket(t.table("per_session"), Bucket(20.0, 40)),
        max_clients=t.integer("max_clients", 100_000, minimum=1),
        trust_forwarded_for=t.boolean("trust_forwarded_for", False),
        shared=t.boolean("shared", replicas),
    )


def _bucket(t: _Table, default: Bucket) -> Bucket:
    t.only("rate", "burst")
    return Bucket(t.number("rate", default.rate, minimum=0.001), t.integer("burst", default.burst, minimum=1))


def _audit(t: _Table) -> AuditConfig:
    t.only("path", "replica")
    return AuditConfig(t.path("path"), t.string("replica", socket.gethostname()))


class _Table:
    """One TOML table and its dotted location; typed getters raise located ConfigErrors."""

    def __init__(self, doc: Mapping[str, object], location: str, file: str, base: str) -> None:
        self.doc, self.location, self.file, self.base = doc, location, file, base

    def where(self, key: str) -> str:
        return f"{self.location}.{key}" if self.location else key

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.where(key), reason, self.file)

    def only(self, *keys: str) -> None:
        for key in self.doc:
            if key not in keys:
                raise self.error(key, "unknown key")

    def table(self, key: str) -> _Table:
        value = self.doc.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, "must be a table")
        return _Table(value, self.where(key), self.file, self.base)

    def tables(self, key: str) -> list[_Table]:
        value = self.doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.error(key, "must be an array of tables ([[...]])")
        return [_Table(v, f"{self.where(key)}[{i}]", self.file, self.base) for i, v in enumerate(value)]

    def optional_string(self, key: str) -> str | None:
        value = self.doc.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise self.error(key, "must be a non-empty string")
        return value

    def string(self, key: str, default: str) -> str:
        value = self.optional_string(key)
        return default if value is None else value

    def strings(self, key: str, default: list[str] | None = None) -> list[str]:
        value = self.doc.get(key, default if default is not None else [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, "must be a list of non-empty strings")
        return value

    def resolve(self, path: str) -> str:
        return path if os.path.isabs(path) or path == ":memory:" else os.path.join(self.base, path)

    def path(self, key: str) -> str | None:
        value = self.optional_string(key)
        return None if value is None else self.resolve(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.doc.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def number(self, key: str, default: float, minimum: float) -> float:
        value = self.doc.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < minimum:
            raise self.error(key, f"must be a number >= {minimum:g}")
        return float(value)

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self.doc.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.error(key, f"must be an integer >= {minimum}")
        return value
