"""The managers' file handling against a directory tree that mimics cgroupfs (no root).

Only what a plain directory can stand in for: which files are written with
what, which missing file an error names, and how stats files are read. The
kernel's side (controllers, EINVAL, rmdir, freezing, eBPF) is exercised for
real in tests/integration/test_cgroups_manager.py; cgroup v2 *resource*
files can only be tested this way on the v1 host this project runs on.
"""

from __future__ import annotations

import os

import pytest

from inclavare.errors import SpecError
from inclavare.runtime.cgroups import stats
from inclavare.runtime.cgroups.v1 import V1Manager
from inclavare.runtime.cgroups.v2 import V2Manager


def tree(base, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


def contents(path) -> str:
    with open(path) as f:
        return f.read()


def blank_leaf(base: str, rel: str, names: list[str]) -> None:
    tree(base, {f"{rel}/{n}": "" for n in names})


V2_LEAF = ["cgroup.procs", "cgroup.freeze", "memory.max", "memory.swap.max", "memory.low", "cpu.max", "cpu.weight",
           "pids.max", "io.weight", "io.max", "memory.high"]  # fmt: skip


def test_v2_create_enables_controllers_down_the_path_and_records_what_it_made(tmp_path):
    root = str(tmp_path / "cg")
    tree(root, {"cgroup.controllers": "cpu memory pids", "cgroup.subtree_control": "",
                "a/cgroup.controllers": "cpu memory pids", "a/cgroup.subtree_control": "memory"})  # fmt: skip
    m = V2Manager(root, f"{root}/a/b/c")
    m.create()
    assert m.created == [f"{root}/a/b"]  # "a" existed: not rune's to remove
    assert contents(f"{root}/cgroup.subtree_control") == "+cpu +memory +pids"
    assert contents(f"{root}/a/cgroup.subtree_control") == "+cpu +pids"  # what was not enabled yet
    assert not os.path.exists(f"{root}/a/b/c/cgroup.subtree_control")  # the leaf's own stays empty


def test_v2_apply_writes_converted_values(tmp_path):
    root = str(tmp_path / "cg")
    leaf = f"{root}/c"
    blank_leaf(root, "c", V2_LEAF)
    m = V2Manager(root, leaf)
    m.apply({"memory": {"limit": 1 << 30, "swap": 2 << 30}, "cpu": {"shares": 1024, "quota": 50000},
             "pids": {"limit": 10}, "unified": {"memory.high": "900M"}})  # fmt: skip
    got = {
        n: contents(f"{leaf}/{n}")
        for n in ("memory.max", "memory.swap.max", "cpu.weight", "cpu.max", "pids.max", "memory.high")
    }
    assert got == {"memory.max": "1073741824", "memory.swap.max": "1073741824", "cpu.weight": "39",
                   "cpu.max": "50000", "pids.max": "10", "memory.high": "900M"}  # fmt: skip


def test_v2_missing_files_are_named(tmp_path):
    root = str(tmp_path / "cg")
    blank_leaf(root, "c", ["cgroup.procs", "memory.max"])
    m = V2Manager(root, f"{root}/c")
    with pytest.raises(SpecError) as e:
        m.apply({"pids": {"limit": 10}})
    assert e.value.field == "linux.resources.pids.limit"
    assert e.value.reason == f"this kernel has no pids.max (in {root}/c)"
    m.apply({"memory": {"limit": 100, "swap": 100}})  # swap "0" with no memory.swap.max is skipped (OPTIONAL)
    with pytest.raises(SpecError) as e:
        m.apply({"unified": {"memory.nope": "1"}})
    assert e.value.field == "linux.resources.unified.memory.nope"


def test_update_names_the_update_document_and_refuses_device_changes(tmp_path):
    root = str(tmp_path / "cg")
    blank_leaf(root, "c", V2_LEAF)
    m = V2Manager(root, f"{root}/c")
    m.update({"cpu": {"quota": 20000}})
    assert contents(f"{root}/c/cpu.max") == "20000"
    m.update({"devices": [{"allow": False, "access": "rwm"}]})  # containerd's unchanged list: accepted
    with pytest.raises(SpecError) as e:
        m.update({"devices": [{"allow": True}]})
    assert str(e.value) == (
        "rune update: linux.resources.devices: differs from the device rules the container was created with, "
        "and those cannot be changed on a running container"
    )
    with pytest.raises(SpecError) as e:
        m.update({"memory": {"swappiness": 5}})
    assert str(e.value).startswith("rune update: linux.resources.memory.swappiness: ")


def test_v1_missing_controller_and_missing_file(tmp_path):
    base = str(tmp_path)
    blank_leaf(base, "blkio/c", ["cgroup.procs", "blkio.throttle.read_bps_device"])
    m = V1Manager({"blkio": f"{base}/blkio/c"})
    with pytest.raises(SpecError) as e:
        m.apply({"blockIO": {"weight": 500}})
    assert (e.value.field, e.value.reason) == (
        "linux.resources.blockIO.weight",
        f"this kernel has no blkio.weight (in {base}/blkio/c)",
    )
    with pytest.raises(SpecError) as e:
        m.apply({"pids": {"limit": 5}})
    assert (e.value.field, e.value.reason) == (
        "linux.resources.pids.limit",
        "the pids cgroup controller is not mounted on this host",
    )
    m.apply({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}]}})
    assert contents(f"{base}/blkio/c/blkio.throttle.read_bps_device") == "8:0 1024"


