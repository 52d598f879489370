"""linux.resources -> cgroup v2 file writes (pure, given a probe of current values).

Conversions are those of crun's crun.1 "CGROUP v2" tables and runc's
libcontainer/cgroups/fs2 (Documentation/admin-guide/cgroup-v2.rst names the
files):

=====================  ======================  ===============================
OCI (v1 semantics)     cgroup v2 file          value
=====================  ======================  ===============================
cpu.shares  x          cpu.weight              1 + ((x - 2) * 9999) / 262142
cpu.quota, cpu.period  cpu.max                 "quota period" ("max": no quota)
cpu.burst              cpu.max.burst           x
cpu.idle               cpu.idle                x
cpu.cpus / cpu.mems    cpuset.cpus / .mems     x
memory.limit           memory.max              x ("max" for -1)
memory.reservation     memory.low              x
memory.swap (mem+swap) memory.swap.max         swap - limit (runc ConvertMemorySwapToCgroupV2Value)
pids.limit             pids.max                x ("max" for -1)
blockIO.weight         io.bfq.weight           x (BFQ), else io.weight 1 + (x - 10) * 9999 / 990
blockIO.weightDevice   io.bfq.weight           "maj:min x" (else io.weight, converted)
blockIO.throttle*      io.max                  "maj:min rbps|wbps|riops|wiops=x"
hugepageLimits         hugetlb.<size>.max      x (and .rsvd.max where it exists)
rdma                   rdma.max                same line as v1
unified                <key>                   written last, verbatim
=====================  ======================  ===============================

Fields with no cgroup v2 counterpart are refused with an error naming them
rather than dropped: realtime cpu budgets, memory.swappiness,
disableOOMKiller, useHierarchy false, blkio leaf weights, net_cls/net_prio.
``memory.kernel``/``kernelTCP`` are ignored, as on v1 (no v2 files).
"""

from __future__ import annotations

from ...errors import SpecError
from .resources import (
    BASE,
    I64,
    OPTIONAL,
    U64,
    boolean,
    cpu_list,
    device_id,
    integer,
    items,
    page_size,
    required_int,
    section,
)
from .v1_writes import THROTTLE, rdma

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .resources import Probe, Write

# Files rune itself manages: `unified` may not write them.
_RESERVED = frozenset(("cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.freeze", "cgroup.kill"))


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000]."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000]."""
    return 1 + ((weight - 10) * 9999) // 990


def writes(res: dict[str, object], probe: Probe) -> list[Write]:
    out: list[Write] = []
    cpu = section(res, "cpu", BASE)
    for key in ("cpus", "mems"):
        value = cpu_list(cpu, key, f"{BASE}.cpu")
        if value is not None:
            out.append((f"{BASE}.cpu.{key}", "", f"cpuset.{key}", value, 0))
    _memory(section(res, "memory", BASE), out)
    _cpu(cpu, probe, out)
    pids = integer(section(res, "pids", BASE), "limit", f"{BASE}.pids", *I64, zero_unset=True)
    if pids is not None:
        out.append((f"{BASE}.pids.limit", "", "pids.max", str(pids) if pids > 0 else "max", 0))
    _io(section(res, "blockIO", BASE), probe, out)
    for field, hp in items(res, "hugepageLimits", BASE):
        size = page_size(hp.get("pageSize"), f"{field}.pageSize")
        limit = str(required_int(hp, "limit", field, *U64))
        if probe("", f"hugetlb.{size}.max") is None:
            raise SpecError(
                f"{field}.pageSize", f"no hugetlb.{size}.max here (no {size} huge pages, or hugetlb not enabled)"
            )
        out.append((f"{field}.limit", "", f"hugetlb.{size}.max", limit, 0))
        if probe("", f"hugetlb.{size}.rsvd.max") is not None:
            out.append((f"{field}.limit", "", f"hugetlb.{size}.rsvd.max", limit, 0))
    net = section(res, "network", BASE)
    if net.get("classID") is not None or net.get("priorities"):
        raise SpecError(f"{BASE}.network", "cgroup v2 has no net_cls/net_prio controllers (use eBPF or tc)")
    out.extend(rdma(res, ""))
    unified = section(res, "unified", BASE)
    for key, text in unified.items():
        field = f"{BASE}.unified.{key}"
        if not key or "/" in key or key in (".", "..") or key in _RESERVED:
            raise SpecError(field, "not a cgroup interface file rune lets a config write")
        if not isinstance(text, str):
            raise SpecError(field, "must be a string")
        out.append((field, "", key, text, 0))
    return out


