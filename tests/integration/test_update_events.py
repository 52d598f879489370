"""rune update and rune events against real containers and cgroups."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from inclavare.testing.bundles import base_config

pytestmark = pytest.mark.root


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


# Swap accounting (memory.memsw.*) is a kernel build and boot option: adapt to the host.
MEMSW = os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def own_cgroup(cfg: dict, tmp_path) -> str:
    """Give the container a cgroup no other run uses (the default, /<id>, is shared
    by every run on the machine that picks the same id); return its name."""
    name = f"rune-upd-{os.getpid()}-{tmp_path.name[-12:]}"
    cfg["linux"]["cgroupsPath"] = f"/{name}"
    return name


def test_update_flags_and_resources_file(rune, bundle, tmp_path):
    cfg = base_config(["sleep", "100"])
    name = own_cgroup(cfg, tmp_path)
    rune("run", "-d", "--bundle", bundle(cfg), "upd", check=True)
    swap = ["--memory-swap", "128m"] if MEMSW else []
    rune("update", "--memory", "64m", *swap, "--pids-limit", "50", "--cpu-share", "512", "upd", check=True)
    assert read(f"/sys/fs/cgroup/memory/{name}/memory.limit_in_bytes") == str(64 << 20)
    if MEMSW:
        assert read(f"/sys/fs/cgroup/memory/{name}/memory.memsw.limit_in_bytes") == str(128 << 20)
    assert read(f"/sys/fs/cgroup/pids/{name}/pids.max") == "50"
    assert read(f"/sys/fs/cgroup/cpu/{name}/cpu.shares") == "512"
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"pids": {"limit": 77}}))
    rune("update", "-r", str(res), "upd", check=True)
    assert read(f"/sys/fs/cgroup/pids/{name}/pids.max") == "77"
    with open(f"{rune.root}/upd/state.json") as f:
        saved = json.load(f)["config"]["linux"]["resources"]
    assert saved["pids"]["limit"] == 77
    assert rune("update", "--memory", "lots", "upd").returncode == 1


def test_events_stats_and_oom(rune, bundle, tmp_path):
    cfg = base_config(["sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 100"])
    own_cgroup(cfg, tmp_path)
    cfg["linux"]["resources"]["memory"] = {"limit": 16 << 20, **({"swap": 16 << 20} if MEMSW else {})}
    rune("run", "-d", "--bundle", bundle(cfg), "ev", check=True)
    stats = json.loads(rune("events", "--stats", "ev", check=True).stdout)
    assert stats["type"] == "stats"
    assert stats["data"]["memory"]["usage"]["limit"] == 16 << 20
    rune_bin = rune("--version").args[0]
    proc = subprocess.Popen([rune_bin, "--root", rune.root, "events", "--interval", "1s", "ev"], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        lines = []
        for _ in range(8):
            lines.append(json.loads(proc.stdout.readline()))
            if any(e["type"] == "oom" for e in lines):
                break
    finally:
        proc.kill()
        proc.wait()
    assert any(e["type"] == "oom" for e in lines), lines


# containerd 1.6's CRI UpdateContainerResources: the container's whole linux.resources
# (pkg/cri/server/container_update_resources.go: task.Update with newSpec.Linux.Resources),
# marshalled by encoding/json as go-runc's Update writes it to `runc update --resources -`.
# The device list is the one containerd's default spec starts with (oci/spec.go:
# deny everything) and never changes; WithResources sets cpu and memory (swap = limit
# when the host accounts swap).
CRI_CREATED = {
    "devices": [{"allow": False, "access": "rwm"}],
    "memory": {"limit": 134217728, **({"swap": 134217728} if MEMSW else {})},
    "cpu": {"shares": 256, "quota": 25000, "period": 100000},
}
CRI_UPDATE = (
    b'{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":268435456,"swap":268435456},'
    b'"cpu":{"shares":512,"quota":50000,"period":100000}}\n'
    if MEMSW
    else b'{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":268435456},'
    b'"cpu":{"shares":512,"quota":50000,"period":100000}}\n'
)


def test_update_accepts_containerds_unchanged_device_list(rune, bundle, tmp_path):
    """runc accepts this document (it skips devices on update); rune refused
    any device rule, so every CRI UpdateContainerResources failed."""
    cfg = base_config(["sleep", "100"])
    name = own_cgroup(cfg, tmp_path)
    cfg["linux"]["resources"] = json.loads(json.dumps(CRI_CREATED))
    rune("run", "-d", "--bundle", bundle(cfg), "cri", check=True)
    before = read(f"/sys/fs/cgroup/devices/{name}/devices.list")
    r = rune("update", "--resources", "-", "cri", input=CRI_UPDATE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr
    assert read(f"/sys/fs/cgroup/memory/{name}/memory.limit_in_bytes") == "268435456"
    assert read(f"/sys/fs/cgroup/cpu/{name}/cpu.shares") == "512"
    assert read(f"/sys/fs/cgroup/cpu/{name}/cpu.cfs_quota_us") == "50000"
    assert read(f"/sys/fs/cgroup/devices/{name}/devices.list") == before


def test_update_refuses_a_changed_device_list_and_changes_nothing(rune, bundle, tmp_path):
    """Dropping a different device list silently (runc) would let the caller
    believe a device was taken away: rune refuses it, before any write."""
    cfg = base_config(["sleep", "100"])
    name = own_cgroup(cfg, tmp_path)
    cfg["linux"]["resources"] = json.loads(json.dumps(CRI_CREATED))
    rune("run", "-d", "--bundle", bundle(cfg), "cri2", check=True)
    changed = json.loads(CRI_UPDATE)
    changed["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"})
    r = rune("update", "--resources", "-", "cri2", input=json.dumps(changed).encode(), stdout=subprocess.PIPE,
             stderr=subprocess.PIPE)  # fmt: skip
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1, err
    assert "rune update: linux.resources.devices: differs from the device rules the container was created with" in err
    assert read(f"/sys/fs/cgroup/memory/{name}/memory.limit_in_bytes") == "134217728"
