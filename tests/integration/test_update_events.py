"""rune update and rune events against real containers and cgroups."""

from __future__ import annotations

import json
import subprocess

import pytest

from inclavare.testing.bundles import base_config

pytestmark = pytest.mark.root


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_update_flags_and_resources_file(rune, bundle, tmp_path):
    rune("run", "-d", "--bundle", bundle(base_config(["sleep", "100"])), "upd", check=True)
    rune("update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "50", "--cpu-share", "512", "upd",
         check=True)  # fmt: skip
    assert read("/sys/fs/cgroup/memory/upd/memory.limit_in_bytes") == str(64 << 20)
    assert read("/sys/fs/cgroup/pids/upd/pids.max") == "50"
    assert read("/sys/fs/cgroup/cpu/upd/cpu.shares") == "512"
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"pids": {"limit": 77}}))
    rune("update", "-r", str(res), "upd", check=True)
    assert read("/sys/fs/cgroup/pids/upd/pids.max") == "77"
    with open(f"{rune.root}/upd/state.json") as f:
        saved = json.load(f)["config"]["linux"]["resources"]
    assert saved["pids"]["limit"] == 77
    assert rune("update", "--memory", "lots", "upd").returncode == 1


def test_events_stats_and_oom(rune, bundle):
    cfg = base_config(["sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 100"])
    cfg["linux"]["resources"]["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
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
