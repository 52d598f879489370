"""linux.resources -> cgroup file writes, for v1 and v2.

Pure functions from the spec's JSON to ``(controller, file, value)`` (v1) or
``(file, value)`` (v2) lists, so the translation is unit-tested without a
cgroup filesystem. Ref: config-linux.md "Control groups" and runc's
libcontainer/cgroups/fs{,2}; v2 conversions follow
https://github.com/opencontainers/runc/blob/main/docs/cgroup-v2.md
(OCI to cgroup v2 value conversion, also used by crun).
"""

from __future__ import annotations

from ...errors import SpecError

Res = dict  # the linux.resources JSON object

# Devices every container may use whatever the spec says (runc's AllowedDevices):
# mknod of any char/block device, the default /dev nodes, the pty master and slaves.
DEFAULT_ALLOWED = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"),
    ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"), ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"),
    ("c", 136, None, "rwm"),
)  # fmt: skip


def _num(v: object) -> str:
    return "*" if v is None or v == -1 else str(v)


def device_rule(rule: dict) -> tuple[bool, str]:  # type: ignore[type-arg]
    """(allow?, "type major:minor access") in devices.allow/deny syntax."""
    kind = rule.get("type") or "a"
    access = rule.get("access") or "rwm"
    text = "a" if kind == "a" else f"{kind} {_num(rule.get('major'))}:{_num(rule.get('minor'))} {access}"
    return bool(rule.get("allow")), text


def device_rules(res: Res, extra: list[tuple[str, int, int]]) -> list[tuple[bool, str]]:
    """Spec rules in order, then allow rules for the default devices and for
    each linux.devices entry (type, major, minor)."""
    rules = [device_rule(r) for r in res.get("devices") or []]
    for kind, major, minor, access in DEFAULT_ALLOWED:
        rules.append((True, f"{kind} {_num(major)}:{_num(minor)} {access}"))
    for kind, major, minor in extra:
        rules.append((True, f"{'c' if kind == 'u' else kind} {major}:{minor} rwm"))
    return rules


def v1_writes(res: Res) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    _v1_memory(res.get("memory") or {}, out)
    _v1_cpu(res.get("cpu") or {}, out)
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        out.append(("pids", "pids.max", "max" if pids["limit"] <= 0 else str(pids["limit"])))
    _v1_blkio(res.get("blockIO") or {}, out)
    for hp in res.get("hugepageLimits") or []:
        out.append(("hugetlb", f"hugetlb.{hp['pageSize']}.limit_in_bytes", str(hp["limit"])))
    net = res.get("network") or {}
    if net.get("classID") is not None:
        out.append(("net_cls", "net_cls.classid", str(net["classID"])))
    for prio in net.get("priorities") or []:
        out.append(("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}"))
    for dev, limits in (res.get("rdma") or {}).items():
        fields = " ".join(f"{k}={v}" for k, v in (("hca_handle", limits.get("hcaHandles")),
                                                  ("hca_object", limits.get("hcaObjects"))) if v is not None)  # fmt: skip
        out.append(("rdma", "rdma.max", f"{dev} {fields}"))
    if res.get("unified"):
        raise SpecError("linux.resources.unified", "needs cgroup v2; this host runs cgroup v1")
    return out


def _v1_memory(mem: dict, out: list[tuple[str, str, str]]) -> None:  # type: ignore[type-arg]
    if mem.get("limit") is not None:
        out.append(("memory", "memory.limit_in_bytes", str(mem["limit"])))
    if mem.get("swap") is not None:
        out.append(("memory", "memory.memsw.limit_in_bytes", str(mem["swap"])))
    if mem.get("reservation") is not None:
        out.append(("memory", "memory.soft_limit_in_bytes", str(mem["reservation"])))
    if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
        out.append(("memory", "memory.swappiness", str(mem["swappiness"])))
    if mem.get("disableOOMKiller"):
        out.append(("memory", "memory.oom_control", "1"))
    if mem.get("useHierarchy") is not None:
        out.append(("memory", "memory.use_hierarchy", "1" if mem["useHierarchy"] else "0"))
    # kernel and kernelTCP are deprecated in the spec and gone from Linux 5.x+
    # (no memory.kmem.* files): ignored, as runc 1.1 does.


