"""cgroup files -> the Metrics messages of github.com/containerd/cgroups v1.0.4.

What each field is read from follows that library (cpuacct.go, cpu.go,
memory.go, pids.go; v2/manager.go Stat): the CRI plugin computes a
container's CPU usage from cpu.usage.total (v1) or cpu.usage_usec (v2), and
its working set from memory usage minus total_inactive_file (v1) or
inactive_file (v2). A file the kernel does not have (memsw without swap
accounting, kmem on cgroup v2) leaves its fields at zero, as upstream's
IgnoreNotExist does.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .cgroups import Cgroup

V1_TYPE = "io.containerd.cgroups.v1.Metrics"
V2_TYPE = "io.containerd.cgroups.v2.Metrics"
MAX = 2**64 - 1  # "max" in a v2 limit file: unlimited
_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")  # nanoseconds per USER_HZ tick (cpuacct.stat)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _uint(path: str) -> int:
    text = _read(path)
    if text == "max":
        return MAX
    try:
        return int(text)
    except ValueError:
        return 0


def _flat(path: str) -> dict[str, int]:
    """A "key value" per line file (memory.stat, cpu.stat, memory.events)."""
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _fill(message: Any, values: dict[str, int], names: dict[str, str] | None = None) -> None:
    """Set every field of `message` that `values` has, under the file's name or `names`' alias."""
    for field in message.DESCRIPTOR.fields:
        key = (names or {}).get(field.name, field.name)
        if key in values and field.type == field.TYPE_UINT64:
            setattr(message, field.name, values[key])


# memory.stat spells some names differently from the proto (memory.go parseStats)
_V1_MEMORY_NAMES = {
    "pg_pg_in": "pgpgin", "pg_pg_out": "pgpgout", "pg_fault": "pgfault", "pg_maj_fault": "pgmajfault",
    "hierarchical_swap_limit": "hierarchical_memsw_limit",
    "total_pg_pg_in": "total_pgpgin", "total_pg_pg_out": "total_pgpgout", "total_pg_fault": "total_pgfault",
    "total_pg_maj_fault": "total_pgmajfault",
}  # fmt: skip


def v1(cg: Cgroup) -> tuple[str, bytes]:
    from .pb import cg1

    out = cg1.Metrics()
    if "pids" in cg.paths:
        out.pids.current = _uint(cg.file("pids", "pids.current"))
        limit = _uint(cg.file("pids", "pids.max"))
        out.pids.limit = 0 if limit == MAX else limit  # pids.go: "max" is 0
    if "cpuacct" in cg.paths:
        usage = out.cpu.usage
        usage.total = _uint(cg.file("cpuacct", "cpuacct.usage"))
        usage.per_cpu.extend(int(v) for v in _read(cg.file("cpuacct", "cpuacct.usage_percpu")).split() if v.isdigit())
        ticks = _flat(cg.file("cpuacct", "cpuacct.stat"))
        usage.user, usage.kernel = ticks.get("user", 0) * _NS, ticks.get("system", 0) * _NS
    if "cpu" in cg.paths:
        _fill(out.cpu.throttling, _flat(cg.file("cpu", "cpu.stat")),
              {"periods": "nr_periods", "throttled_periods": "nr_throttled"})  # fmt: skip
    if "memory" in cg.paths:
        _fill(out.memory, _flat(cg.file("memory", "memory.stat")), _V1_MEMORY_NAMES)
        entries = ((out.memory.usage, "memory"), (out.memory.swap, "memory.memsw"),
                   (out.memory.kernel, "memory.kmem"), (out.memory.kernel_tcp, "memory.kmem.tcp"))  # fmt: skip
        for entry, prefix in entries:
            entry.usage = _uint(cg.file("memory", f"{prefix}.usage_in_bytes"))
            entry.limit = _uint(cg.file("memory", f"{prefix}.limit_in_bytes"))
            entry.max = _uint(cg.file("memory", f"{prefix}.max_usage_in_bytes"))
            entry.failcnt = _uint(cg.file("memory", f"{prefix}.failcnt"))
        _fill(out.memory_oom_control, _flat(cg.file("memory", "memory.oom_control")))
    return V1_TYPE, out.SerializeToString()


def v2(cg: Cgroup) -> tuple[str, bytes]:
    from .pb import cg2

    out = cg2.Metrics()
    out.pids.current = _uint(cg.file("", "pids.current"))
    out.pids.limit = _uint(cg.file("", "pids.max"))
    _fill(out.cpu, _flat(cg.file("", "cpu.stat")))
    _fill(out.memory, _flat(cg.file("", "memory.stat")))
    out.memory.usage = _uint(cg.file("", "memory.current"))
    out.memory.usage_limit = _uint(cg.file("", "memory.max"))
    out.memory.swap_usage = _uint(cg.file("", "memory.swap.current"))
    out.memory.swap_limit = _uint(cg.file("", "memory.swap.max"))
    _fill(out.memory_events, _flat(cg.file("", "memory.events")))
    return V2_TYPE, out.SerializeToString()
