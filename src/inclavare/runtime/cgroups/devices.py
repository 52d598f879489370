"""The device allowlist: linux.resources.devices plus the devices every container gets.

A rule is ``(allow, type, major, minor, access)`` with type "a" (all), "b" or
"c", major/minor None for the wildcard ``*`` and access a subset of "rwm".

The effective list, in order, is (runc ``specconv.CreateCgroupConfig``, crun
``write_devices_resources``):

1. an implicit "deny everything" — a container starts from an empty allowlist
   whatever its parent cgroup allows;
2. the spec's rules, in the listed order (config-linux.md: "The runtime MUST
   apply entries in the listed order");
3. :data:`DEFAULT_ALLOWED` (the null/zero/full/random/urandom/tty/console/ptmx
   nodes, pty slaves, tun, and mknod of anything), as runc 1.1 and crun do;
4. an rwm allow rule for each ``linux.devices`` node rune creates.

On cgroup v1 the list is written line by line to devices.deny/devices.allow
(Documentation/admin-guide/cgroup-v1/devices.rst), so ``devices.list`` shows
the spec's allow rules first and in order — runtime-tools'
linux_cgroups_devices checks exactly that (runc reorders them and fails it).
On cgroup v2 :mod:`.ebpf` compiles the same list into a device program.
"""

from __future__ import annotations

from ...errors import SpecError
from .resources import BASE, boolean, items

TYPE_CHECKING = False
if TYPE_CHECKING:
    Rule = tuple[bool, str, "int | None", "int | None", str]

# crun's default_devices (cgroup-resources.c); runc 1.1 AllowedDevices plus 5:1.
DEFAULT_ALLOWED: tuple[Rule, ...] = (
    (True, "c", None, None, "m"), (True, "b", None, None, "m"),
    (True, "c", 1, 3, "rwm"), (True, "c", 1, 8, "rwm"), (True, "c", 1, 7, "rwm"),
    (True, "c", 5, 0, "rwm"), (True, "c", 1, 5, "rwm"), (True, "c", 1, 9, "rwm"),
    (True, "c", 5, 1, "rwm"), (True, "c", 136, None, "rwm"), (True, "c", 5, 2, "rwm"),
    (True, "c", 10, 200, "rwm"),
)  # fmt: skip

DENY_ALL: Rule = (False, "a", None, None, "rwm")
_MAX_ID = 2**31 - 1  # dev_t numbers are 12+20 bits; this also keeps eBPF immediates positive


def spec_rules(resources: dict[str, object]) -> list[Rule]:
    """linux.resources.devices, checked."""
    out = []
    for field, item in items(resources, "devices", BASE):
        allow = boolean(item, "allow", field)
        if allow is None:
            raise SpecError(f"{field}.allow", "is required")
        kind = item.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise SpecError(f"{field}.type", f"must be a, b or c, not {kind!r}")
        access = item.get("access") or "rwm"
        if not isinstance(access, str) or not set(access) <= set("rwm"):
            raise SpecError(f"{field}.access", f"must be letters of rwm, not {access!r}")
        major, minor = _number(item, "major", field), _number(item, "minor", field)
        if kind == "a":
            major = minor = None  # "a" covers every device whatever numbers it names (runc, crun)
        out.append((allow, kind, major, minor, "".join(c for c in "rwm" if c in access)))
    return out


def same_rules(a: list[Rule], b: list[Rule]) -> bool:
    """Whether two spec rule lists give the same allowlist. Leading deny-all
    rules change nothing — :func:`effective` starts with one — so containerd's
    ``[{"allow": false, "access": "rwm"}]`` equals no rules at all."""
    return _without_leading_deny_all(a) == _without_leading_deny_all(b)


def _without_leading_deny_all(rules: list[Rule]) -> list[Rule]:
    i = 0
    while i < len(rules) and rules[i] == DENY_ALL:
        i += 1
    return rules[i:]


def _number(item: dict[str, object], key: str, field: str) -> int | None:
    value = item.get(key)
    if value is None or value == -1:
        return None
    if type(value) is not int or not 0 <= value <= _MAX_ID:
        raise SpecError(f"{field}.{key}", f"must be a device number in [0, {_MAX_ID}] or -1, not {value!r}")
    return value


def effective(spec: list[Rule], nodes: list[tuple[str, int, int]]) -> list[Rule]:
    """The whole ordered list; `nodes` are linux.devices entries (type, major, minor)."""
    extra: list[Rule] = [(True, "b" if t == "b" else "c", major, minor, "rwm") for t, major, minor in nodes]
    return [DENY_ALL, *spec, *DEFAULT_ALLOWED, *extra]


def v1_lines(rule: Rule) -> list[tuple[str, str]]:
    """(file, line) pairs for cgroup v1: [("devices.allow", "c 1:3 rwm")].

    The kernel reads a line starting with "a" as "everything" and ignores the
    rest, so an "a" rule with less than rwm is written for c and b instead.
    """
    allow, kind, major, minor, access = rule
    name = "devices.allow" if allow else "devices.deny"
    if kind == "a" and access == "rwm":
        return [(name, "a")]
    kinds = ("c", "b") if kind == "a" else (kind,)
    return [(name, f"{k} {_star(major)}:{_star(minor)} {access}") for k in kinds]


def _star(n: int | None) -> str:
    return "*" if n is None else str(n)
