"""The cgroup managers against the real kernel: update order, freezing, OOM, stats,
cleanup, and the v2 driver and eBPF device program on a real cgroup2 directory.

The host is cgroup v1 "hybrid": its cgroup2 at /sys/fs/cgroup/unified has no
controllers, but cgroup.procs/freeze/kill/events, cpu.stat and device
programs (BPF_CGROUP_DEVICE) work on any cgroup2 directory, so the v2 driver's
placement, freezer, cleanup and device filtering are tested there for real.
v2 resource files (memory.max, ...) cannot exist here; their translation is
tested against a fake tree in tests/unit/runtime/cgroups/test_tree.py.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from inclavare._sys import bpf
from inclavare.errors import InclavareError, SpecError
from inclavare.runtime import cgroups
from inclavare.runtime.cgroups import devices, ebpf, fs
from inclavare.runtime.cgroups.v2 import V2Manager

pytestmark = pytest.mark.root

UNIFIED = "/sys/fs/cgroup/unified"
MB = 1 << 20


def unique() -> str:
    return f"rune-mt-{uuid.uuid4().hex[:8]}"


def read(d: str, name: str) -> str:
    return fs.read(d, name) or ""


@pytest.fixture
def manager():
    """manager(path) -> a created V1Manager; destroyed (and checked gone) after the test."""
    made = []

    def make(path: str):
        m = cgroups.manager_for(path, "x")
        m.create()
        made.append(m)
        return m

    yield make
    for m in made:
        m.destroy()
        assert not any(os.path.exists(d) for d in m.paths.values())
        assert not any(os.path.exists(top) for top in m.created)


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"])


def host_has(ctl: str, name: str) -> bool:
    """Whether the root of the host's `ctl` hierarchy has interface file `name`."""
    where = cgroups.mounts().get(ctl)
    return where is not None and os.path.exists(f"{where[0]}/{name}")


def test_swap_without_swap_accounting_is_a_clear_error(manager):
    if host_has("memory", "memory.memsw.limit_in_bytes"):
        pytest.skip("this kernel accounts swap")
    m = manager(f"/{unique()}")
    with pytest.raises(SpecError) as e:
        m.apply({"memory": {"limit": 100 * MB, "swap": 200 * MB}}, [])
    assert e.value.field == "linux.resources.memory.swap"
    assert "does not account swap" in e.value.reason


def test_update_orders_memory_and_swap(manager):
    if not host_has("memory", "memory.memsw.limit_in_bytes"):
        pytest.skip("this kernel does not account swap (memory.memsw.*): checked above")
    m = manager(f"/{unique()}")
    m.apply({"memory": {"limit": 100 * MB, "swap": 200 * MB}}, [])
    p = sleeper()
    m.add(p.pid)
    mem = m.paths["memory"]
    m.update({"memory": {"limit": 300 * MB, "swap": 400 * MB}})  # memsw must grow first
    assert (read(mem, "memory.limit_in_bytes"), read(mem, "memory.memsw.limit_in_bytes")) == (
        str(300 * MB),
        str(400 * MB),
    )
    m.update({"memory": {"limit": 50 * MB, "swap": 60 * MB}})  # the limit must shrink first
    assert (read(mem, "memory.limit_in_bytes"), read(mem, "memory.memsw.limit_in_bytes")) == (
        str(50 * MB),
        str(60 * MB),
    )
    with pytest.raises(SpecError) as e:
        m.update({"memory": {"limit": 100 * MB}})
    assert e.value.field == "linux.resources.memory.limit"
    assert "memory+swap limit" in e.value.reason
    m.update({"memory": {"limit": -1}})  # unlimited takes memory+swap along
    assert read(mem, "memory.memsw.limit_in_bytes") == read(mem, "memory.limit_in_bytes")
    m.update({"pids": {"limit": 7}, "cpu": {"shares": 512}})
    assert (read(m.paths["pids"], "pids.max"), read(m.paths["cpu"], "cpu.shares")) == ("7", "512")
    m.destroy()  # kills the sleeper
    assert p.wait(5) == -9