def test_v1_stats_shape(tmp_path):
    base = str(tmp_path)
    tree(base, {
        "cpuacct/c/cpuacct.usage": "3000\n", "cpuacct/c/cpuacct.usage_percpu": "1000 2000 \n",
        "cpuacct/c/cpuacct.stat": "user 2\nsystem 1\n",
        "cpu/c/cpu.stat": "nr_periods 5\nnr_throttled 1\nthrottled_time 700\n",
        "memory/c/memory.usage_in_bytes": "4096\n", "memory/c/memory.limit_in_bytes": "8192\n",
        "memory/c/memory.max_usage_in_bytes": "6000\n", "memory/c/memory.failcnt": "3\n",
        "memory/c/memory.memsw.usage_in_bytes": "4096\n",
        "memory/c/memory.memsw.limit_in_bytes": "9223372036854771712\n",
        "memory/c/memory.stat": "cache 100\nrss 200\n",
        "pids/c/pids.current": "2\n", "pids/c/pids.max": "max\n",
        "blkio/c/blkio.throttle.io_service_bytes_recursive": "8:0 Read 512\n8:0 Write 0\nTotal 512\n",
        "hugetlb/c/hugetlb.2MB.usage_in_bytes": "0\n", "hugetlb/c/hugetlb.2MB.max_usage_in_bytes": "0\n",
        "hugetlb/c/hugetlb.2MB.failcnt": "1\n", "cpuset/c/cpuset.cpus": "0-1\n", "cpuset/c/cpuset.mems": "0\n",
    })  # fmt: skip
    paths = {ctl: f"{base}/{ctl}/c" for ctl in ("cpuacct", "cpu", "memory", "pids", "blkio", "hugetlb", "cpuset")}
    tick = 10**9 // os.sysconf("SC_CLK_TCK")
    got = stats.v1_stats(paths)
    assert got["cpu"] == {"usage": {"total": 3000, "percpu": [1000, 2000], "kernel": tick, "user": 2 * tick},
                          "throttling": {"periods": 5, "throttledPeriods": 1, "throttledTime": 700}}  # fmt: skip
    assert got["memory"]["usage"] == {"limit": 8192, "usage": 4096, "max": 6000, "failcnt": 3}
    assert got["memory"]["swap"] == {"limit": 9223372036854771712, "usage": 4096, "failcnt": 0}
    assert got["memory"]["kernel"] == {"limit": 0, "failcnt": 0}
    assert (got["memory"]["cache"], got["memory"]["raw"]) == (100, {"cache": 100, "rss": 200})
    assert got["pids"] == {"current": 2}  # "max": no limit, omitted like runc's zero
    assert got["blkio"] == {
        "ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 512}, {"major": 8, "op": "Write"}]
    }
    assert got["hugetlb"] == {"2MB": {"failcnt": 1}}
    assert got["cpuset"] == {"cpus": [0, 1], "mems": [0]}
    assert (got["intel_rdt"], got["network_interfaces"]) == ({}, None)


def test_v2_stats_shape(tmp_path):
    leaf = str(tmp_path / "c")
    tree(leaf, {
        "cpu.stat": "usage_usec 30\nuser_usec 20\nsystem_usec 10\nnr_periods 4\nnr_throttled 2\nthrottled_usec 5\n",
        "memory.current": "4096\n", "memory.max": "max\n", "memory.peak": "8192\n",
        "memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n", "memory.swap.current": "1024\n",
        "memory.swap.max": "max\n", "memory.stat": "anon 10\nfile 20\nkernel 30\nsock 40\n",
        "pids.current": "3\n", "pids.max": "64\n",
        "io.stat": "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n",
        "hugetlb.2MB.current": "2097152\n", "hugetlb.2MB.events": "max 0\n",
        "cpuset.cpus.effective": "0\n", "cpuset.mems.effective": "0\n",
    })  # fmt: skip
    got = stats.v2_stats(leaf)
    assert got["cpu"] == {"usage": {"total": 30000, "kernel": 10000, "user": 20000},
                          "throttling": {"periods": 4, "throttledPeriods": 2, "throttledTime": 5000}}  # fmt: skip
    assert got["memory"]["usage"] == {"limit": 2**64 - 1, "usage": 4096, "max": 8192, "failcnt": 7}
    assert got["memory"]["swap"] == {"limit": 2**64 - 1, "usage": 5120, "failcnt": 0}
    assert got["memory"]["cache"] == 20
    assert got["pids"] == {"current": 3, "limit": 64}
    assert got["blkio"]["ioServicedRecursive"] == [
        {"major": 8, "op": "Read", "value": 1},
        {"major": 8, "op": "Write", "value": 2},
    ]
    assert got["hugetlb"] == {"2MB": {"usage": 2097152, "failcnt": 0}}


def test_an_empty_cgroup_is_removed_without_a_walk(tmp_path, monkeypatch):
    """What an exited container leaves: one rmdir per hierarchy, no readdir
    of the cgroupfs directories (runc's RemovePath tries the rmdir first)."""
    from inclavare.runtime.cgroups import fs

    paths = {ctl: str(tmp_path / ctl / "c1") for ctl in ("freezer", "memory", "pids")}
    for d in paths.values():
        os.makedirs(d)

    def no_walk(directory):
        raise AssertionError(f"walked {directory}")

    monkeypatch.setattr(fs, "_walk", no_walk)
    V1Manager.from_json({"driver": "v1", "paths": paths, "created": []}).destroy()
    assert not any(os.path.exists(d) for d in paths.values())


def test_a_busy_cgroup_still_gets_the_walk(tmp_path):
    """A sub-cgroup left behind (rmdir: not empty) is found and removed first."""
    from inclavare.runtime.cgroups import fs

    top = tmp_path / "pids" / "c1"
    os.makedirs(top / "sub")
    fs.remove_tree(str(top))
    assert not top.exists()
