"""containerd-shim-rune-v2 under a real containerd 1.6, driven with `ctr --runtime io.containerd.rune.v2`.

The daemon finds the shim on its $PATH (build/ first), and the shim runs
build/rune from there; with no runtime options (ctr sends none for a runtime
type that is not runc's) rune's state is in /run/containerd/rune/<namespace>.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from crikit.images import BUSYBOX_IMAGE, HELLO_WASM_IMAGE
from shimkit import CTR_NAMESPACE

from inclavare.testing.containers import wait_for

pytestmark = pytest.mark.root
RUNTIME = ["--runtime", "io.containerd.rune.v2"]
DEFAULT_ROOT = "/run/containerd/rune"
ENCLAVE = ["--annotation", "enclave.type=software", "--annotation", "enclave.runtime.path=wasm",
           "--annotation", "enclave.runtime.args=manifest=/app/hello-wasm.toml"]  # fmt: skip


def ctr(daemon, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*daemon.ctr, "-n", CTR_NAMESPACE, *args], capture_output=True, text=True,
                          timeout=timeout, check=False, **kw)  # fmt: skip


def task_status(daemon, cid: str) -> str:
    for line in ctr(daemon, "task", "ls").stdout.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return fields[2]
    return ""


def rune_state(cid: str) -> subprocess.CompletedProcess[str]:
    from shimkit import RUNE

    return subprocess.run([RUNE, "--root", os.path.join(DEFAULT_ROOT, CTR_NAMESPACE), "state", cid],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_plain_container_output_and_exit_code(shim_containerd):
    out = ctr(shim_containerd, "run", "--rm", *RUNTIME, BUSYBOX_IMAGE, "c-plain",
              "sh", "-c", "echo hello-from-shim-rune; exit 7")  # fmt: skip
    assert (out.returncode, out.stdout) == (7, "hello-from-shim-rune\n")


def test_enclave_container_runs_the_wasm_sample(shim_containerd):
    """The signed sample module, in the wasm enclave runtime, asked for by annotations."""
    out = ctr(shim_containerd, "run", "--rm", *RUNTIME, *ENCLAVE, HELLO_WASM_IMAGE, "c-wasm",
              "/app/hello.wasm", "exit=3")  # fmt: skip
    assert out.returncode == 3, out.stderr
    assert "argv[0]=/app/hello.wasm" in out.stdout


def test_exec_kill_and_exit_status(shim_containerd):
    cid = "c-long"
    run = ctr(shim_containerd, "run", "-d", *RUNTIME, BUSYBOX_IMAGE, cid,
              "sh", "-c", 'trap "exit 42" TERM; while :; do sleep 0.1; done')  # fmt: skip
    assert run.returncode == 0, run.stderr
    wait_for(lambda: task_status(shim_containerd, cid) == "RUNNING", "the task to run")
    assert rune_state(cid).returncode == 0  # rune has it, in the shim's default root
    out = ctr(shim_containerd, "task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo in-exec; exit 3")
    assert (out.returncode, out.stdout) == (3, "in-exec\n")
    assert ctr(shim_containerd, "task", "kill", "-s", "SIGTERM", cid).returncode == 0
    wait_for(lambda: task_status(shim_containerd, cid) == "STOPPED", "the trap to end the task")
    out = ctr(shim_containerd, "task", "delete", cid)
    assert "exit code 42" in out.stdout + out.stderr
    assert ctr(shim_containerd, "container", "delete", cid).returncode == 0
    assert rune_state(cid).returncode != 0


def test_oom_event_reaches_containerd(shim_containerd):
    events = subprocess.Popen([*shim_containerd.ctr, "events"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # subscribed
        out = ctr(shim_containerd, "run", "--rm", *RUNTIME, "--memory-limit", str(16 << 20), BUSYBOX_IMAGE, "c-oom",
                  "sh", "-c", 'x=aaaaaaaa; while :; do x="$x$x"; done')  # fmt: skip
        assert out.returncode == 137
        time.sleep(0.5)
    finally:
        events.terminate()
        text = events.communicate(timeout=10)[0]
    oom = [line for line in text.splitlines() if "/tasks/oom" in line]
    assert oom, text
    assert CTR_NAMESPACE in oom[0]
    assert "c-oom" in oom[0]


def test_a_confidential_runtime_config_refuses_a_plain_container_in_one_line(shim_containerd):
    """ctr --runtime-config-path names the shim's configuration (runtimeoptions.v1.Options)."""
    config = os.path.join(shim_containerd.base, "rune-shim-confidential.toml")
    out = ctr(shim_containerd, "run", "--rm", *RUNTIME, "--runtime-config-path", config, BUSYBOX_IMAGE, "c-refused",
              "true")  # fmt: skip
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "OCI runtime create failed" in lines[0]
    assert "this runtime runs enclave containers only (rune --enclave-required)" in lines[0]
    with open(shim_containerd.log, errors="replace") as f:
        assert "Traceback" not in f.read()
