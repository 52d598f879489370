"""samples/pause, the pod sandbox process: it exits 0 on SIGTERM/SIGINT and,
as PID 1 of a pod that shares its PID namespace, reaps orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from crikit.client import cri as api
from crikit.images import pause_binary

from inclavare.testing.containers import wait_for

pytestmark = pytest.mark.root


def children(ppid: int) -> list[tuple[int, str, str]]:
    """(pid, comm, state) of the processes whose parent is `ppid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if int(parent) == ppid:
                found.append((int(entry), comm, state))
    return found


def signals_taken(pid: int) -> bool:
    """pause has blocked SIGTERM/SIGINT/SIGCHLD (before that, their default action
    would kill it). While it waits in sigwait(3) the kernel moves the mask aside
    (SigBlk reads 0), so waiting in rt_sigtimedwait counts too."""
    with open(f"/proc/{pid}/status") as f:
        blocked = int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)
    if all(blocked & (1 << (s - 1)) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)):
        return True
    with open(f"/proc/{pid}/wchan") as f:
        return "sigtimedwait" in f.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_pause_exits_zero_on_signal(sig):
    proc = subprocess.Popen([pause_binary()], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: signals_taken(proc.pid), "pause to block its signals", timeout=5, interval=0.01)
        proc.send_signal(sig)
        assert proc.wait(timeout=5) == 0
        assert f"signal {int(sig)}" in proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()


def test_pause_reaps_orphans_in_a_shared_pid_namespace(containerd, cri, pods):
    pod = pods("shared-pid", share_pid=True)
    pause_pid = containerd.rune_state(pod.id)["pid"]
    # the subshell exits at once: its `sleep 1` is orphaned, and the PID namespace's
    # init (pause) inherits it
    cid = pod.start("orphaner", ["sh", "-c", "(sleep 1 &); exec sleep 300"])
    cri.wait_container(cid, api.CONTAINER_RUNNING)
    deadline = time.monotonic() + 5
    while not any(comm == "sleep" for _, comm, _ in children(pause_pid)):
        assert time.monotonic() < deadline, f"no orphan reparented to pause: {children(pause_pid)}"
        time.sleep(0.02)
    # once it exits, pause must reap it: no zombie left under it
    deadline = time.monotonic() + 5
    while children(pause_pid):
        assert time.monotonic() < deadline, f"pause left {children(pause_pid)} unreaped"
        time.sleep(0.05)
