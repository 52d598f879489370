"""linux.resources -> cgroup v1/v2 file writes, against probes of current values (no root)."""

from __future__ import annotations

import pytest

from inclavare.errors import SpecError
from inclavare.runtime.cgroups import v1_writes, v2_writes
from inclavare.runtime.cgroups.resources import OPTIONAL, RETRY

# What a fresh v1 cgroup on this project's kernel (6.x) shows: no blkio weight
# files, memsw and kmem.tcp present, 2MB and 1GB huge pages.
V1_FILES = {
    ("memory", "memory.limit_in_bytes"): "9223372036854771712",
    ("memory", "memory.memsw.limit_in_bytes"): "9223372036854771712",
    ("memory", "memory.kmem.tcp.limit_in_bytes"): "9223372036854771712",
    ("hugetlb", "cgroup.procs"): "",
    ("hugetlb", "hugetlb.2MB.limit_in_bytes"): "9223372036854771712",
    ("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes"): "9223372036854771712",
    ("hugetlb", "hugetlb.1GB.limit_in_bytes"): "9223372036854771712",
    ("blkio", "blkio.throttle.read_bps_device"): "",
}
V2_FILES = {"cpu.max": "max 100000", "memory.max": "max", "memory.swap.max": "max", "hugetlb.2MB.max": "max"}


def v1(res, files=V1_FILES):
    return [
        (field, ctl, name, value)
        for field, ctl, name, value, _flags in v1_writes.writes(res, lambda c, n: files.get((c, n)))
    ]


def v2(res, files=V2_FILES):
    return [
        (field, name, value) for field, _ctl, name, value, _flags in v2_writes.writes(res, lambda _c, n: files.get(n))
    ]


def err(fn, res, files=None):
    with pytest.raises(SpecError) as e:
        fn(res) if files is None else fn(res, files)
    return e.value.field, e.value.reason


def test_v1_every_field():
    res = {
        "memory": {"limit": 50593792, "reservation": 1 << 20, "swap": 101187584, "kernel": 123, "kernelTCP": 4096,
                   "swappiness": 10, "disableOOMKiller": True, "useHierarchy": True},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "realtimeRuntime": 950000,
                "realtimePeriod": 1000000, "cpus": "0-1", "mems": "0", "idle": 1},
        "pids": {"limit": 100},
        "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 30}],
        "network": {"classID": 255, "priorities": [{"name": "lo", "priority": 10}]},
        "rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}},
    }  # fmt: skip
    got = {(ctl, name): value for _f, ctl, name, value in v1(res)}
    assert got == {
        ("cpuset", "cpuset.cpus"): "0-1", ("cpuset", "cpuset.mems"): "0",
        ("memory", "memory.limit_in_bytes"): "50593792", ("memory", "memory.memsw.limit_in_bytes"): "101187584",
        ("memory", "memory.soft_limit_in_bytes"): "1048576", ("memory", "memory.kmem.tcp.limit_in_bytes"): "4096",
        ("memory", "memory.swappiness"): "10", ("memory", "memory.oom_control"): "1",
        ("memory", "memory.use_hierarchy"): "1",
        ("cpu", "cpu.shares"): "1024", ("cpu", "cpu.cfs_period_us"): "100000", ("cpu", "cpu.cfs_quota_us"): "50000",
        ("cpu", "cpu.cfs_burst_us"): "1000", ("cpu", "cpu.rt_period_us"): "1000000",
        ("cpu", "cpu.rt_runtime_us"): "950000", ("cpu", "cpu.idle"): "1",
        ("pids", "pids.max"): "100",
        ("blkio", "blkio.throttle.read_bps_device"): "8:0 1000",
        ("blkio", "blkio.throttle.write_iops_device"): "8:0 10",
        ("hugetlb", "hugetlb.2MB.limit_in_bytes"): "1073741824",
        ("hugetlb", "hugetlb.2MB.rsvd.limit_in_bytes"): "1073741824",
        ("net_cls", "net_cls.classid"): "255", ("net_prio", "net_prio.ifpriomap"): "lo 10",
        ("rdma", "rdma.max"): "mlx4_0 hca_handle=2 hca_object=2000",
    }  # fmt: skip
    assert not any("kmem.limit_in_bytes" in name for _f, _c, name, _v in v1(res))  # memory.kernel is ignored
    # Every write names the field it came from.
    fields = {name: field for field, _c, name, _v in v1(res)}
    assert fields["memory.memsw.limit_in_bytes"] == "linux.resources.memory.swap"
    assert fields["blkio.throttle.read_bps_device"] == "linux.resources.blockIO.throttleReadBpsDevice[0].rate"


