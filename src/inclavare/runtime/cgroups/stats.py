"""Resource usage of a container's cgroup, shaped like runc's ``events --stats`` data.

The dict mirrors runc's ``types.Stats`` (runc/types/events.go) key for key,
with Go's ``omitempty`` applied (zero numbers and empty lists dropped where
runc drops them), so tools that parse runc's JSON parse rune's:
``cpu.usage.{total,percpu,percpu_kernel,percpu_user,kernel,user}`` (ns),
``cpu.throttling``, ``cpuset``, ``memory.{cache,usage,swap,kernel,kernelTCP,raw}``,
``pids``, ``blkio.*Recursive`` entries, ``hugetlb.<size>``.

Sources: cgroup-v1 cpuacct.rst, memory.rst §5.2, blkio-controller.rst,
hugetlb.rst, pids.rst; cgroup-v2.rst cpu.stat, memory.stat/events, io.stat.
v2 reports swap as memory+swap, as runc does, so both drivers mean the same.
"""

from __future__ import annotations

import os

from . import fs

_MAX = 2**64 - 1  # "max" (no limit) reads as the largest u64, as runc reports it


def _entry(limit: int | None, usage: int | None, peak: int | None, failcnt: int | None) -> dict[str, int]:
    """runc MemoryEntry: limit and failcnt always, usage/max omitempty."""
    out = {"limit": limit or 0}
    if usage:
        out["usage"] = usage
    if peak:
        out["max"] = peak
    out["failcnt"] = failcnt or 0
    return out


def _nonzero(d: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in d.items() if v}


def _limit(directory: str, name: str) -> int | None:
    text = fs.read(directory, name)
    return _MAX if text == "max" else fs.read_int(directory, name)


def _cpus(text: str | None) -> list[int]:
    """cpuset list "0-2,4" -> [0, 1, 2, 4]."""
    out: list[int] = []
    for part in (text or "").split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit():
            out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def v1_stats(paths: dict[str, str]) -> dict[str, object]:
    def at(ctl: str) -> str:
        return paths.get(ctl, "/nonexistent")

    acct, tick_ns = at("cpuacct"), 10**9 // os.sysconf("SC_CLK_TCK")
    times = fs.read_keyed(acct, "cpuacct.stat")  # USER_HZ ticks
    usage = _nonzero(
        {
            "total": fs.read_int(acct, "cpuacct.usage"),
            "percpu": [int(x) for x in (fs.read(acct, "cpuacct.usage_percpu") or "").split()],
            "percpu_kernel": [int(x) for x in (fs.read(acct, "cpuacct.usage_percpu_sys") or "").split()],
            "percpu_user": [int(x) for x in (fs.read(acct, "cpuacct.usage_percpu_user") or "").split()],
        }
    )
    usage.update(kernel=times.get("system", 0) * tick_ns, user=times.get("user", 0) * tick_ns)
    thr = fs.read_keyed(at("cpu"), "cpu.stat")
    throttling = _nonzero({"periods": thr.get("nr_periods"), "throttledPeriods": thr.get("nr_throttled"),
                           "throttledTime": thr.get("throttled_time")})  # fmt: skip
    mem = at("memory")

    def entry(prefix: str) -> dict[str, int]:
        return _entry(*(fs.read_int(mem, f"{prefix}.{n}") for n in ("limit_in_bytes", "usage_in_bytes",
                                                                   "max_usage_in_bytes", "failcnt")))  # fmt: skip

    raw = fs.read_keyed(mem, "memory.stat")
    memory = _nonzero({"cache": raw.get("cache")})
    memory.update(usage=entry("memory"), swap=entry("memory.memsw"), kernel=entry("memory.kmem"),
                  kernelTCP=entry("memory.kmem.tcp"))  # fmt: skip
    memory.update(_nonzero({"raw": raw}))
    pids = _nonzero({"current": fs.read_int(at("pids"), "pids.current"), "limit": fs.read_int(at("pids"), "pids.max")})
    blkio = _nonzero({"ioServiceBytesRecursive": _blkio(at("blkio"), "io_service_bytes_recursive"),
                      "ioServicedRecursive": _blkio(at("blkio"), "io_serviced_recursive")})  # fmt: skip
    hugetlb: dict[str, dict[str, object]] = {}
    for name in _listdir(at("hugetlb")):
        if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes") and ".rsvd." not in name:
            size = name.split(".")[1]
            hugetlb[size] = _nonzero(
                {
                    "usage": fs.read_int(at("hugetlb"), name),
                    "max": fs.read_int(at("hugetlb"), f"hugetlb.{size}.max_usage_in_bytes"),
                }
            )
            hugetlb[size]["failcnt"] = fs.read_int(at("hugetlb"), f"hugetlb.{size}.failcnt") or 0
    cpuset: dict[str, object] = {
        "cpus": _cpus(fs.read(at("cpuset"), "cpuset.cpus")),
        "mems": _cpus(fs.read(at("cpuset"), "cpuset.mems")),
    }
    return _stats(usage, throttling, cpuset, memory, pids, blkio, hugetlb)


