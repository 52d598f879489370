"""rune's cgroups through the real build/rune: placement, resources, devices, cleanup.

Runs on the project's cgroup v1 (hybrid) host: every hierarchy under
/sys/fs/cgroup/<name>; the cgroup2 at /sys/fs/cgroup/unified stays unused by
containers. Every cgroup a test makes is checked gone at its end.
"""

from __future__ import annotations

import glob
import json
import os
import uuid

import pytest

from inclavare.runtime import cgroups
from inclavare.testing.bundles import base_config
from inclavare.testing.containers import wait_for

pytestmark = pytest.mark.root

CG = "/sys/fs/cgroup"


def unique(prefix: str = "rune-it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def v1_hierarchies() -> dict[str, str]:
    return {k: point for k, (point, _root) in cgroups.mounts().items() if k != "unified"}


def leftovers(name: str) -> list[str]:
    """Directories called `name` anywhere in any cgroup hierarchy."""
    found = []
    for top in {p for p, _r in cgroups.mounts().values()}:
        for dirpath, dirnames, _files in os.walk(top):
            found += [os.path.join(dirpath, d) for d in dirnames if d == name]
    return found


def start(rune, bundle, config: dict, cid: str, *flags: str) -> dict:
    b = bundle(config)
    r = rune(*flags, "run", "-d", "--bundle", b, cid)
    assert r.returncode == 0, r.stderr
    return json.loads(rune(*flags, "state", cid, check=True).stdout)


def paths_of(pid: int) -> dict[str, str]:
    return cgroups.own_cgroups(str(pid))


def sleeper(**linux) -> dict:
    cfg = base_config(["sleep", "30"])
    cfg["linux"].update(linux)
    return cfg


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_absolute_path_in_every_hierarchy_and_removed_on_delete(rune, bundle):
    name = unique()
    state = start(rune, bundle, sleeper(cgroupsPath=f"/{name}"), "abs")
    own = paths_of(state["pid"])
    for ctl in v1_hierarchies():
        assert own[ctl] == f"/{name}", ctl
    rune("delete", "--force", "abs", check=True)
    assert leftovers(name) == []


def test_relative_path_is_below_runes_own_cgroup_and_parents_are_pruned(rune, bundle):
    top = unique()
    state = start(rune, bundle, sleeper(cgroupsPath=f"{top}/cgrouptest/container"), "rel")
    mine = cgroups.own_cgroups()  # rune is our child and starts in our cgroups
    own = paths_of(state["pid"])
    for ctl in v1_hierarchies():
        assert own[ctl] == os.path.join(mine[ctl], f"{top}/cgrouptest/container"), ctl
    rune("delete", "--force", "rel", check=True)
    assert leftovers(top) == []  # the two levels rune made above the container went too


def test_systemd_cgroups_path_is_emulated_on_cgroupfs(rune, bundle):
    stem = unique("runeit").replace("-", "")
    state = start(rune, bundle, sleeper(cgroupsPath=f"{stem}-pod.slice:cri:{stem}"), "sd", "--systemd-cgroup")
    assert paths_of(state["pid"])["pids"] == f"/{stem}.slice/{stem}-pod.slice/cri-{stem}.scope"
    rune("--systemd-cgroup", "delete", "--force", "sd", check=True)
    assert leftovers(f"{stem}.slice") == []
    r = rune("--systemd-cgroup", "run", "--bundle", bundle(sleeper(cgroupsPath="/not/a/slice")), "sd2")
    assert r.returncode == 1
    assert "linux.cgroupsPath" in r.stderr
    assert "slice:prefix:name" in r.stderr


def host_has(ctl: str, name: str) -> bool:
    """Whether the root of the host's `ctl` hierarchy has interface file `name`."""
    where = cgroup_mounts().get(ctl)
    return where is not None and os.path.exists(f"{where[0]}/{name}")


def blkio_weight_file() -> str | None:
    """Where this kernel takes a blkio weight: CFQ's blkio.weight (gone with
    Linux 5.0), BFQ's blkio.bfq.weight (only while the bfq scheduler is loaded;
    the file is not on the root cgroup, so ask the queues), or nowhere."""
    if host_has("blkio", "blkio.weight"):
        return "blkio.weight"
    for sched in glob.glob("/sys/block/*/queue/scheduler"):
        if "bfq" in read(sched).replace("[", " ").replace("]", " ").split():
            return "blkio.bfq.weight"
    return None


def a_block_device() -> str | None:
    """major:minor of a whole disk of this host (virtio, SCSI, NVMe, ...), for throttling."""
    disks = sorted(glob.glob("/sys/block/*/dev"), key=lambda p: p.split("/")[3].startswith(("loop", "ram", "zram")))
    return read(disks[0]) if disks else None


def test_resources_reach_the_kernel(rune, bundle):
    """Every value lands in the file the host's kernel has for it. What the host
    lacks (swap accounting, a blkio weight without CFQ or BFQ, the hugetlb,
    net_cls and net_prio hierarchies on a fresh machine of this kind) is not
    asked for here; asking for it is a clear error, checked below."""
    name = unique()
    mounted = cgroup_mounts()
    memory: dict[str, object] = {"limit": 50593792, "reservation": 50593792, "swappiness": 10,
                                 "disableOOMKiller": True}  # fmt: skip
    res: dict[str, object] = {
        "memory": memory,
        "cpu": {"shares": 2048, "quota": 200000, "period": 500000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 1000},
    }
    want = {
        "memory/memory.limit_in_bytes": "50593792", "memory/memory.soft_limit_in_bytes": "50593792",
        "memory/memory.swappiness": "10", "cpu/cpu.shares": "2048", "cpu/cpu.cfs_quota_us": "200000",
        "cpu/cpu.cfs_period_us": "500000", "cpuset/cpuset.cpus": "0", "pids/pids.max": "1000",
    }  # fmt: skip
    if host_has("memory", "memory.memsw.limit_in_bytes"):
        memory["swap"] = 101187584
        want["memory/memory.memsw.limit_in_bytes"] = "101187584"
    if host_has("memory", "memory.kmem.tcp.limit_in_bytes"):
        memory["kernelTCP"] = 50593792
        want["memory/memory.kmem.tcp.limit_in_bytes"] = "50593792"
    blkio: dict[str, object] = {}
    weight = blkio_weight_file()
    if weight is not None:
        blkio["weight"] = 500
        want[f"blkio/{weight}"] = "500"
    disk = a_block_device()
    if disk is not None and host_has("blkio", "blkio.throttle.read_bps_device"):
        major, minor = (int(n) for n in disk.split(":"))
        blkio["throttleReadBpsDevice"] = [{"major": major, "minor": minor, "rate": 1 << 20}]
        want["blkio/blkio.throttle.read_bps_device"] = f"{disk} 1048576"
    if blkio:
        res["blockIO"] = blkio
    if "hugetlb" in mounted:
        res["hugepageLimits"] = [{"pageSize": "2MB", "limit": 2 << 30}]
        want["hugetlb/hugetlb.2MB.limit_in_bytes"] = str(2 << 30)
    if "net_cls" in mounted and "net_prio" in mounted:
        res["network"] = {"classID": 550, "priorities": [{"name": "lo", "priority": 30}]}
        want["net_cls/net_cls.classid"] = "550"
    start(rune, bundle, sleeper(cgroupsPath=f"/{name}", resources=res), "res")
    got = {rel: read(f"{mounted[rel.split('/')[0]][0]}/{name}/{rel.split('/')[1]}") for rel in want}
    if weight == "blkio.bfq.weight":  # BFQ shows the legacy weight as "default N" on some kernels
        got[f"blkio/{weight}"] = got[f"blkio/{weight}"].split()[-1]
    assert got == want
    assert "oom_kill_disable 1" in read(f"{mounted['memory'][0]}/{name}/memory.oom_control")
    if "network" in res:
        assert "lo 30" in read(f"{mounted['net_prio'][0]}/{name}/net_prio.ifpriomap").splitlines()


def test_unmounted_controller_is_a_clear_error(rune, bundle, state_root):
    missing = [ctl for ctl in ("hugetlb", "net_cls") if ctl not in cgroup_mounts()]
    if not missing:
        pytest.skip("every v1 controller is mounted on this host")
    if "hugetlb" in missing:
        res, message = (
            {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]},
            ("config.json: linux.resources.hugepageLimits[0]: the hugetlb cgroup controller is not mounted"),
        )
    else:
        res, message = {"network": {"classID": 550}}, "config.json: linux.resources.network.classID: the net_cls"
    r = rune("create", "--bundle", bundle(sleeper(cgroupsPath=f"/{unique()}", resources=res)), "nomnt")
    assert r.returncode == 1
    assert message in r.stderr  # names the field the host cannot honour, and why
    assert r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(state_root, "nomnt"))


