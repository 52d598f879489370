"""``enclave.runtime.path`` -> the factory of an enclave runtime.

The value is one of two things:

- an absolute path to a PAL shared library on the host (inventory §2), e.g.
  ``/usr/lib/liberpal-skeleton-v3.so``: loaded by :class:`~.pal.PalRuntime`;
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


def check(value: str) -> None:
    """Raise unless `value` resolves, without loading anything.

    For `rune create`: a PAL file must exist on the host (as the original's
    os.Stat at create time); a name must be registered.
    """
    if not value:
        raise EnclaveRuntimeNotFound("enclave runtime path is not configured")
    if is_path(value):
        _check_pal_path(value)
    elif value not in BUILTIN:
        _entry_point(value)


def resolve(value: str) -> RuntimeFactory:
    """The factory for `value`: a PAL path or a registered runtime name."""
    check(value)
    if is_path(value):
        return _pal_factory(value)
    target = BUILTIN.get(value) or _entry_point(value).value
    try:
        module, _, attr = target.partition(":")
        factory = getattr(importlib.import_module(module), attr)
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


def _check_pal_path(path: str) -> None:
    if not os.path.isabs(path):
        raise EnclaveRuntimeNotFound(f"enclave runtime {path}: a PAL library path must be absolute")
    if not os.path.exists(path):
        raise EnclaveRuntimeNotFound(f"enclave runtime {path}: no such file")
    if not os.path.isfile(path):
        raise EnclaveRuntimeNotFound(f"enclave runtime {path}: not a regular file")


def _pal_factory(path: str) -> RuntimeFactory:
    def factory(*, tee: str, log: Callable[[str], None] | None = None) -> EnclaveRuntime:
        from .pal import PalRuntime  # ctypes only for PAL containers

        return PalRuntime(path, tee=tee, log=log)

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