def _memory(mem: dict[str, object], out: list[Write]) -> None:
    f = f"{BASE}.memory"
    limit = integer(mem, "limit", f, -1, I64[1], zero_unset=True)
    swap = integer(mem, "swap", f, -1, I64[1], zero_unset=True)
    if limit is not None:
        out.append((f"{f}.limit", "", "memory.max", "max" if limit == -1 else str(limit), 0))
    if limit == -1 and swap is None:
        swap = -1  # unlimited memory: unlimited swap too, as on v1 (runc)
    if swap is not None:
        if swap == -1:
            value = "max"
        elif limit is None or limit == -1:
            raise SpecError(f"{f}.swap", "cannot limit swap without a memory limit on cgroup v2")
        elif swap < limit:
            raise SpecError(f"{f}.swap", f"memory+swap limit {swap} is below the memory limit {limit}")
        else:
            value = str(swap - limit)  # v1's swap counts memory+swap; v2's memory.swap.max only swap
        # A kernel without swap accounting has no memory.swap.max: only
        # "no limit" or "no swap" may then be skipped (runc does the same).
        out.append((f"{f}.swap", "", "memory.swap.max", value, 0 if value not in ("max", "0") else OPTIONAL))
    reservation = integer(mem, "reservation", f, -1, I64[1], zero_unset=True)
    if reservation is not None:
        out.append((f"{f}.reservation", "", "memory.low", "max" if reservation == -1 else str(reservation), 0))
    integer(mem, "kernel", f, -1, I64[1])
    integer(mem, "kernelTCP", f, -1, I64[1])
    if integer(mem, "swappiness", f, 0, 100) is not None:
        raise SpecError(f"{f}.swappiness", "cgroup v2 has no per-cgroup swappiness")
    if boolean(mem, "disableOOMKiller", f):
        raise SpecError(f"{f}.disableOOMKiller", "cgroup v2 cannot disable the OOM killer for a cgroup")
    if boolean(mem, "useHierarchy", f) is False:
        raise SpecError(f"{f}.useHierarchy", "cgroup v2 accounting is always hierarchical")


def _cpu(cpu: dict[str, object], probe: Probe, out: list[Write]) -> None:
    f = f"{BASE}.cpu"
    shares = integer(cpu, "shares", f, 0, U64[1], zero_unset=True)
    if shares is not None:
        if not 2 <= shares <= 262144:
            raise SpecError(f"{f}.shares", f"must be in [2, 262144], not {shares}")
        out.append((f"{f}.shares", "", "cpu.weight", str(shares_to_weight(shares)), 0))
    quota = integer(cpu, "quota", f, -1, I64[1], zero_unset=True)
    period = integer(cpu, "period", f, *U64, zero_unset=True)
    if quota is not None or period is not None:
        # "max" alone keeps the period (cpu_max_write parses "$MAX [$PERIOD]");
        # a new period alone keeps the current quota.
        text = "max" if quota == -1 else str(quota) if quota is not None else _current_quota(probe)
        field = f"{f}.quota" if quota is not None else f"{f}.period"
        out.append((field, "", "cpu.max", text if period is None else f"{text} {period}", 0))
    burst = integer(cpu, "burst", f, *U64)
    if burst is not None:
        out.append((f"{f}.burst", "", "cpu.max.burst", str(burst), 0))
    idle = integer(cpu, "idle", f, 0, 1)
    if idle is not None:
        out.append((f"{f}.idle", "", "cpu.idle", str(idle), 0))
    for key in ("realtimeRuntime", "realtimePeriod"):
        if integer(cpu, key, f, -1, I64[1], zero_unset=True) is not None:
            raise SpecError(f"{f}.{key}", "cgroup v2 has no realtime CPU budget (cpu.rt_*)")


def _current_quota(probe: Probe) -> str:
    current = probe("", "cpu.max")
    return current.split()[0] if current else "max"


def _io(blk: dict[str, object], probe: Probe, out: list[Write]) -> None:
    f = f"{BASE}.blockIO"
    bfq = probe("", "io.bfq.weight") is not None
    weight = integer(blk, "weight", f, 0, 1000, zero_unset=True)
    if weight is not None:
        if weight < 10:
            raise SpecError(f"{f}.weight", f"must be in [10, 1000], not {weight}")
        out.append((f"{f}.weight", "", "io.bfq.weight" if bfq else "io.weight",
                    str(weight) if bfq else f"default {blkio_to_io_weight(weight)}", 0))  # fmt: skip
    if integer(blk, "leafWeight", f, 0, 1000, zero_unset=True) is not None:
        raise SpecError(f"{f}.leafWeight", "cgroup v2 has no leaf weights")
    for field, dev in items(blk, "weightDevice", f):
        dev_id = device_id(dev, field)
        if integer(dev, "leafWeight", field, 10, 1000) is not None:
            raise SpecError(f"{field}.leafWeight", "cgroup v2 has no leaf weights")
        value = integer(dev, "weight", field, 10, 1000)
        if value is not None:
            out.append((f"{field}.weight", "", "io.bfq.weight" if bfq else "io.weight",
                        f"{dev_id} {value if bfq else blkio_to_io_weight(value)}", 0))  # fmt: skip
    keys = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
            "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}  # fmt: skip
    for key, _v1_name in THROTTLE:
        for field, dev in items(blk, key, f):
            rate = required_int(dev, "rate", field, *U64)
            out.append((f"{field}.rate", "", "io.max", f"{device_id(dev, field)} {keys[key]}={rate}", 0))