def test_blkio_weight_without_cfq_or_bfq_is_a_clear_error(rune, bundle, state_root):
    """Linux 5.0 removed CFQ's blkio.weight; BFQ's only exists while bfq is
    loaded. Without either, a weight cannot be honoured: one line, nothing left."""
    if blkio_weight_file() is not None:
        pytest.skip("this host takes blkio weights")
    name = unique()
    cfg = sleeper(cgroupsPath=f"/{name}", resources={"blockIO": {"weight": 500}})
    r = rune("create", "--bundle", bundle(cfg), "noweight")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr
    assert "config.json: linux.resources.blockIO.weight: this kernel has no blkio.weight" in r.stderr
    assert leftovers(name) == []
    assert not os.path.exists(os.path.join(state_root, "noweight"))


def cgroup_mounts() -> dict[str, tuple[str, str]]:
    return cgroups.mounts()


HUGETLB = "hugetlb" in cgroup_mounts()


def test_devices_list_keeps_spec_order_and_the_kernel_enforces_it(rune, bundle):
    name = unique()
    cfg = base_config(["sh", "-c",
        "mknod /dev/ok b 7 7 && mknod /dev/no b 7 6 && head -c 1 /dev/ok >/dev/null && echo read-ok; "
        "(echo x > /dev/ok) 2>&1; head -c 1 /dev/no 2>&1; echo x > /dev/null && echo null-ok"])  # fmt: skip
    cfg["linux"]["cgroupsPath"] = f"/{name}"
    cfg["linux"]["resources"] = {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": True, "type": "b", "major": 7, "minor": 7, "access": "r"},
    ]}  # fmt: skip
    for capset in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][capset].append("CAP_MKNOD")
    r = rune("run", "--bundle", bundle(cfg), "dev")
    lines = r.stdout.splitlines()
    assert lines[0] == "read-ok", r.stdout + r.stderr
    assert "Operation not permitted" in lines[1]  # write to the read-only allowed loop device
    assert "Operation not permitted" in lines[2]  # 7:6 is not allowed at all
    assert lines[3] == "null-ok"  # a default device
    # devices.list: the spec's allow rules first, in order (runtime-tools linux_cgroups_devices)
    start(rune, bundle, sleeper(cgroupsPath=f"/{name}", resources=cfg["linux"]["resources"]), "dev2")
    assert read(f"{CG}/devices/{name}/devices.list").splitlines()[:3] == ["c 10:229 rwm", "b 7:7 r", "c *:* m"]


