"""Rootless: rune as an unprivileged user, on a `rune spec --rootless` bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

pytestmark = pytest.mark.root  # root sets the stage, then drops to `nobody` with setpriv

NOBODY = 65534


@pytest.fixture
def rootless(rootfs_cache):
    top = tempfile.mkdtemp(prefix="rune-rootless-")
    os.chmod(top, 0o755)
    bundle, state = os.path.join(top, "bundle"), os.path.join(top, "run")
    os.makedirs(state)
    os.chown(state, NOBODY, NOBODY)
    os.makedirs(bundle)
    os.chown(bundle, NOBODY, NOBODY)
    shutil.copytree(rootfs_cache, os.path.join(bundle, "rootfs"), symlinks=True)
    rune_bin = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "build", "rune")

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
               "env", f"XDG_RUNTIME_DIR={state}", rune_bin, *args]  # fmt: skip
        # files, not pipes: a detached container keeps its stdio open
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(cmd, cwd=bundle, stdout=out, stderr=err, timeout=60)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(), err.read().decode()
        return proc

    yield run, bundle, state
    for cid in os.listdir(os.path.join(state, "rune")) if os.path.isdir(os.path.join(state, "rune")) else []:
        run("delete", "--force", cid)
    shutil.rmtree(top, ignore_errors=True)


def test_rootless_lifecycle(rootless):
    run, bundle, state = rootless
    assert run("spec", "--rootless").returncode == 0
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": NOBODY, "size": 1}]
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; exit 3"]
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    r = run("run", "fg")
    assert r.returncode == 3, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(NOBODY), "1"]
    assert os.path.isdir(os.path.join(state, "rune"))  # $XDG_RUNTIME_DIR/rune, as runc

    cfg["process"]["args"] = ["sleep", "100"]
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    assert run("run", "-d", "bg").returncode == 0
    assert run("exec", "bg", "true").returncode == 0
    assert run("kill", "bg", "KILL").returncode == 0
    assert run("delete", "--force", "bg").returncode == 0
    assert run("state", "bg").returncode == 1


def test_rootless_resources_need_a_cgroup(rootless):
    run, bundle, state = rootless
    run("spec", "--rootless")
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["linux"]["resources"] = {"pids": {"limit": 10}}
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    r = run("create", "lim")
    assert r.returncode == 1
    assert "linux.resources: rootless: no writable cgroup" in r.stderr
    assert not os.path.exists(os.path.join(state, "rune", "lim"))
