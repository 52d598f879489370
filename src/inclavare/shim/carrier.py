"""The carrier seam: where Create hands the bundle to a carrier before `rune create`.

In the original shim-rune a *carrier* turns an ordinary container image into
a signed enclave bundle at Create (build, measure, sign, assemble), chosen
by ``RUNE_CARRIER`` in the container's environment. The carriers themselves
live outside this package; the shim only calls one hook:

.. code-block:: python

    def hook(bundle: str, spec: dict[str, object], options: ShimOptions) -> None

* ``bundle``: the absolute path of the container's OCI bundle. Its
  ``rootfs`` is mounted already (containerd's snapshot), so the image's files
  can be read and files added to it; ``config.json`` is the OCI spec rune
  will read.
* ``spec``: ``config.json`` parsed (a fresh dict; changing it changes
  nothing). A carrier that changes the container (env, annotations, mounts)
  writes ``<bundle>/config.json`` itself; rune reads it afterwards.
* ``options``: the shim's resolved options (:class:`.options.ShimOptions`:
  binary_name, root, systemd_cgroup, enclave_required, io_uid/io_gid,
  config_path — the runtime handler's configuration file, if any).

It runs in the shim's process, in the Create RPC's thread, before the
shim's lock is taken (other containers of the pod are not held up), once
per container, the pod's sandbox included. To refuse, it raises an
:class:`~inclavare.errors.InclavareError`: containerd then shows
``carrier: <its message>`` as the Create error, the rootfs is unmounted and
nothing is left; any other exception is reported as a carrier internal error.
It may start programs with :mod:`subprocess`: while it runs, the shim's
reaper leaves children it did not start to their owner
(:meth:`.reaper.Reaper.foreign_children`).

:func:`load` is the one place that chooses the hook: :func:`carrier_prepare`,
the carriers of :mod:`inclavare.carrier` (RUNE_CARRIER / ``enclave.carrier``:
wasm, native), with the carrier's configuration file named by the shim's
``carrier_config`` setting (its default /etc/inclavare-containers/config.toml
otherwise). A container that names no carrier — the sandbox, a plain
container, an image that arrives with its enclave signed — is left as it is
(:func:`empty_carrier` does the same for everything; the unit tests use it).
The carrier library is imported on the first Create, not at the shim's
start: start and delete are on every pod's critical path.
"""

from __future__ import annotations

from .errors import FAILED_PRECONDITION, ShimError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .options import ShimOptions

    CarrierHook = Callable[[str, dict[str, object], ShimOptions], None]


class CarrierError(ShimError):
    """A carrier refused or failed the container; Create fails with this one line."""

    code = FAILED_PRECONDITION


def empty_carrier(bundle: str, spec: dict[str, object], options: ShimOptions) -> None:
    """The empty carrier: the bundle is run as containerd made it."""


def carrier_prepare(bundle: str, spec: dict[str, object], options: ShimOptions) -> None:
    """Build, measure and sign the enclave a container asks for (inclavare.carrier.flow)."""
    from ..enclave.names import mentions_carrier

    process, annotations = spec.get("process"), spec.get("annotations")
    env = process.get("env") if isinstance(process, dict) else None
    if (isinstance(env, list) and all(isinstance(e, str) for e in env) and isinstance(annotations, dict | None)
            and not mentions_carrier(env, annotations or {})):  # fmt: skip
        return  # nothing for a carrier to do: the library's imports stay off this pod's path
    from ..carrier import prepare
    from .carrierlog import log_to_shim

    log_to_shim()
    prepare(bundle, spec, {"config_path": options.carrier_config})


def load() -> CarrierHook:
    """The hook Create calls (loaded once, when the shim starts serving)."""
    return carrier_prepare