def test_sub_cgroups_the_container_made_go_with_it(rune, bundle):
    name = unique()
    cfg = sleeper(cgroupsPath=f"/{name}")
    cfg["process"]["args"] = ["sh", "-c", "mkdir -p /sys/fs/cgroup/pids/sub/deeper && echo $$ > "
                              "/sys/fs/cgroup/pids/sub/deeper/cgroup.procs && sleep 30"]  # fmt: skip
    for m in cfg["mounts"]:
        if m["type"] == "cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    start(rune, bundle, cfg, "sub")
    deeper = f"{CG}/pids/{name}/sub/deeper"
    wait_for(lambda: os.path.exists(deeper) and read(f"{deeper}/cgroup.procs"), f"a process in {deeper}")
    rune("delete", "--force", "sub", check=True)
    assert leftovers(name) == []


def no_such_node() -> str:
    """A memory node number this host does not have (one past its possible nodes)."""
    possible = read("/sys/devices/system/node/possible") if os.path.exists("/sys/devices/system/node") else "0"
    return str(max(int(part.split("-")[-1]) for part in possible.split(",")) + 1)


@pytest.mark.parametrize(
    ("resources", "field", "reason"),
    [
        ({"cpu": {"mems": no_such_node()}}, "linux.resources.cpu.mems", "the kernel refused"),  # after the mkdirs
        ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness", "must be an integer in [0, 100]"),
        (
            {"blockIO": {"leafWeight": 500}},
            "linux.resources.blockIO.leafWeight",
            "this kernel has no blkio.leaf_weight",
        ),
        (
            {"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]},
            "linux.resources.hugepageLimits[0]" + (".pageSize" if HUGETLB else ""),
            "no 3MB huge pages" if HUGETLB else "the hugetlb cgroup controller is not mounted",
        ),
        ({"unified": {"memory.high": "1G"}}, "linux.resources.unified", "needs cgroup v2"),
        ({"devices": [{"allow": True, "type": "x"}]}, "linux.resources.devices[0].type", "must be a, b or c"),
    ],
)
def test_bad_value_fails_create_with_one_line_and_leaves_no_cgroup(rune, bundle, state_root, resources, field, reason):
    name = unique()
    top = f"{name}/nested"  # relative: rune makes two levels before it gets to the values
    r = rune("create", "--bundle", bundle(sleeper(cgroupsPath=top, resources=resources)), "bad")
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, r.stderr
    assert f"config.json: {field}: " in errors[0]
    assert reason in errors[0]
    assert "Traceback" not in r.stderr
    assert leftovers(name) == []
    assert not os.path.exists(os.path.join(state_root, "bad"))
