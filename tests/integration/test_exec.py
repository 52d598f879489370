"""rune exec, ps, pause/resume against real containers."""

from __future__ import annotations

import json
import os

import pytest

from inclavare.testing.bundles import base_config
from inclavare.testing.containers import status, wait_status

pytestmark = pytest.mark.root


@pytest.fixture
def running(rune, bundle):
    b = bundle(base_config(["sleep", "100"]))
    rune("run", "-d", "--bundle", b, "x1", check=True)
    return "x1"


def test_exec_stdio_exit_and_overrides(rune, running):
    r = rune("exec", "-e", "FOO=bar", "--user", "10:10", "--cwd", "/home/test", running,
             "sh", "-c", 'echo "$FOO $(id -u):$(id -g) $(pwd)"; echo e >&2; exit 5')  # fmt: skip
    assert (r.returncode, r.stdout, r.stderr) == (5, "bar 10:10 /home/test\n", "e\n")


def test_exec_shares_namespaces_and_cgroup(rune, running):
    init_pid = json.loads(rune("state", running).stdout)["pid"]
    script = "for n in /proc/1/ns/pid /proc/self/ns/pid /proc/self/ns/mnt; do readlink $n; done; hostname"
    out = rune("exec", running, "sh", "-c", script, check=True).stdout.split()
    assert out[0] == out[1]  # same pid namespace as init
    assert out[2] == os.readlink(f"/proc/{init_pid}/ns/mnt")
    assert out[3] == "rune"


def test_exec_process_file_and_detach(rune, running, tmp_path):
    proc = {"args": ["sleep", "30"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    pid_file = tmp_path / "pid"
    rune("exec", "-d", "--process", str(tmp_path / "p.json"), "--pid-file", str(pid_file), running, check=True)
    pid = int(pid_file.read_text())
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"30"]
    assert pid in json.loads(rune("ps", "--format", "json", running, check=True).stdout)


def test_exec_errors(rune, running, bundle):
    r = rune("exec", running, "/no/such/program")
    assert r.returncode == 1
    assert "no such file or directory" in r.stderr
    assert rune("exec", "nosuch", "true").returncode == 1
    b = bundle(base_config(["true"]))
    rune("run", "--bundle", b, "--keep", "gone", check=True)
    r = rune("exec", "gone", "true")
    assert r.returncode == 1
    assert "stopped" in r.stderr


def test_pause_resume(rune, running):
    rune("pause", running, check=True)
    assert status(rune, running) == "paused"
    assert rune("pause", running).returncode == 1
    rune("resume", running, check=True)
    assert status(rune, running) == "running"
    assert rune("resume", running).returncode == 1
    assert rune("exec", running, "true").returncode == 0


def test_ps_table(rune, running):
    out = rune("ps", running, check=True).stdout.splitlines()
    assert out[0].split()[:2] == ["UID", "PID"]
    assert any("sleep 100" in line for line in out[1:])


def test_kill_all(rune, running):
    rune("exec", "-d", running, "sleep", "50", check=True)
    assert len(json.loads(rune("ps", "-f", "json", running).stdout)) == 2
    rune("kill", "--all", running, "KILL", check=True)
    wait_status(rune, running, "stopped", timeout=5)