def _blkio(directory: str, name: str) -> list[dict[str, object]]:
    """blkio "<maj>:<min> <Op> <value>" lines; CFQ's files first, then BFQ's,
    then the throttle layer's (what runc's fs/blkio.go falls back through)."""
    for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
        lines = (fs.read(directory, prefix + name) or "").splitlines()
        out = []
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, _, minor = parts[0].partition(":")
                out.append(_nonzero({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])}))
        if out:
            return out
    return []


def _listdir(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


def _stats(usage: dict[str, object], throttling: dict[str, object], cpuset: dict[str, object],
           memory: dict[str, object], pids: dict[str, object], blkio: dict[str, object],
           hugetlb: dict[str, dict[str, object]]) -> dict[str, object]:  # fmt: skip
    return {"cpu": {"usage": usage, "throttling": throttling}, "cpuset": _nonzero(cpuset), "memory": memory,
            "pids": pids, "blkio": blkio, "hugetlb": hugetlb, "intel_rdt": {}, "network_interfaces": None}  # fmt: skip


def v2_stats(path: str) -> dict[str, object]:
    cpu = fs.read_keyed(path, "cpu.stat")  # microseconds
    usage: dict[str, object] = _nonzero({"total": cpu.get("usage_usec", 0) * 1000})
    usage.update(kernel=cpu.get("system_usec", 0) * 1000, user=cpu.get("user_usec", 0) * 1000)
    throttling = _nonzero({"periods": cpu.get("nr_periods"), "throttledPeriods": cpu.get("nr_throttled"),
                           "throttledTime": cpu.get("throttled_usec", 0) * 1000})  # fmt: skip
    raw = fs.read_keyed(path, "memory.stat")
    events = fs.read_keyed(path, "memory.events")
    current, limit = fs.read_int(path, "memory.current"), _limit(path, "memory.max")
    swap_cur, swap_max = fs.read_int(path, "memory.swap.current"), _limit(path, "memory.swap.max")
    memory = _nonzero({"cache": raw.get("file")})
    memory["usage"] = _entry(limit, current, fs.read_int(path, "memory.peak"), events.get("max"))
    swap_limit = _MAX if _MAX in (limit, swap_max) else (limit or 0) + (swap_max or 0)
    memory["swap"] = _entry(swap_limit, (swap_cur or 0) + (current or 0), None,
                            fs.read_keyed(path, "memory.swap.events").get("fail"))  # fmt: skip
    memory["kernel"] = _entry(0, raw.get("kernel"), None, 0)
    memory["kernelTCP"] = _entry(0, raw.get("sock"), None, 0)
    memory.update(_nonzero({"raw": raw}))
    pids_max = fs.read_int(path, "pids.max")
    pids = _nonzero({"current": fs.read_int(path, "pids.current"), "limit": pids_max})
    blkio = _nonzero({"ioServiceBytesRecursive": _io_stat(path, ("rbytes", "Read"), ("wbytes", "Write")),
                      "ioServicedRecursive": _io_stat(path, ("rios", "Read"), ("wios", "Write"))})  # fmt: skip
    hugetlb: dict[str, dict[str, object]] = {}
    for name in _listdir(path):
        if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
            size = name.split(".")[1]
            hugetlb[size] = _nonzero({"usage": fs.read_int(path, name)})
            hugetlb[size]["failcnt"] = fs.read_keyed(path, f"hugetlb.{size}.events").get("max", 0)
    cpuset: dict[str, object] = {
        "cpus": _cpus(fs.read(path, "cpuset.cpus.effective")),
        "mems": _cpus(fs.read(path, "cpuset.mems.effective")),
    }
    return _stats(usage, throttling, cpuset, memory, pids, blkio, hugetlb)


def _io_stat(path: str, *keys: tuple[str, str]) -> list[dict[str, object]]:
    """io.stat "8:0 rbytes=1 wbytes=2 rios=3 ..." -> runc BlkioEntry list."""
    out = []
    for line in (fs.read(path, "io.stat") or "").splitlines():
        dev, *pairs = line.split()
        values = dict(p.split("=", 1) for p in pairs if "=" in p)
        major, _, minor = dev.partition(":")
        for key, op in keys:
            if key in values:
                out.append(_nonzero({"major": int(major), "minor": int(minor), "op": op, "value": int(values[key])}))
    return out
