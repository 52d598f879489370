"""Checked access to the ``linux.resources`` JSON (config-linux.md "Control groups").

The drivers' translations read every value through these helpers, so a wrong
type or an out-of-range number becomes one :class:`SpecError` naming the field
(``linux.resources.cpu.shares: must be an integer in [2, 262144]``) before any
file is written. A zero where runc treats zero as "unset" (memory limits, cpu
shares/quota/period, realtime values, blkio weight) reads as None, as in
runc's libcontainer/specconv.

A *write* is the tuple ``(field, controller, file, value, flags)``;
controller is "" on cgroup v2 (one directory). ``RETRY``: the kernel may refuse
this value until the next write of the batch is done (cpu period before quota,
runc's ``setCFS``/``setRtSched``); then it is retried after that one.
``OPTIONAL``: a file the kernel may lack, where skipping changes nothing.
"""

from __future__ import annotations

from ...errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Write = tuple[str, str, str, str, int]
    # (controller, file) -> current contents, or None if the file does not exist
    Probe = Callable[[str, str], "str | None"]

RETRY = 1
OPTIONAL = 2  # skip the write silently when the kernel has no such file
BASE = "linux.resources"
I64 = (-(2**63), 2**63 - 1)
U64 = (0, 2**64 - 1)
U32 = (0, 2**32 - 1)


def document(resources: object) -> dict[str, object]:
    """linux.resources itself: an object, or absent (null reads as {})."""
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise SpecError(BASE, "must be an object")
    return resources


def section(obj: dict[str, object], key: str, field: str) -> dict[str, object]:
    """A nested object (absent or null reads as {})."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{field}.{key}", "must be an object")
    return value


def items(obj: dict[str, object], key: str, field: str) -> list[tuple[str, dict[str, object]]]:
    """An array of objects, with each element's field name."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{field}.{key}", "must be an array")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise SpecError(f"{field}.{key}[{i}]", "must be an object")
        out.append((f"{field}.{key}[{i}]", item))
    return out


def integer(obj: dict[str, object], key: str, field: str, lo: int, hi: int, zero_unset: bool = False) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not int or not lo <= value <= hi:
        raise SpecError(f"{field}.{key}", f"must be an integer in [{lo}, {hi}], not {value!r}")
    return None if zero_unset and value == 0 else value


def required_int(obj: dict[str, object], key: str, field: str, lo: int, hi: int) -> int:
    value = integer(obj, key, field, lo, hi)
    if value is None:
        raise SpecError(f"{field}.{key}", "is required")
    return value


def boolean(obj: dict[str, object], key: str, field: str) -> bool | None:
    value = obj.get(key)
    if value is not None and type(value) is not bool:
        raise SpecError(f"{field}.{key}", f"must be true or false, not {value!r}")
    return value


def word(obj: dict[str, object], key: str, field: str, required: bool = False) -> str | None:
    """A string without whitespace (device names, cpu lists, page sizes)."""
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise SpecError(f"{field}.{key}", "is required")
        return None
    if not isinstance(value, str) or not value.isprintable() or len(value.split()) != 1:
        raise SpecError(f"{field}.{key}", f"must be a single word, not {value!r}")
    return value


def cpu_list(obj: dict[str, object], key: str, field: str) -> str | None:
    """cpuset list syntax (cpuset(7) "List format"): ``0-3,8,10-11``."""
    value = word(obj, key, field)
    if value is None:
        return None
    for part in value.split(","):
        lo, dash, hi = part.partition("-")
        if not (lo.isascii() and lo.isdigit()) or (dash and not (hi.isascii() and hi.isdigit() and int(hi) >= int(lo))):
            raise SpecError(f"{field}.{key}", f"{value!r} is not a cpuset list like 0-3,8")
    return value


def page_size(value: object, field: str) -> str:
    """A hugetlb page size as the kernel names its files: 64KB, 2MB, 1GB."""
    if not isinstance(value, str):
        raise SpecError(field, f"{value!r} is not a page size like 2MB")
    body = value[:-1] if value.endswith("B") else ""
    if body[-1:] in ("K", "M", "G", "T", "P"):
        body = body[:-1]
    if not (body.isascii() and body.isdigit()):
        raise SpecError(field, f"{value!r} is not a page size like 2MB")
    return value


def device_id(obj: dict[str, object], field: str) -> str:
    """ "major:minor" of a blockIO device entry."""
    major = required_int(obj, "major", field, *U32)
    minor = required_int(obj, "minor", field, *U32)
    return f"{major}:{minor}"
