"""The node operator's settings for rune: ``/etc/inclavare/rune.toml``.

A bundle says what a container wants; this file says what the node allows.
Both settings are about failing closed (docs/architecture.md, "Enclave
containers"):

.. code-block:: toml

    [enclave]
    # Directories a PAL library named by path (enclave.runtime.path) may be
    # loaded from. Nothing else is ever dlopened, whatever a bundle says.
    pal_dirs = ["/usr/lib/inclavare/pal", "/opt/inclavare/pal"]
    # Refuse every container that asks for no enclave (the Kubernetes
    # sandbox container excepted): a runtime handler that means "confidential".
    required = false

A missing file means the defaults above. The file must be the
administrator's (root-owned, not writable by group or others, on a path only
root can change: :mod:`inclavare._sys.trusted`), or rune refuses to run.
``rune --config FILE`` reads another file (which must exist);
``rune --enclave-required`` turns ``required`` on for one invocation, for a
runtime handler whose binary is a wrapper that adds it.

Read on every `rune create`, so it costs a stat() when absent and a
``_toml`` parse (not ``tomllib``: see :mod:`inclavare._toml`) when present.
"""

from __future__ import annotations

import os

from ..errors import InclavareError, SpecError, UntrustedPath

DEFAULT_PATH = "/etc/inclavare/rune.toml"
DEFAULT_PAL_DIRS = ("/usr/lib/inclavare/pal", "/opt/inclavare/pal")
DEFAULT_POOL_SOCKET = "/run/inclavare/epm-pool.sock"  # = enclave/pool/claim.py DEFAULT_SOCKET
_KNOWN = {"enclave": {"pal_dirs", "required", "pool_socket"}}


class NodeConfig:
    __slots__ = ("pal_dirs", "path", "pool_socket", "required_by")

    def __init__(self, pal_dirs: tuple[str, ...] = DEFAULT_PAL_DIRS, required_by: str = "", path: str = "",
                 pool_socket: str = DEFAULT_POOL_SOCKET) -> None:  # fmt: skip
        self.pal_dirs = pal_dirs
        self.pool_socket = pool_socket
        # Who demands that every container be an enclave ("" if nobody), for
        # the refusal's message: "enclave.required in FILE" or the flag.
        self.required_by = required_by
        self.path = path  # the file it came from, "" for the built-in defaults


def load(path: str | None = None) -> NodeConfig:
    """The configuration in `path` (default: /etc/inclavare/rune.toml, optional)."""
    explicit = path is not None
    path = path if path is not None else DEFAULT_PATH
    if not explicit and not os.path.lexists(path):
        return NodeConfig()
    owners = (0,) if os.geteuid() == 0 else (0, os.geteuid())
    from .._sys.trusted import open_trusted

    try:
        fd = open_trusted(os.path.abspath(path), allowed=(), owners=owners)
    except UntrustedPath as exc:
        raise InclavareError(f"rune configuration {exc}") from None
    try:
        text = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    return parse(text, path)


def parse(data: bytes, path: str) -> NodeConfig:
    from .._toml import TomlError, loads

    try:
        doc = loads(data.decode())
    except UnicodeDecodeError:
        raise SpecError("", "not UTF-8", file=path) from None
    except TomlError as exc:
        raise SpecError("", f"line {exc.lineno}: {exc.msg}", file=path) from None
    _check_keys(doc, path)
    enclave = doc.get("enclave", {})
    assert isinstance(enclave, dict)
    dirs = enclave.get("pal_dirs", list(DEFAULT_PAL_DIRS))
    if not isinstance(dirs, list) or not all(isinstance(d, str) and os.path.isabs(d) for d in dirs):
        raise SpecError("enclave.pal_dirs", "must be an array of absolute directory paths", file=path)
    required = enclave.get("required", False)
    if not isinstance(required, bool):
        raise SpecError("enclave.required", "must be true or false", file=path)
    by = f"enclave.required in {path}" if required else ""
    pool = enclave.get("pool_socket", DEFAULT_POOL_SOCKET)
    if not isinstance(pool, str) or (pool and not os.path.isabs(pool)):
        raise SpecError("enclave.pool_socket", 'must be an absolute path, or "" for no pool', file=path)
    return NodeConfig(tuple(os.path.normpath(d) for d in dirs), by, path, pool)


def _check_keys(doc: dict[str, object], path: str) -> None:
    """A misspelt key would silently be a default: refuse it instead."""
    for table, value in doc.items():
        if table not in _KNOWN or not isinstance(value, dict):
            raise SpecError(table, f"unknown setting (known tables: {', '.join(sorted(_KNOWN))})", file=path)
        for key in value:
            if key not in _KNOWN[table]:
                known = ", ".join(sorted(_KNOWN[table]))
                raise SpecError(f"{table}.{key}", f"unknown setting (known: {known})", file=path)