def test_v1_cpu_pairs_retry_and_zero_means_unset():
    writes = v1_writes.writes({"cpu": {"period": 500000, "quota": 200000, "shares": 0}}, lambda c, n: None)
    assert [(name, flags) for _f, _c, name, _v, flags in writes] == [
        ("cpu.cfs_period_us", RETRY),
        ("cpu.cfs_quota_us", 0),
    ]
    writes = v1_writes.writes({"cpu": {"period": 500000}}, lambda c, n: None)
    assert [(name, flags) for _f, _c, name, _v, flags in writes] == [("cpu.cfs_period_us", 0)]
    assert v1({"memory": {"limit": 0, "swap": 0}, "pids": {"limit": 0}}) == []
    assert v1({"pids": {"limit": -1}}) == [("linux.resources.pids.limit", "pids", "pids.max", "max")]


@pytest.mark.parametrize(
    ("current", "limit", "swap", "order"),
    [
        ("100000000", 50000000, 80000000, ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]),  # shrink
        ("100000000", 150000000, 400000000, ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),  # grow
        ("100000000", 50000000, -1, ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),
        ("100000000", -1, None, ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),  # -1 takes swap along
    ],
)
def test_v1_memory_and_swap_order(current, limit, swap, order):
    files = {**V1_FILES, ("memory", "memory.limit_in_bytes"): current}
    res = {"memory": {"limit": limit, **({"swap": swap} if swap is not None else {})}}
    assert [name for _f, _c, name, _v in v1(res, files)] == order


def test_v1_memory_limit_alone_above_current_swap_is_explained():
    files = {**V1_FILES, ("memory", "memory.memsw.limit_in_bytes"): "100000000"}
    field, reason = err(v1, {"memory": {"limit": 200000000}}, files)
    assert field == "linux.resources.memory.limit"
    assert "memory+swap limit 100000000" in reason


