"""linux.resources -> cgroup v1 file writes (pure, given a probe of current values).

One function per controller, in runc's apply order (cpuset, memory, cpu,
pids, blkio, hugetlb, net_cls, net_prio, rdma); device rules are
:mod:`.devices`' business. References are Documentation/admin-guide/cgroup-v1/
<controller>.rst and runc libcontainer/cgroups/fs/<controller>.go.

Kept out on purpose:

* ``memory.kernel``: memory.kmem.limit_in_bytes still exists on Linux 6.x but
  writing it has no effect since 5.16 (the kernel says so in dmesg); runc 1.1
  ignores the field and so does rune.
* ``memory.kernelTCP`` is written when memory.kmem.tcp.limit_in_bytes exists
  (it still limits TCP buffers on 6.x, as crun sets it) and ignored when the
  kernel dropped the file.
"""

from __future__ import annotations

from ...errors import SpecError
from .resources import (
    BASE,
    I64,
    RETRY,
    U32,
    U64,
    boolean,
    cpu_list,
    device_id,
    integer,
    items,
    page_size,
    required_int,
    section,
    word,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .resources import Probe, Write

MEMSW = "memory.memsw.limit_in_bytes"


def writes(res: dict[str, object], probe: Probe) -> list[Write]:
    out: list[Write] = []
    cpu = section(res, "cpu", BASE)
    for key in ("cpus", "mems"):
        value = cpu_list(cpu, key, f"{BASE}.cpu")
        if value is not None:
            out.append((f"{BASE}.cpu.{key}", "cpuset", f"cpuset.{key}", value, 0))
    _memory(section(res, "memory", BASE), probe, out)
    _cpu(cpu, out)
    pids = integer(section(res, "pids", BASE), "limit", f"{BASE}.pids", *I64, zero_unset=True)
    if pids is not None:
        out.append((f"{BASE}.pids.limit", "pids", "pids.max", str(pids) if pids > 0 else "max", 0))
    _blkio(section(res, "blockIO", BASE), probe, out)
    for field, hp in items(res, "hugepageLimits", BASE):
        size = page_size(hp.get("pageSize"), f"{field}.pageSize")
        limit = str(required_int(hp, "limit", field, *U64))
        name = f"hugetlb.{size}.limit_in_bytes"
        if probe("hugetlb", name) is None:
            if probe("hugetlb", "cgroup.procs") is None:
                raise SpecError(field, "the hugetlb cgroup controller is not mounted on this host")
            raise SpecError(f"{field}.pageSize", f"this host has no {size} huge pages (no {name})")
        out.append((f"{field}.limit", "hugetlb", name, limit, 0))
        if probe("hugetlb", f"hugetlb.{size}.rsvd.limit_in_bytes") is not None:  # reservations too (Linux 5.7+)
            out.append((f"{field}.limit", "hugetlb", f"hugetlb.{size}.rsvd.limit_in_bytes", limit, 0))
    _network(section(res, "network", BASE), out)
    out.extend(rdma(res, "rdma"))
    if res.get("unified"):
        raise SpecError(f"{BASE}.unified", "needs cgroup v2; this host runs cgroup v1")
    return out


def _memory(mem: dict[str, object], probe: Probe, out: list[Write]) -> None:
    f = f"{BASE}.memory"
    limit = integer(mem, "limit", f, -1, I64[1], zero_unset=True)
    swap = integer(mem, "swap", f, -1, I64[1], zero_unset=True)
    has_memsw = probe("memory", MEMSW) is not None
    if limit == -1 and swap is None and has_memsw:
        swap = -1  # unlimited memory means unlimited memory+swap too (runc setMemoryAndSwap)
    if swap is not None and not has_memsw:
        raise SpecError(f"{f}.swap", f"this kernel does not account swap (no {MEMSW}; boot with swapaccount=1)")
    if limit is not None and swap is not None and -1 not in (limit, swap) and swap < limit:
        raise SpecError(f"{f}.swap", f"memory+swap limit {swap} is below the memory limit {limit}")
    lw = (f"{f}.limit", "memory", "memory.limit_in_bytes", str(limit), 0)
    sw = (f"{f}.swap", "memory", MEMSW, str(swap), 0)
    # The kernel keeps memory.limit <= memory.memsw.limit at every step
    # (cgroup-v1/memory.rst §2.4): raise memsw first when it grows past the
    # current limit, else lower the limit first (runc setMemoryAndSwap).
    current = _int(probe("memory", "memory.limit_in_bytes"))
    if limit is not None and swap is not None:
        out.extend([sw, lw] if swap == -1 or (current is not None and current < swap) else [lw, sw])
    elif limit is not None:
        cur_swap = _int(probe("memory", MEMSW))
        if limit != -1 and cur_swap is not None and limit > cur_swap:
            raise SpecError(f"{f}.limit", f"{limit} is above the current memory+swap limit {cur_swap}: set swap too")
        out.append(lw)
    elif swap is not None:
        out.append(sw)
    for key, name, lo in (
        ("reservation", "memory.soft_limit_in_bytes", -1),
        ("kernelTCP", "memory.kmem.tcp.limit_in_bytes", -1),
    ):
        value = integer(mem, key, f, lo, I64[1], zero_unset=True)
        if value is not None and (key != "kernelTCP" or probe("memory", name) is not None):
            out.append((f"{f}.{key}", "memory", name, str(value), 0))
    integer(mem, "kernel", f, -1, I64[1])  # checked, then ignored (see module docstring)
    swappiness = integer(mem, "swappiness", f, 0, 100)
    if swappiness is not None:
        out.append((f"{f}.swappiness", "memory", "memory.swappiness", str(swappiness), 0))
    for key, name in (("disableOOMKiller", "memory.oom_control"), ("useHierarchy", "memory.use_hierarchy")):
        flag = boolean(mem, key, f)
        if flag is not None:
            out.append((f"{f}.{key}", "memory", name, "1" if flag else "0", 0))


def _int(text: str | None) -> int | None:
    return int(text) if text and text.lstrip("-").isdigit() else None


def _cpu(cpu: dict[str, object], out: list[Write]) -> None:
    f = f"{BASE}.cpu"
    shares = integer(cpu, "shares", f, 0, U64[1], zero_unset=True)
    if shares is not None:
        if not 2 <= shares <= 262144:  # the kernel would clamp silently (runc reads back and fails)
            raise SpecError(f"{f}.shares", f"must be in [2, 262144], not {shares}")
        out.append((f"{f}.shares", "cpu", "cpu.shares", str(shares), 0))
    # Period and quota (and the realtime pair) constrain each other: a write
    # the kernel refuses with EINVAL is retried after its partner (RETRY).
    pairs = (("period", "cpu.cfs_period_us", "quota", "cpu.cfs_quota_us"),
             ("realtimePeriod", "cpu.rt_period_us", "realtimeRuntime", "cpu.rt_runtime_us"))  # fmt: skip
    for first, first_file, second, second_file in pairs:
        a = integer(cpu, first, f, *U64, zero_unset=True)
        b = integer(cpu, second, f, -1, I64[1], zero_unset=True)
        if a is not None:
            out.append((f"{f}.{first}", "cpu", first_file, str(a), RETRY if b is not None else 0))
        if b is not None:
            out.append((f"{f}.{second}", "cpu", second_file, str(b), 0))
    burst = integer(cpu, "burst", f, *U64)
    if burst is not None:
        out.append((f"{f}.burst", "cpu", "cpu.cfs_burst_us", str(burst), 0))
    idle = integer(cpu, "idle", f, 0, 1)
    if idle is not None:
        out.append((f"{f}.idle", "cpu", "cpu.idle", str(idle), 0))


def _blkio(blk: dict[str, object], probe: Probe, out: list[Write]) -> None:
    """CFQ's blkio.weight files went with CFQ (Linux 5.0); BFQ names them
    blkio.bfq.weight (runc falls back to those). Neither: a clear error."""
    f = f"{BASE}.blockIO"
    bfq = probe("blkio", "blkio.weight") is None and probe("blkio", "blkio.bfq.weight") is not None
    prefix = "blkio.bfq." if bfq else "blkio."
    # Leaf weights were CFQ's alone: BFQ has none, so they always name CFQ's file.
    for key, name in (("weight", prefix + "weight"), ("leafWeight", "blkio.leaf_weight")):
        value = integer(blk, key, f, 0, 1000, zero_unset=True)
        if value is not None:
            if value < 10:
                raise SpecError(f"{f}.{key}", f"must be in [10, 1000], not {value}")
            out.append((f"{f}.{key}", "blkio", name, str(value), 0))
    for field, dev in items(blk, "weightDevice", f):
        dev_id = device_id(dev, field)
        for key, name in (("weight", prefix + "weight_device"), ("leafWeight", "blkio.leaf_weight_device")):
            value = integer(dev, key, field, 10, 1000)
            if value is not None:
                out.append((f"{field}.{key}", "blkio", name, f"{dev_id} {value}", 0))
    for key, name in THROTTLE:
        for field, dev in items(blk, key, f):
            rate = required_int(dev, "rate", field, *U64)
            out.append(
                (f"{field}.rate", "blkio", f"blkio.throttle.{name}_device", f"{device_id(dev, field)} {rate}", 0)
            )


THROTTLE = (("throttleReadBpsDevice", "read_bps"), ("throttleWriteBpsDevice", "write_bps"),
            ("throttleReadIOPSDevice", "read_iops"), ("throttleWriteIOPSDevice", "write_iops"))  # fmt: skip


def _network(net: dict[str, object], out: list[Write]) -> None:
    f = f"{BASE}.network"
    class_id = integer(net, "classID", f, *U32)
    if class_id is not None:
        out.append((f"{f}.classID", "net_cls", "net_cls.classid", str(class_id), 0))
    for field, prio in items(net, "priorities", f):
        name = word(prio, "name", field, required=True)
        value = required_int(prio, "priority", field, *U32)
        out.append((f"{field}.priority", "net_prio", "net_prio.ifpriomap", f"{name} {value}", 0))


def rdma(res: dict[str, object], ctl: str) -> list[Write]:
    """rdma.max lines ("mlx4_0 hca_handle=2 hca_object=2000"), same on v1 and v2
    (cgroup-v1/rdma.rst, cgroup-v2.rst "RDMA")."""
    f = f"{BASE}.rdma"
    out: list[Write] = []
    for dev, limits in section(res, "rdma", BASE).items():
        if not isinstance(limits, dict) or not dev or len(dev.split()) != 1:
            raise SpecError(f"{f}.{dev}", "must be an object keyed by an RDMA device name")
        fields = [f"{name}={value}" for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object"))
                  if (value := integer(limits, key, f"{f}.{dev}", *U32)) is not None]  # fmt: skip
        if fields:
            out.append((f"{f}.{dev}", ctl, "rdma.max", f"{dev} {' '.join(fields)}", 0))
    return out
