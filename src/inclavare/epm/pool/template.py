"""A ``[[pool.enclaves]]`` entry: the template bundle an instance is prepared from.

The bundle is an OCI bundle like any container's: ``config.json``'s
``root.path`` is the template rootfs, and its ``enclave.*`` annotations or
``ENCLAVE_*`` variables (read as rune reads them, src/inclavare/enclave/config.py)
say which runtime, with which options. Everything is checked when epm loads
its configuration, so a mistake is one line at start, not a pool that never
fills: the runtime must be built in (the pool cannot pre-initialise a PAL),
the type ``software`` (the built-in runtimes are software enclaves), and the
manifest and signature named by the options readable in the rootfs, because
the pool key is computed from them (src/inclavare/enclave/pool/key.py).

The key is computed once, at load: an operator who re-signs a template
restarts epm (an instance prepared from the old files would be refused by
the guest's own check anyway, docs/epm.md "The warm pool").
"""

from __future__ import annotations

import dataclasses
import os

from ...errors import InclavareError, SpecError
from ..errors import EpmError

MAX_SIZE = 64
_KEYS = ("bundle", "size")


@dataclasses.dataclass(frozen=True)
class Template:
    bundle: str  # absolute path of the OCI bundle
    size: int  # instances kept ready
    rootfs: str  # absolute host path of its rootfs
    runtime: str  # "wasm" or "native"
    args: str  # enclave.runtime.args, commas already spaces
    tee: str  # enclave.type
    key: str  # the pool key, 64 hex digits

    @property
    def short(self) -> str:
        return self.key[:16]


def parse_entries(value: object, where: str) -> tuple[Template, ...]:
    """``pool.enclaves`` (a list of tables) -> its templates; `where` is ``file: pool.enclaves``."""
    if not isinstance(value, list):
        raise EpmError(where, "must be an array of tables ([[pool.enclaves]])")
    templates: list[Template] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(value):
        here = f"{where}[{i}]"
        template = _entry(entry, here)
        if template.key in seen:
            raise EpmError(f"{here}.bundle", f"prepares the same enclave (pool key {template.short}) "
                           f"as entry {seen[template.key]}: give it one entry")  # fmt: skip
        seen[template.key] = i
        templates.append(template)
    return tuple(templates)


def _entry(entry: object, here: str) -> Template:
    if not isinstance(entry, dict):
        raise EpmError(here, "must be a table")
    for name in entry:
        if name not in _KEYS:
            raise EpmError(f"{here}.{name}", f"unknown setting (known: {', '.join(_KEYS)})")
    bundle, size = entry.get("bundle"), entry.get("size", 1)
    if not isinstance(bundle, str) or not os.path.isabs(bundle):
        raise EpmError(f"{here}.bundle", f"{bundle!r} is not an absolute path")
    if not isinstance(size, int) or isinstance(size, bool):
        raise EpmError(f"{here}.size", f"must be an integer, not {size!r}")
    if not 0 <= size <= MAX_SIZE:
        raise EpmError(f"{here}.size", f"{size} is out of range (0 to {MAX_SIZE})")
    try:
        return read_template(os.path.normpath(bundle), size)
    except InclavareError as exc:
        raise EpmError(f"{here}.bundle", str(exc)) from None


def read_template(bundle: str, size: int) -> Template:
    """The template of `bundle`; raises the error that says what is wrong with it."""
    from ..._sys import default
    from ...enclave.config import enclave_config, read_settings
    from ...enclave.errors import EnclaveConfigError, EnclaveError
    from ...enclave.pool.key import BUILTIN, key_of_rootfs
    from ...spec.load import load_bundle

    spec = load_bundle(bundle)
    file = os.path.join(bundle, "config.json")
    if spec.root is None:
        raise SpecError("root", "not set: the pool needs the template's rootfs", file)
    rootfs = os.path.join(bundle, spec.root.path)
    try:
        config = enclave_config(read_settings(spec.annotations, spec.process.env if spec.process else []))
    except EnclaveConfigError as exc:
        raise SpecError(exc.source, exc.reason, file) from None
    if config is None:
        raise SpecError("annotations", "no enclave settings (enclave.type, enclave.runtime.path): nothing to prepare",
                        file)  # fmt: skip
    if config.runtime not in BUILTIN:
        builtin = ", ".join(sorted(BUILTIN))
        raise SpecError(config.sources.get("runtime", "annotations.enclave.runtime.path"),
                        f"{config.runtime!r} is not a built-in runtime (the pool prepares {builtin})",
                        file)  # fmt: skip
    if config.type != "software":
        raise SpecError(config.sources.get("type", "annotations.enclave.type"),
                        f"{config.type!r}: the built-in runtimes are software enclaves (enclave.type=software)",
                        file)  # fmt: skip
    try:
        key = key_of_rootfs(default(), rootfs, config.runtime, config.args)
    except (EnclaveError, OSError) as exc:
        raise EpmError(rootfs, getattr(exc, "strerror", None) or str(exc)) from None
    return Template(bundle, size, rootfs, config.runtime, config.args, config.type, key)