def test_v1_errors_name_the_field():
    no_memsw = {k: v for k, v in V1_FILES.items() if k[1] != "memory.memsw.limit_in_bytes"}
    assert err(v1, {"memory": {"limit": 10, "swap": 20}}, no_memsw)[0] == "linux.resources.memory.swap"
    assert err(v1, {"memory": {"limit": 20, "swap": 10}})[0] == "linux.resources.memory.swap"
    assert err(v1, {"memory": {"swappiness": 101}})[0] == "linux.resources.memory.swappiness"
    assert err(v1, {"memory": {"limit": "1G"}})[0] == "linux.resources.memory.limit"
    assert err(v1, {"memory": {"disableOOMKiller": 1}})[0] == "linux.resources.memory.disableOOMKiller"
    assert err(v1, {"memory": []})[0] == "linux.resources.memory"
    assert err(v1, {"cpu": {"shares": 1}})[0] == "linux.resources.cpu.shares"
    assert err(v1, {"cpu": {"cpus": "0-"}})[0] == "linux.resources.cpu.cpus"
    assert err(v1, {"cpu": {"quota": -2}})[0] == "linux.resources.cpu.quota"
    assert err(v1, {"cpu": {"period": True}})[0] == "linux.resources.cpu.period"
    assert err(v1, {"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}) == (
        "linux.resources.hugepageLimits[0].pageSize",
        "this host has no 3MB huge pages (no hugetlb.3MB.limit_in_bytes)",
    )
    no_hugetlb = {k: v for k, v in V1_FILES.items() if k[0] != "hugetlb"}  # the hierarchy is not mounted
    assert err(v1, {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, no_hugetlb) == (
        "linux.resources.hugepageLimits[0]",
        "the hugetlb cgroup controller is not mounted on this host",
    )
    assert (
        err(v1, {"hugepageLimits": [{"pageSize": "2XB", "limit": 1}]})[0]
        == "linux.resources.hugepageLimits[0].pageSize"
    )
    assert err(v1, {"blockIO": {"weight": 5}})[0] == "linux.resources.blockIO.weight"
    assert err(v1, {"blockIO": {"weightDevice": [{"major": 8, "weight": 100}]}})[0] == (
        "linux.resources.blockIO.weightDevice[0].minor"
    )
    assert err(v1, {"network": {"priorities": [{"name": "eth 0", "priority": 1}]}})[0] == (
        "linux.resources.network.priorities[0].name"
    )
    assert err(v1, {"unified": {"memory.high": "1G"}}) == (
        "linux.resources.unified",
        "needs cgroup v2; this host runs cgroup v1",
    )


def test_v1_blkio_weight_goes_where_the_kernel_has_it():
    # No weight files at all: the write is still produced; the manager turns the
    # kernel's ENOENT into "this kernel has no blkio.weight" (see test_tree).
    assert v1({"blockIO": {"weight": 500, "leafWeight": 300}}) == [
        ("linux.resources.blockIO.weight", "blkio", "blkio.weight", "500"),
        ("linux.resources.blockIO.leafWeight", "blkio", "blkio.leaf_weight", "300"),
    ]
    bfq = {**V1_FILES, ("blkio", "blkio.bfq.weight"): "100"}
    assert v1({"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 200}]}}, bfq) == [
        ("linux.resources.blockIO.weight", "blkio", "blkio.bfq.weight", "500"),
        ("linux.resources.blockIO.weightDevice[0].weight", "blkio", "blkio.bfq.weight_device", "8:0 200"),
    ]


def test_v2_conversions():
    res = {
        "memory": {"limit": 1 << 30, "swap": 3 << 30, "reservation": 1 << 29, "kernel": 5, "kernelTCP": 5},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000, "idle": 0, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
        "rdma": {"mlx5_1": {"hcaHandles": 3}},
        "unified": {"memory.high": "900M", "io.latency": "8:0 target=75"},
    }  # fmt: skip
    assert v2(res) == [
        ("linux.resources.cpu.cpus", "cpuset.cpus", "0"),
        ("linux.resources.cpu.mems", "cpuset.mems", "0"),
        ("linux.resources.memory.limit", "memory.max", "1073741824"),
        ("linux.resources.memory.swap", "memory.swap.max", str(2 << 30)),
        ("linux.resources.memory.reservation", "memory.low", "536870912"),
        ("linux.resources.cpu.shares", "cpu.weight", "39"),
        ("linux.resources.cpu.quota", "cpu.max", "50000 100000"),
        ("linux.resources.cpu.burst", "cpu.max.burst", "10000"),
        ("linux.resources.cpu.idle", "cpu.idle", "0"),
        ("linux.resources.pids.limit", "pids.max", "50"),
        ("linux.resources.blockIO.weight", "io.weight", "default 4950"),
        ("linux.resources.blockIO.weightDevice[0].weight", "io.weight", "8:0 10000"),
        ("linux.resources.blockIO.throttleReadBpsDevice[0].rate", "io.max", "8:0 rbps=1048576"),
        ("linux.resources.blockIO.throttleWriteIOPSDevice[0].rate", "io.max", "8:0 wiops=100"),
        ("linux.resources.hugepageLimits[0].limit", "hugetlb.2MB.max", "2097152"),
        ("linux.resources.rdma.mlx5_1", "rdma.max", "mlx5_1 hca_handle=3"),
        ("linux.resources.unified.memory.high", "memory.high", "900M"),
        ("linux.resources.unified.io.latency", "io.latency", "8:0 target=75"),
    ]


@pytest.mark.parametrize(
    ("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000), (512, 20)]
)  # fmt: skip
def test_v2_shares_to_weight_table(shares, weight):
    assert v2_writes.shares_to_weight(shares) == weight


def test_v2_blkio_weight_table_and_bfq():
    assert [v2_writes.blkio_to_io_weight(w) for w in (10, 100, 500, 1000)] == [1, 910, 4950, 10000]
    bfq = {**V2_FILES, "io.bfq.weight": "default 100"}
    assert v2({"blockIO": {"weight": 500}}, bfq) == [("linux.resources.blockIO.weight", "io.bfq.weight", "500")]


def test_v2_cpu_max_keeps_what_is_not_given():
    assert v2({"cpu": {"quota": 20000}}) == [
        ("linux.resources.cpu.quota", "cpu.max", "20000")
    ]  # period kept by the kernel
    assert v2({"cpu": {"quota": -1}}) == [("linux.resources.cpu.quota", "cpu.max", "max")]
    files = {**V2_FILES, "cpu.max": "30000 100000"}
    assert v2({"cpu": {"period": 50000}}, files) == [("linux.resources.cpu.period", "cpu.max", "30000 50000")]


def test_v2_swap_rules():
    assert v2({"memory": {"limit": -1}}) == [
        ("linux.resources.memory.limit", "memory.max", "max"),
        ("linux.resources.memory.swap", "memory.swap.max", "max"),
    ]
    writes = v2_writes.writes({"memory": {"limit": 100, "swap": 100}}, lambda _c, n: None)
    assert [(w[2], w[3], w[4]) for w in writes] == [("memory.max", "100", 0), ("memory.swap.max", "0", OPTIONAL)]
    assert err(v2, {"memory": {"swap": 100}})[0] == "linux.resources.memory.swap"
    assert err(v2, {"memory": {"limit": 100, "swap": 50}})[0] == "linux.resources.memory.swap"


def test_v2_refuses_what_has_no_v2_counterpart():
    for res, field in [
        ({"memory": {"swappiness": 10}}, "linux.resources.memory.swappiness"),
        ({"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller"),
        ({"memory": {"useHierarchy": False}}, "linux.resources.memory.useHierarchy"),
        ({"cpu": {"realtimeRuntime": 1000}}, "linux.resources.cpu.realtimeRuntime"),
        ({"blockIO": {"leafWeight": 100}}, "linux.resources.blockIO.leafWeight"),
        ({"network": {"classID": 1}}, "linux.resources.network"),
        ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified.cgroup.procs"),
        ({"unified": {"../x": "1"}}, "linux.resources.unified.../x"),
        ({"unified": {"memory.high": 5}}, "linux.resources.unified.memory.high"),
        ({"hugepageLimits": [{"pageSize": "1GB", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ]:
        assert err(v2, res)[0] == field
    assert v2({"memory": {"useHierarchy": True, "disableOOMKiller": False}}) == []


def test_required_members_of_list_entries():
    for res, field in [
        ({"hugepageLimits": [{"pageSize": "2MB"}]}, "linux.resources.hugepageLimits[0].limit"),
        (
            {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
            "linux.resources.blockIO.throttleReadBpsDevice[0].rate",
        ),
        ({"network": {"priorities": [{"name": "lo"}]}}, "linux.resources.network.priorities[0].priority"),
        ({"network": {"priorities": [{"priority": 1}]}}, "linux.resources.network.priorities[0].name"),
    ]:
        assert err(v1, res) == (field, "is required")
    assert err(v2, {"hugepageLimits": [{"pageSize": "2MB"}]}) == (
        "linux.resources.hugepageLimits[0].limit",
        "is required",
    )