def _v1_cpu(cpu: dict, out: list[tuple[str, str, str]]) -> None:  # type: ignore[type-arg]
    for key, name in (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"), ("quota", "cpu.cfs_quota_us"),
                      ("burst", "cpu.cfs_burst_us"), ("realtimePeriod", "cpu.rt_period_us"),
                      ("realtimeRuntime", "cpu.rt_runtime_us"), ("idle", "cpu.idle")):  # fmt: skip
        if cpu.get(key) is not None:
            out.append(("cpu", name, str(cpu[key])))
    if cpu.get("cpus"):
        out.append(("cpuset", "cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        out.append(("cpuset", "cpuset.mems", cpu["mems"]))


def _v1_blkio(blk: dict, out: list[tuple[str, str, str]]) -> None:  # type: ignore[type-arg]
    if blk.get("weight") is not None:
        out.append(("blkio", "blkio.weight", str(blk["weight"])))
    if blk.get("leafWeight") is not None:
        out.append(("blkio", "blkio.leaf_weight", str(blk["leafWeight"])))
    for dev in blk.get("weightDevice") or []:
        if dev.get("weight") is not None:
            out.append(("blkio", "blkio.weight_device", f"{dev['major']}:{dev['minor']} {dev['weight']}"))
        if dev.get("leafWeight") is not None:
            out.append(("blkio", "blkio.leaf_weight_device", f"{dev['major']}:{dev['minor']} {dev['leafWeight']}"))
    for key, name in (("throttleReadBpsDevice", "read_bps_device"), ("throttleWriteBpsDevice", "write_bps_device"),
                      ("throttleReadIOPSDevice", "read_iops_device"),
                      ("throttleWriteIOPSDevice", "write_iops_device")):  # fmt: skip
        for dev in blk.get(key) or []:
            out.append(("blkio", f"blkio.throttle.{name}", f"{dev['major']}:{dev['minor']} {dev['rate']}"))


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000] (runc/crun conversion)."""
    return 1 + ((shares - 2) * 9999) // 262142


def v2_writes(res: Res) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    mem = res.get("memory") or {}
    limit = mem.get("limit")
    if limit is not None:
        out.append(("memory.max", "max" if limit == -1 else str(limit)))
    if mem.get("reservation") is not None:
        out.append(("memory.low", str(mem["reservation"])))
    if mem.get("swap") is not None:
        swap = mem["swap"]
        # OCI swap is memory+swap; cgroup v2 limits swap alone.
        value = "max" if swap == -1 else str(swap - limit) if limit not in (None, -1) else str(swap)
        out.append(("memory.swap.max", value))
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        out.append(("cpu.weight", str(shares_to_weight(cpu["shares"]))))
    if cpu.get("quota") is not None or cpu.get("period") is not None:
        quota = cpu.get("quota")
        out.append(("cpu.max", f"{'max' if quota in (None, -1) else quota} {cpu.get('period') or 100000}"))
    if cpu.get("burst") is not None:
        out.append(("cpu.max.burst", str(cpu["burst"])))
    if cpu.get("idle") is not None:
        out.append(("cpu.idle", str(cpu["idle"])))
    if cpu.get("cpus"):
        out.append(("cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        out.append(("cpuset.mems", cpu["mems"]))
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        out.append(("pids.max", "max" if pids["limit"] <= 0 else str(pids["limit"])))
    _v2_io(res.get("blockIO") or {}, out)
    for hp in res.get("hugepageLimits") or []:
        out.append((f"hugetlb.{hp['pageSize']}.max", str(hp["limit"])))
    for name, value in (res.get("unified") or {}).items():
        if "/" in name or name.startswith("."):
            raise SpecError(f"linux.resources.unified.{name}", "not a cgroup file name")
        out.append((name, value))
    return out


def _v2_io(blk: dict, out: list[tuple[str, str]]) -> None:  # type: ignore[type-arg]
    if blk.get("weight") is not None:
        # blkio.weight [10, 1000] -> io.weight [1, 10000]
        out.append(("io.weight", f"default {1 + (blk['weight'] - 10) * 9999 // 990}"))
    for dev in blk.get("weightDevice") or []:
        if dev.get("weight") is not None:
            out.append(("io.weight", f"{dev['major']}:{dev['minor']} {1 + (dev['weight'] - 10) * 9999 // 990}"))
    for key, field in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                       ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):  # fmt: skip
        for dev in blk.get(key) or []:
            out.append(("io.max", f"{dev['major']}:{dev['minor']} {field}={dev['rate']}"))
