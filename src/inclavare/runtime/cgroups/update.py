"""`rune update` on a live container, the same for both drivers."""

from __future__ import annotations

from ...errors import SpecError
from . import devices as dev
from .resources import document

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import CgroupManager


def update(manager: CgroupManager, resources: dict[str, object], created: object = None) -> None:
    """Apply a partial linux.resources; errors name the field of the update document.

    Device rules stay as created. containerd's CRI sends the container's whole
    linux.resources on every UpdateContainerResources, its unchanged device
    list included; runc accepts the document and skips the devices
    ("currently runc update is unable to change device configuration",
    update.go sets Cgroups.SkipDevices). rune accepts the list when it is the
    one the container was created with (`created`: the saved
    linux.resources.devices) and refuses a different one, rather than
    dropping it silently: a caller asking to take a device away must not
    believe it was taken away.
    """
    try:
        res = document(resources)
        if res.get("devices"):
            asked = dev.spec_rules(res)
            if not dev.same_rules(asked, dev.spec_rules({"devices": created or []})):
                raise SpecError(
                    "linux.resources.devices",
                    "differs from the device rules the container was created with, and those cannot be "
                    "changed on a running container",
                )
            res = {key: value for key, value in res.items() if key != "devices"}
        manager.apply(res, None)
    except SpecError as exc:
        raise SpecError(exc.field, exc.reason, file="rune update") from None
