"""Failures as containerd sees them: one line in the JSON log (``--log FILE
--log-format json``) that names the step, the object and the reason — never a
bare "Permission denied" (which the shim turns into "Permission denied: unknown")."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from inclavare.testing.bundles import base_config

pytestmark = pytest.mark.root


def logged(rune, tmp_path, *args: str, prefix: tuple[str, ...] = ()) -> tuple[int, list[dict]]:
    """Run rune as containerd's shim does; (exit status, the JSON log records)."""
    log = tmp_path / "rune.log"
    cmd = [*prefix, rune("--version").args[0], "--root", rune.root, "--log", str(log), "--log-format", "json", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return r.returncode, records


def test_oom_score_adj_refused_names_the_field_and_the_file(rune, bundle, tmp_path, state_root):
    """Lowering oom_score_adj needs CAP_SYS_RESOURCE (proc(5)); without it the
    write fails. The shim must be told which write, not just EACCES."""
    cfg = base_config(["true"])
    cfg["process"]["oomScoreAdj"] = -500
    b = bundle(cfg)
    code, records = logged(rune, tmp_path, "create", "--bundle", b, "oom", prefix=("setpriv", "--bounding-set",
                                                                                  "-sys_resource"))  # fmt: skip
    assert code == 1
    assert [r["level"] for r in records] == ["error"]
    assert re.fullmatch(r"process\.oomScoreAdj: writing /proc/\d+/oom_score_adj: Permission denied", records[0]["msg"])
    assert not os.path.exists(os.path.join(state_root, "oom"))


def test_failure_in_the_intermediate_names_its_step(rune, bundle, tmp_path, state_root):
    """An offset that would put the clock before boot is refused by the kernel
    (time_namespaces(7): ERANGE); the write happens in the intermediate process."""
    cfg = base_config(["true"])
    cfg["linux"]["namespaces"].append({"type": "time"})
    cfg["linux"]["timeOffsets"] = {"monotonic": {"secs": -(10**10), "nanosecs": 0}}
    code, records = logged(rune, tmp_path, "create", "--bundle", bundle(cfg), "timens")
    assert code == 1
    assert [r["msg"] for r in records] == [
        "linux.timeOffsets: writing /proc/self/timens_offsets: Numerical result out of range"
    ]
    assert not os.path.exists(os.path.join(state_root, "timens"))


def test_update_with_a_missing_resources_file(rune, bundle, tmp_path):
    cfg = base_config(["sleep", "30"])
    cfg["linux"]["cgroupsPath"] = f"/rune-errors-{os.getpid()}"  # not shared with another run
    rune("run", "-d", "--bundle", bundle(cfg), "upd404", check=True)
    code, records = logged(rune, tmp_path, "update", "--resources", str(tmp_path / "nope.json"), "upd404")
    assert code == 1
    assert [r["msg"] for r in records] == [f"--resources {tmp_path / 'nope.json'}: No such file or directory"]


def test_list_names_a_corrupt_state_and_lists_the_others(rune, bundle, state_root):
    """runc's list warns "load container X: ..." and goes on; rune skipped it in silence."""
    rune("run", "-d", "--bundle", bundle(base_config(["sleep", "10"])), "good", check=True)
    os.makedirs(os.path.join(state_root, "bad"))
    with open(os.path.join(state_root, "bad", "state.json"), "w") as f:
        f.write('{"init_process_pid": "not a pid"}')
    r = rune("list", "-q")
    assert (r.returncode, r.stdout) == (0, "good\n")
    assert (
        f"load container bad: {state_root}/bad/state.json: corrupt state: init_process_pid is not an integer"
        in r.stderr
    )
    os.remove(os.path.join(state_root, "bad", "state.json"))
