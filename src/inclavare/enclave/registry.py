"""``enclave.runtime.path`` -> the factory of an enclave runtime.

The value is one of two things:

- an absolute path to a PAL shared library on the host (docs/pal-abi.md),
  e.g. ``/usr/lib/inclavare/pal/liberpal-skeleton-v3.so``: loaded by
  :class:`~.pal.PalRuntime`. The library runs as root with the host's view
  of the filesystem (in the container's init, before pivot_root), and the
  value comes from a bundle — perhaps from an untrusted image. So `rune
  create` opens it with :func:`select` only from the directories the node's
  operator configured (``pal_dirs``, runtime/nodeconfig.py), by an ownership
  walk that returns an fd (:mod:`inclavare._sys.trusted`), and init dlopens
  that fd: nothing else is ever opened, and nothing is resolved twice;
- the name of a Python enclave runtime, e.g. ``wasm``: looked up in the entry
  point group ``inclavare.enclave_runtimes``. inclavare's own runtimes are
  registered there, and so can any third-party package::

      [project.entry-points."inclavare.enclave_runtimes"]
      myruntime = "mypkg.runtime:MyRuntime"

  The object is a :class:`~.interface.RuntimeFactory`: called as
  ``factory(tee=..., log=...)`` it returns an un-initialised runtime.

A value containing "/" is always a path, so names and paths never collide.
Entry points are read only when a name is used: ``importlib.metadata`` costs
tens of milliseconds, and a PAL path never needs it.
"""

from __future__ import annotations

import importlib
import os

from ..errors import UntrustedPath
from .errors import EnclaveRuntimeNotFound

GROUP = "inclavare.enclave_runtimes"
# The runtimes inclavare ships, found without scanning installed distributions'
# metadata (importlib.metadata costs ~50 ms, paid twice per enclave container:
# in `rune create` and in init). They are registered in GROUP too, for
# `available()`; a third-party entry point cannot shadow them.
BUILTIN = {
    "native": "inclavare.enclave.runtimes.native:NativeRuntime",
    "wasm": "inclavare.enclave.runtimes.wasm:WasmRuntime",
}

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing alone costs ~15 ms; `rune create` checks paths with this module
    from collections.abc import Callable
    from importlib.metadata import EntryPoint

    from .interface import EnclaveRuntime, RuntimeFactory


def is_path(value: str) -> bool:
    """True if `value` names a PAL file rather than a registered runtime."""
    return "/" in value


def select(value: str, *, pal_dirs: tuple[str, ...], forbidden: tuple[str, ...] = ()) -> int:
    """Check `value` for `rune create` without loading anything.

    A name must be registered (-1 is returned). A PAL path must pass the
    ownership walk inside `pal_dirs` and outside `forbidden` (the bundle and
    the rootfs); its open fd is returned, for init to dlopen.
    """
    if not value:
        raise EnclaveRuntimeNotFound("enclave runtime path is not configured")
    if not is_path(value):
        if value not in BUILTIN:
            _entry_point(value)
        return -1
    from .._sys.trusted import open_trusted

    owners = (0,) if os.geteuid() == 0 else (0, os.geteuid())
    try:
        return open_trusted(value, allowed=pal_dirs, forbidden=forbidden, owners=owners)
    except UntrustedPath as exc:
        raise EnclaveRuntimeNotFound(
            f"enclave runtime {exc}; PAL libraries are loaded only from the node's pal_dirs "
            f"({', '.join(pal_dirs) or 'none'}), in the administrator's files"
        ) from None


def check(value: str) -> None:
    """Raise unless the registered runtime `value` exists (names only; paths go through :func:`select`)."""
    if is_path(value) or not value:
        raise EnclaveRuntimeNotFound(f"enclave runtime {value or '(empty)'}: not a registered runtime name")
    if value not in BUILTIN:
        _entry_point(value)


def resolve(value: str, pal_fd: int = -1) -> RuntimeFactory:
    """The factory for `value`: a registered runtime name, or a PAL path.

    For a PAL, `pal_fd` is the fd :func:`select` opened: the library is
    loaded from it. Without one the path itself is loaded — only for callers
    whose path comes from the operator (``inclavare ratls --pal``, tests).
    """
    if is_path(value):
        return _pal_factory(value, pal_fd)
    check(value)
    target = BUILTIN.get(value) or _entry_point(value).value
    try:
        module, _, attr = target.partition(":")
        factory: RuntimeFactory = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # an entry point's import can fail in any way
        raise EnclaveRuntimeNotFound(f"enclave runtime {value}: cannot load {target}: {exc}") from exc
    if not callable(factory):
        raise EnclaveRuntimeNotFound(f"enclave runtime {value}: {target} is not callable")
    return factory


def available() -> list[str]:
    """Names of the registered Python runtimes, sorted (for `rune features`).

    PAL libraries are not listed: any absolute path to one will do.
    """
    return sorted({*BUILTIN, *(ep.name for ep in _entry_points())})


def _pal_factory(path: str, fd: int) -> RuntimeFactory:
    def factory(*, tee: str, log: Callable[[str], None] | None = None) -> EnclaveRuntime:
        from .pal import PalRuntime  # ctypes only for PAL containers

        return PalRuntime(path, tee=tee, log=log, fd=fd)

    return factory


def _entry_points() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def _entry_point(name: str) -> EntryPoint:
    found = [ep for ep in _entry_points() if ep.name == name]
    if not found:
        names = ", ".join(available()) or "none"
        raise EnclaveRuntimeNotFound(
            f"enclave runtime {name}: no runtime registered under this name (registered: {names}; "
            "a PAL library is given by its absolute path)"
        )
    if len({ep.value for ep in found}) > 1:
        where = ", ".join(sorted(ep.value for ep in found))
        raise EnclaveRuntimeNotFound(f"enclave runtime {name}: registered more than once ({where})")
    return found[0]