def test_cpu_period_is_retried_after_the_quota(manager):
    """A child's quota/period may not exceed its parent's (sched-bwc.rst): lowering
    the period first is refused (EINVAL) until the quota is lowered too."""
    name = unique()
    parent = manager(f"/{name}")
    parent.apply({"cpu": {"quota": 50000, "period": 100000}}, [])
    child = manager(f"/{name}/child")
    child.apply({"cpu": {"quota": 50000, "period": 100000}}, [])
    child.update({"cpu": {"period": 50000, "quota": 25000}})
    cpu = child.paths["cpu"]
    assert (read(cpu, "cpu.cfs_period_us"), read(cpu, "cpu.cfs_quota_us")) == ("50000", "25000")
    with pytest.raises(SpecError) as e:
        child.update({"cpu": {"period": 20000}})  # alone, the kernel refuses it
    assert e.value.field == "linux.resources.cpu.period"
    assert "Invalid argument" in e.value.reason


def free_rt_budget(cpu_root: str = "/sys/fs/cgroup/cpu") -> int:
    """Realtime runtime (per 1 s period) the root's children have not taken yet."""
    taken = sum(int(read(e.path, "cpu.rt_runtime_us") or 0) for e in os.scandir(cpu_root) if e.is_dir())
    return int(read(cpu_root, "cpu.rt_runtime_us")) * 1000000 // int(read(cpu_root, "cpu.rt_period_us")) - taken


