"""Enclave containers through rune with the fixture PALs (v1, v2, v3).

The fixture PALs (tests/fixtures/pal) are passthrough enclave runtimes: they
run the program in a child of the init-runelet, which lets these tests check
everything rune does around the PAL API (pal_init during create, the
entrypoint on start, signals, exec through the agent, attest) end to end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from inclavare.testing.bundles import base_config
from inclavare.testing.containers import status, wait_for, wait_status

pytestmark = pytest.mark.root


def enclave_config(args: list[str], pal: str, runtime_args: str = "debug") -> dict:
    cfg = base_config(args)
    cfg["annotations"] = {"enclave.type": "software", "enclave.runtime.path": pal, "enclave.runtime.args": runtime_args}
    return cfg


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_run_stdio_and_exit_code(rune, bundle, pal, version):
    b = bundle(enclave_config(["sh", "-c", "echo out $0; echo err >&2; exit 4"], pal(version)))
    r = rune("run", "--bundle", b, f"run-{version}")
    assert (r.returncode, r.stdout, r.stderr) == (4, "out sh\n", "err\n")


def test_env_is_stripped_of_enclave_variables(rune, bundle, pal):
    cfg = base_config(["sh", "-c", "env | grep -c ENCLAVE_ || true"])
    cfg["process"]["env"] += ["ENCLAVE_TYPE=software", f"ENCLAVE_RUNTIME_PATH={pal('v2')}"]
    r = rune("run", "--bundle", bundle(cfg), "env")
    assert (r.returncode, r.stdout.strip()) == (0, "0")


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_create_start_exec_kill_delete(rune, bundle, pal, version, tmp_path):
    script = "trap 'echo got TERM; exit 42' TERM; while true; do sleep 0.05; done"
    b = bundle(enclave_config(["sh", "-c", script], pal(version)))
    cid = f"life-{version}"
    out = tmp_path / "out"
    with open(out, "w") as f:
        rune("create", "--bundle", b, cid, stdout=f, check=True)
    assert status(rune, cid) == "created"
    state = json.loads(rune("state", cid).stdout)
    rune("start", cid, check=True)
    assert status(rune, cid) == "running"
    r = rune("exec", "-e", "FOO=a b  c", cid, "sh", "-c", 'echo "[$FOO]" "$0"; exit 9', "one arg")
    assert (r.returncode, r.stdout) == (9, "[a b  c] one arg\n")  # no space-joining of argv or env
    rune("kill", cid, "TERM", check=True)
    wait_status(rune, cid, "stopped")
    assert "got TERM" in out.read_text()
    rune("delete", cid, check=True)
    assert status(rune, cid) == "gone"
    assert state["pid"] > 0


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_term_reaches_the_programs_trap_and_run_returns_its_status(rune, rune_fg, bundle, pal, version):
    """TERM goes through pal_kill to the program's own trap, and the status the
    trap exits with comes back through pal_exec as the container's, which
    `rune run` returns (another signal, or a status lost on the way, would not
    give 42)."""
    script = "trap 'echo got TERM; exit 42' TERM; echo trapped; while true; do sleep 0.05; done"
    cid = f"term-{version}"
    fg = rune_fg("run", "--bundle", bundle(enclave_config(["sh", "-c", script], pal(version))), cid,
                 stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert fg.stdout.readline() == "trapped\n"  # the trap is set
    rune("kill", cid, "TERM", check=True)
    assert fg.wait(timeout=10) == 42
    assert fg.stdout.read() == "got TERM\n"


def test_v1_cannot_signal_so_a_stop_request_stops(rune, rune_fg, bundle, pal):
    """v1 has no pal_kill: the init-runelet destroys the enclave itself and
    exits 128+TERM (runtime/process/runelet.py); KILL would give 128+9."""
    fg = rune_fg("run", "--bundle", bundle(enclave_config(["sleep", "100"], pal("v1"))), "v1kill")
    wait_status(rune, "v1kill", "running")
    rune("kill", "v1kill", "TERM", check=True)
    assert fg.wait(timeout=10) == 128 + signal.SIGTERM
    assert status(rune, "v1kill") == "gone"  # `rune run` deleted it


def test_exec_detached_gives_a_waitable_pid(rune, bundle, pal, tmp_path):
    b = bundle(enclave_config(["sleep", "100"], pal("v2")))
    rune("run", "-d", "--bundle", b, "det", check=True)
    pid_file = tmp_path / "pid"
    rune("exec", "-d", "--pid-file", str(pid_file), "det", "sh", "-c", "exit 5", check=True)
    pid = int(pid_file.read_text())
    from inclavare._sys.proc import is_alive

    wait_for(lambda: not is_alive(pid, None), f"exec'd process {pid} to end")  # the runelet relays its exit


def test_exec_refuses_options_that_cannot_apply_in_an_enclave(rune, bundle, pal):
    b = bundle(enclave_config(["sleep", "100"], pal("v2")))
    rune("run", "-d", "--bundle", b, "hostopts", check=True)
    r = rune("exec", "--user", "1000", "--cap", "CAP_SYS_ADMIN", "hostopts", "true")
    assert r.returncode == 1
    assert "--user, --cap cannot apply to a process run in an enclave" in r.stderr
    assert rune("exec", "hostopts", "true").returncode == 0


def test_attest_local_report(rune, bundle, pal, tmp_path):
    b = bundle(enclave_config(["sleep", "100"], pal("v3")))
    rune("run", "-d", "--bundle", b, "att", check=True)
    report = tmp_path / "report.bin"
    rune("attest", "--reportFile", str(report), "att", check=True)
    assert len(report.read_bytes()) == 432
    # A software TEE has no quoting service: its remote evidence is the signed report itself.
    assert len(bytes.fromhex(rune("attest", "--isRA", "att", check=True).stdout.strip())) == 432


def test_attest_needs_v3(rune, bundle, pal):
    b = bundle(enclave_config(["sleep", "100"], pal("v2")))
    rune("run", "-d", "--bundle", b, "att2", check=True)
    r = rune("attest", "att2")
    assert r.returncode == 1
    assert "liberpal-v2.so" in r.stderr


def test_failing_pal_init_fails_create_and_leaves_nothing(rune, bundle, pal, state_root):
    b = bundle(enclave_config(["true"], pal("v2"), "fail=init:-22"))
    r = rune("create", "--bundle", b, "badinit")
    assert r.returncode == 1
    assert "enclave runtime liberpal-v2.so: pal_init failed: -22 (Invalid argument)" in r.stderr
    assert r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(state_root, "badinit"))
    assert not os.path.exists("/sys/fs/cgroup/pids/badinit")


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        ("/nonexistent/liberpal.so", "/nonexistent/liberpal.so"),
        ("no-such-runtime", "no-such-runtime"),
    ],
)
def test_bad_runtime_path(rune, bundle, runtime, message, state_root):
    r = rune("create", "--bundle", bundle(enclave_config(["true"], runtime)), "badpath")
    assert r.returncode == 1
    assert message in r.stderr
    assert not os.path.exists(os.path.join(state_root, "badpath"))


@pytest.mark.parametrize(
    ("variant", "message"), [("v3-v4", "unsupported pal api version 4"), ("v2-noexec", "pal_exec")]
)
def test_version_and_symbol_errors(rune, bundle, pal, variant, message):
    r = rune("create", "--bundle", bundle(enclave_config(["true"], pal(variant))), "badpal")
    assert r.returncode == 1
    assert message in r.stderr


def test_intel_sgx_without_hardware_points_to_software(rune, bundle, pal):
    cfg = enclave_config(["true"], pal("v2"))
    cfg["annotations"]["enclave.type"] = "intelSgx"
    r = rune("create", "--bundle", bundle(cfg), "sgx")
    if os.path.exists("/dev/sgx_enclave"):
        pytest.skip("this host has SGX")
    assert r.returncode == 1
    assert "software" in r.stderr
