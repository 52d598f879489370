"""The carrier's node configuration: ``/etc/inclavare-containers/config.toml``.

The original shim's file, read with the same keys, plus what it needed to
reach a signing server safely::

    log_level = "info"                    # debug | info | warn | error
    sgx_tool_sign = "/opt/intel/..."      # accepted, unused (no sgx_sign here)
    [containerd]
    socket = "/run/containerd/containerd.sock"   # accepted, unused
    [epm]
    socket = "/var/run/epm/epm.sock"      # set: the bundle caches in epm (bundle_cache.py)
    [signature]
    server_address = "https://signer.example:9080"  # absent: the node's own key (mock signing)
    ca_cert = "/etc/inclavare-containers/signer-ca.pem"     # verifies the server (https)
    token_file = "/etc/inclavare-containers/signer.token"  # bearer token, mode 0600
    client_cert = "/etc/inclavare-containers/node.pem"     # mTLS, with client_key
    client_key = "/etc/inclavare-containers/node.key"
    expected_signer = "<64 hex digits>"   # the server's key must have this MRSIGNER
    node_key = "/var/lib/inclavare/carrier-signing-key.pem" # the mock signer's key
    [enclave_runtime]
    signature_method = "server"           # "server": sign at Create | "client": the image is signed
    [enclave_runtime.occlum]              # accepted, unused: no Occlum carrier here
    enclave_runtime_path = "..."
    enclave_libos_path = "..."
    [enclave_runtime.graphene]

A missing file means the defaults (mock signing, method "server"). The file
decides who signs what a node runs, so, like rune's own configuration
(runtime/nodeconfig.py), it must be the administrator's (root-owned, not
writable by others: :mod:`inclavare._sys.trusted`). Unknown keys are errors,
never defaults. Read with :mod:`inclavare._toml`: the subset suffices.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse

from ..errors import UntrustedPath
from .errors import CarrierConfigError

DEFAULT_PATH = "/etc/inclavare-containers/config.toml"
DEFAULT_NODE_KEY = "/var/lib/inclavare/carrier-signing-key.pem"
LOG_LEVELS = ("debug", "info", "warn", "error")
METHODS = ("server", "client")
# table -> {key: is a path}; "" is the top level. Keys of the original that
# this implementation has no use for are accepted so that its files load.
_SCHEMA: dict[str, dict[str, bool]] = {
    "": {"log_level": False, "sgx_tool_sign": True},
    "containerd": {"socket": True},
    "epm": {"socket": True},
    "signature": {"server_address": False, "ca_cert": True, "token_file": True, "client_cert": True,
                  "client_key": True, "expected_signer": False, "node_key": True},
    "enclave_runtime": {"signature_method": False},
    "enclave_runtime.occlum": {"enclave_runtime_path": True, "enclave_libos_path": True},
    "enclave_runtime.graphene": {},
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class CarrierConfig:
    path: str = ""  # the file it came from; "" for the defaults
    log_level: str = "info"
    signature_method: str = "server"
    server_address: str = ""
    ca_cert: str = ""
    token_file: str = ""
    client_cert: str = ""
    client_key: str = ""
    expected_signer: bytes | None = None
    node_key: str = DEFAULT_NODE_KEY
    epm_socket: str = ""  # "" -> no bundle caches


def load(path: str | None = None) -> CarrierConfig:
    """The configuration at `path` (default: /etc/inclavare-containers/config.toml, optional)."""
    explicit = path is not None
    path = os.path.abspath(path) if path is not None else DEFAULT_PATH
    if not explicit and not os.path.lexists(path):
        return CarrierConfig()
    from .._sys.trusted import open_trusted

    owners = (0,) if os.geteuid() == 0 else (0, os.geteuid())
    try:
        fd = open_trusted(path, allowed=(), owners=owners)
    except UntrustedPath as exc:
        raise CarrierConfigError(path, "", exc.reason) from None
    try:
        data = os.read(fd, (1 << 20) + 1)
    finally:
        os.close(fd)
    if len(data) > 1 << 20:
        raise CarrierConfigError(path, "", "larger than 1 MiB")
    return parse(data, path)


def parse(data: bytes, path: str) -> CarrierConfig:
    from .._toml import TomlError, loads

    try:
        doc = loads(data.decode())
    except UnicodeDecodeError:
        raise CarrierConfigError(path, "", "not UTF-8") from None
    except TomlError as exc:
        raise CarrierConfigError(path, "", f"line {exc.lineno}: {exc.msg}") from None
    flat = _flatten(doc, path)
    signature = {k.removeprefix("signature."): v for k, v in flat.items() if k.startswith("signature.")}
    log_level = flat.get("log_level", "info")
    if log_level not in LOG_LEVELS:
        raise CarrierConfigError(path, "log_level", f"must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    method = flat.get("enclave_runtime.signature_method", "server")
    if method not in METHODS:
        raise CarrierConfigError(
            path, "enclave_runtime.signature_method", f'must be "server" or "client", not {method!r}'
        )
    if signature.get("server_address"):
        _check_url(signature["server_address"], path)
    if ("client_cert" in signature) != ("client_key" in signature):
        given, missing = ("client_cert", "client_key") if "client_cert" in signature else ("client_key", "client_cert")
        raise CarrierConfigError(path, f"signature.{given}", f"needs signature.{missing} too (mTLS)")
    expected = signature.pop("expected_signer", "")
    return CarrierConfig(path=path, log_level=log_level, signature_method=method, epm_socket=flat.get("epm.socket", ""),
                         expected_signer=_signer(expected, path) if expected else None, **signature)  # fmt: skip


def _flatten(doc: dict[str, object], path: str) -> dict[str, str]:
    """``{"table.key": value}`` for every known key; anything else is refused with its dotted name."""
    out: dict[str, str] = {}

    def walk(table: dict[str, object], prefix: str) -> None:
        known = _SCHEMA[prefix]
        for key, value in table.items():
            name = f"{prefix}.{key}" if prefix else key
            if name in _SCHEMA:
                if not isinstance(value, dict):
                    raise CarrierConfigError(path, name, "must be a table")
                walk(value, name)
                continue
            if key not in known:
                choices = sorted([*known, *(t.rpartition(".")[2] for t in _SCHEMA if t.rpartition(".")[0] == prefix)])
                raise CarrierConfigError(path, name, f"unknown setting (known: {', '.join(c for c in choices if c)})")
            if not isinstance(value, str):
                raise CarrierConfigError(path, name, "must be a string")
            if known[key] and not os.path.isabs(value):
                raise CarrierConfigError(path, name, f"{value!r} is not an absolute path")
            out[name] = value

    walk(doc, "")
    return out


def _check_url(url: str, path: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CarrierConfigError(path, "signature.server_address", f"{url!r} is not an http:// or https:// URL")


def _signer(text: str, path: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise CarrierConfigError(path, "signature.expected_signer", "must be 64 hex digits (an MRSIGNER)")
    return value