def test_realtime_without_rt_group_scheduling_is_a_clear_error(manager):
    """Kernels built without CONFIG_RT_GROUP_SCHED (Debian's) have no cpu.rt_* files."""
    if host_has("cpu", "cpu.rt_runtime_us"):
        pytest.skip("this kernel has realtime group scheduling")
    m = manager(f"/{unique()}")
    with pytest.raises(SpecError) as e:
        m.apply({"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 1000}}, [])
    assert e.value.field.startswith("linux.resources.cpu.realtime")
    assert "this kernel has no cpu.rt_" in e.value.reason


def test_realtime_budget_is_given_to_the_parents_rune_made(manager):
    if not host_has("cpu", "cpu.rt_runtime_us"):
        pytest.skip("no realtime group scheduling in this kernel: checked above")
    runtime = min(10000, free_rt_budget())
    if runtime < 1000:  # e.g. runtime-tools' linux_cgroups_cpus holds 950000 of 950000 in /cgrouptest
        pytest.skip("another cgroup holds the host's whole realtime budget")
    name = unique()
    m = manager(f"/{name}/a/b")
    m.apply({"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": runtime}}, [])
    for d in (f"/sys/fs/cgroup/cpu/{name}", f"/sys/fs/cgroup/cpu/{name}/a", m.paths["cpu"]):
        assert read(d, "cpu.rt_runtime_us") == str(runtime), d


def test_freeze_thaw_pids_and_destroy_of_a_frozen_tree(manager):
    m = manager(f"/{unique()}")
    m.apply({}, [])
    a, b = sleeper(), sleeper()
    m.add(a.pid)
    for ctl in ("freezer", "pids"):
        os.mkdir(m.paths[ctl] + "/sub")
        fs.write(m.paths[ctl] + "/sub", "cgroup.procs", str(b.pid))  # a sub-cgroup "the container" made
    assert sorted(m.pids()) == sorted([a.pid, b.pid])
    m.freeze()
    assert read(m.paths["freezer"], "freezer.state") == "FROZEN"
    m.thaw()
    assert read(m.paths["freezer"], "freezer.state") == "THAWED"
    m.freeze()
    m.destroy()  # thaws, kills both, removes sub-cgroups
    assert (a.wait(5), b.wait(5)) == (-9, -9)
    assert not os.path.exists(m.paths["freezer"])


def test_oom_watch_and_stats_v1(manager):
    m = manager(f"/{unique()}")
    m.apply({"memory": {"limit": 16 * MB}, "pids": {"limit": 10}}, [])
    watch = m.oom_watch()
    try:
        assert watch.wait(0) == 0
        dirs = " ".join(sorted(set(m.paths.values())))
        hog = subprocess.Popen(["sh", "-c", f"for d in {dirs}; do echo $$ > $d/cgroup.procs; done; "
                                "exec dd if=/dev/zero of=/dev/null bs=64M count=1"],
                               stderr=subprocess.DEVNULL)  # fmt: skip
        assert hog.wait(10) == -9  # the OOM killer's SIGKILL
        assert watch.wait(5) >= 1
        data = m.stats()
        assert data["memory"]["usage"]["limit"] == 16 * MB
        assert data["memory"]["usage"]["failcnt"] > 0
        assert data["memory"]["usage"]["max"] > 8 * MB
        assert data["pids"] == {"limit": 10}  # current is 0: omitted, as runc's omitempty
        assert data["cpu"]["usage"]["total"] > 0
        m.destroy()
        assert watch.wait(2) == 0
        assert watch.gone  # the eventfd fires when the cgroup goes
    finally:
        watch.close()


def test_create_refuses_a_cgroup_other_processes_use(manager):
    name = unique()
    first = manager(f"/{name}")
    p = sleeper()
    first.add(p.pid)
    with pytest.raises(InclavareError, match="already has processes"):
        cgroups.manager_for(f"/{name}", "y").create()
    assert p.poll() is None  # untouched
    first.destroy()
    p.wait(5)


# -- cgroup v2 on the hybrid host's real cgroup2 ----------------------------------


@pytest.fixture
def v2dir():
    if cgroups.mounts().get("unified", ("", ""))[0] != UNIFIED:
        pytest.skip(f"no cgroup2 mounted at {UNIFIED}")
    top = f"{UNIFIED}/{unique()}"
    yield top
    if os.path.exists(top):
        fs.remove_tree(top)


def run_in(directory: str, script: str) -> str:
    """Run `script` in a shell that first moves itself into `directory`."""
    r = subprocess.run(
        ["sh", "-c", f"echo $$ > {directory}/cgroup.procs && {script}"], capture_output=True, text=True, timeout=10
    )
    return r.stdout + r.stderr


def a_block_device_node() -> str:
    """A block device node of this host under /dev (its disk, a loop device, ...)."""
    for entry in sorted(os.listdir("/sys/block")):
        if os.path.exists(f"/dev/{entry}"):
            return f"/dev/{entry}"
    pytest.skip("no block device node in /dev")


def test_v2_manager_on_real_cgroup2(v2dir):
    m = V2Manager(UNIFIED, f"{v2dir}/nested/c")
    m.create()
    assert m.created == [v2dir]
    m.apply({}, [])  # the default device program
    out = run_in(m.path, f"echo x > /dev/null && echo null-ok; head -c 1 {a_block_device_node()} 2>&1")
    assert "null-ok" in out
    assert "Operation not permitted" in out  # block devices: mknod only
    p = sleeper()
    m.add(p.pid)
    assert m.pids() == [p.pid]
    m.freeze()
    assert "frozen 1" in read(m.path, "cgroup.events")
    m.thaw()
    assert "frozen 0" in read(m.path, "cgroup.events")
    assert m.stats()["cpu"]["usage"]["total"] >= 0
    m.freeze()
    m.destroy()  # cgroup.kill, frozen or not; then the parents rune made
    assert p.wait(5) == -9
    assert not os.path.exists(v2dir)


def test_v2_event_watch_wakes_on_kernfs_notification(v2dir):
    """The v2 OOM watch polls memory.events for POLLPRI and counts oom_kill.
    This hierarchy has no memory controller, so the same code watches
    cgroup.events' "frozen" key, which the kernel notifies the same way
    (cgroup_file_notify); memory.events itself is not tested here."""
    from inclavare.runtime.cgroups.oom import OomWatch

    m = V2Manager(UNIFIED, v2dir)
    m.create()
    watch = OomWatch.v2(v2dir, "cgroup.events", "frozen")
    try:
        assert watch.wait(0.05) == 0
        m.freeze()
        assert watch.wait(2) == 1
        m.thaw()
        assert watch.wait(2) == 0  # 1 -> 0: no new event
        m.destroy()
        watch.wait(2)
        assert watch.gone
    finally:
        watch.close()


def test_device_program_is_enforced_and_replaced(v2dir):
    os.mkdir(v2dir)
    read_only_null = [devices.DENY_ALL, (True, "c", 1, 3, "r")]
    bpf.replace_device_program(v2dir, ebpf.device_program(read_only_null))
    out = run_in(v2dir, "cat /dev/null && echo read-ok; echo x > /dev/null && echo write-ok")
    assert "read-ok" in out
    assert "write-ok" not in out
    assert "Operation not permitted" in out
    fd = os.open(v2dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(bpf.query(fd)) == 1
        bpf.replace_device_program(v2dir, ebpf.device_program([*read_only_null, (True, "c", 1, 3, "w")]))
        assert len(bpf.query(fd)) == 1  # the old program was detached, not stacked
    finally:
        os.close(fd)
    assert "write-ok" in run_in(v2dir, "echo x > /dev/null && echo write-ok")
