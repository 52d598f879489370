"""``containerd-shim-rune-v2 delete``: clean up after a shim that is gone.

When a shim dies (killed, OOM, a node reboot), containerd runs ``<shim>
-namespace NS -address A -publish-binary B -id ID -bundle DIR delete`` in
the bundle and reads a DeleteResponse from stdout (runtime/v2/binary.go
Delete). As the runc shim's Stop (runtime/v2/runc/manager/manager_linux.go):
`rune delete --force` with the options Create recorded in
``<bundle>/options.json``, unmount the rootfs, and report the init's pid
with exit status 137 (128 + SIGKILL), now. What fails is a warning on
stderr (containerd logs it as "cleanup warnings"), not an error: there is
nothing else to clean up with.

containerd also runs `delete` every time a shim exits normally, after the
Delete RPC (the connection's close calls cleanupAfterDeadShim), and waits
for it before `ctr run --rm` returns. Then there is nothing left: rune's
state is gone, the rootfs unmounted, and the Delete RPC removed init.pid
after reporting the exit; containerd has removed the task and ignores this
answer. So that case is checked first and answered with an empty
DeleteResponse (no field set: zero bytes on the wire), without starting rune
or loading protobuf (a Python start-up on every container's removal).
"""

from __future__ import annotations

import os
import sys
import time

from .. import _fastjson
from ..errors import InclavareError
from .errors import ShimError
from .options import ShimOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .daemon import ShimFlags


def delete(flags: ShimFlags) -> bytes:
    """Clean up; returns the serialized DeleteResponse."""
    bundle = flags.bundle or os.getcwd()
    options = _options(bundle)
    if options is not None and _nothing_left(bundle, options, flags):
        return b""
    from .events import timestamp
    from .mount import unmount_all
    from .process import read_pid
    from .reaper import Reaper
    from .rune import Rune

    options = options or ShimOptions()  # Create never got that far
    reaper = Reaper(lambda pid, status: None, loop=False)
    rune = Rune(reaper, options.binary_name, options.root, flags.namespace, bundle, options.systemd_cgroup)
    # Usually the Delete RPC removed it already; rune's state directory says so
    # without paying for a `rune delete --force` that can only fail.
    if os.path.lexists(os.path.join(rune.root, flags.id)):
        try:
            rune.delete(flags.id, force=True)
        except InclavareError as exc:
            _warn(f"failed to remove rune container: {exc}")
    try:
        unmount_all(os.path.join(bundle, "rootfs"))
    except ShimError as exc:
        _warn(f"failed to cleanup rootfs mount: {exc}")
    try:
        pid = read_pid(os.path.join(bundle, "init.pid"))
    except ShimError as exc:
        _warn(f"failed to read init pid file: {exc}")
        pid = 0
    from .pb import api

    response = api.DeleteResponse(pid=pid, exit_status=128 + 9, exited_at=timestamp(time.time()))
    return bytes(response.SerializeToString())


def _options(bundle: str) -> ShimOptions | None:
    """What Create recorded, or None."""
    try:
        with open(os.path.join(bundle, "options.json"), "rb") as f:
            doc = _fastjson.loads(f.read())
    except (OSError, ValueError):
        return None
    return ShimOptions.from_dict(doc) if isinstance(doc, dict) else None


def _nothing_left(bundle: str, options: ShimOptions, flags: ShimFlags) -> bool:
    if os.path.exists(os.path.join(bundle, "init.pid")) or os.path.ismount(os.path.join(bundle, "rootfs")):
        return False
    return not os.path.lexists(os.path.join(options.root, flags.namespace, flags.id))


def _warn(message: str) -> None:
    sys.stderr.write(f"{message}\n")
