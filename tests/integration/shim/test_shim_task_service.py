"""The Task service over ttrpc, as containerd calls it, with real containers run by build/rune.

Each test starts the shim with `start` (flags, options on stdin, $TTRPC_ADDRESS
as containerd gives them), calls RPCs and checks the answers, the error codes
containerd maps them by, the task events the shim forwards and what rune
really did (its own state root).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import shimkit
from shimkit import fifos

from inclavare.shim import pb
from inclavare.shim.client import CallError
from inclavare.shim.errors import ALREADY_EXISTS, FAILED_PRECONDITION, NOT_FOUND, UNIMPLEMENTED, UNKNOWN
from inclavare.testing.containers import wait_for

pytestmark = pytest.mark.root
CREATED, RUNNING, STOPPED, PAUSED = 1, 2, 3, 4


def read_fifo_to_eof(fd: int, timeout: float = 10.0) -> bytes:
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        if not chunk:
            return out
        out += chunk
    raise AssertionError(f"no EOF on the fifo (got {out!r})")


def process_spec(args: list[str]) -> object:
    """An ExecProcessRequest's spec as containerd's client sends it: the OCI process, JSON, in an Any."""
    value = json.dumps({"args": args, "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}).encode()
    return pb.wkt.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Process", value=value)


def open_client_side(paths: dict[str, str]) -> dict[str, int]:
    """containerd's client end: readers on stdout/stderr (non-blocking), opened before Create."""
    return {s: os.open(paths[s], os.O_RDONLY | os.O_NONBLOCK) for s in ("stdout", "stderr")}


def test_lifecycle_exit_code_stdio_and_events(env):
    cid = "life"
    bundle = env.bundle(cid, ["sh", "-c", "read line; echo out:$line; echo err >&2; exit 7"])
    io = fifos(env.base, cid)
    client_fds = open_client_side(io)
    shim = env.shim()
    pid = shim.create(cid, bundle, stdin=io["stdin"], stdout=io["stdout"], stderr=io["stderr"])
    assert pid > 0
    state = shim.call("State", pb.api.StateRequest(id=cid))
    assert (state.status, state.pid, state.bundle, state.stdout) == (CREATED, pid, bundle, io["stdout"])
    assert env.rune("ns", "state", cid).returncode == 0  # rune really has it, in <Root>/<namespace>
    assert shim.call("Start", pb.api.StartRequest(id=cid)).pid == pid
    stdin = os.open(io["stdin"], os.O_WRONLY)
    os.write(stdin, b"hello\n")
    os.close(stdin)
    waited = shim.call("Wait", pb.api.WaitRequest(id=cid))
    assert waited.exit_status == 7
    assert waited.exited_at.seconds > 0
    assert read_fifo_to_eof(client_fds["stdout"]) == b"out:hello\n"
    assert read_fifo_to_eof(client_fds["stderr"]) == b"err\n"
    assert shim.call("State", pb.api.StateRequest(id=cid)).status == STOPPED
    deleted = shim.call("Delete", pb.api.DeleteRequest(id=cid))
    assert (deleted.pid, deleted.exit_status) == (pid, 7)
    assert env.rune("ns", "state", cid).returncode != 0  # gone from rune
    exit_event = env.sink.wait_topic("/tasks/delete", cid)  # forwarded after the fact: wait for it
    assert (exit_event.pid, exit_event.exit_status) == (pid, 7)
    # the order containerd relies on: create, start, exit (before delete)
    assert env.sink.topics(cid) == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    exit_ev = next(e for t, e in env.sink.events if t == "/tasks/exit")
    assert (exit_ev.container_id, exit_ev.id, exit_ev.pid, exit_ev.exit_status) == (cid, cid, pid, 7)
    with pytest.raises(CallError) as err:
        shim.call("State", pb.api.StateRequest(id=cid))
    assert (err.value.code, str(err.value)) == (NOT_FOUND, "container not created")


def test_runes_refusal_reaches_containerd_as_the_runc_shim_words_it(env):
    """rune's last error line in log.json, after "OCI runtime create failed:"."""
    cid = "bad"
    bundle = env.bundle(cid, ["true"])
    with open(os.path.join(bundle, "config.json")) as f:
        text = f.read()
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(text.replace('"args": [', '"args": 5, "x": ['))
    shim = env.shim()
    with pytest.raises(CallError) as err:
        shim.create(cid, bundle)
    assert err.value.code == UNKNOWN
    assert (
        str(err.value)
        == f"OCI runtime create failed: {bundle}/config.json: process.args: must be an array, not a number"
    )
    assert "\n" not in str(err.value)
    assert "Traceback" not in shim.shim_log()


def test_enclave_required_handler_refuses_a_plain_container(env):
    """A handler whose configuration file says enclave_required: rune --enclave-required."""
    cid = "plain"
    bundle = env.bundle(cid, ["true"])
    shim = env.shim()
    with open(shim.config, "a") as f:
        f.write("enclave_required = true\n")
    with pytest.raises(CallError) as err:
        shim.create(cid, bundle)
    assert str(err.value).startswith("OCI runtime create failed: ")
    assert "this runtime runs enclave containers only (rune --enclave-required)" in str(err.value)
    assert env.rune("ns", "list").stdout.count("plain") == 0  # nothing was left behind


def test_exec_kill_pause_resume_pids_and_errors(env):
    cid = "long"
    bundle = env.bundle(cid, ["sh", "-c", 'trap "exit 42" TERM; while :; do sleep 0.1; done'])
    shim = env.shim()
    pid = shim.create(cid, bundle)
    shim.call("Start", pb.api.StartRequest(id=cid))
    spec = process_spec(["sh", "-c", "exit 3"])
    shim.call("Exec", pb.api.ExecProcessRequest(id=cid, exec_id="e1", spec=spec))
    with pytest.raises(CallError) as err:
        shim.call("Exec", pb.api.ExecProcessRequest(id=cid, exec_id="e1", spec=spec))
    assert (err.value.code, str(err.value)) == (ALREADY_EXISTS, "id e1")
    exec_pid = shim.call("Start", pb.api.StartRequest(id=cid, exec_id="e1")).pid
    assert shim.call("Wait", pb.api.WaitRequest(id=cid, exec_id="e1")).exit_status == 3
    assert exec_pid != pid
    shim.call("Delete", pb.api.DeleteRequest(id=cid, exec_id="e1"))
    # events are forwarded after the fact: wait for the exit's, then check the order
    wait_for(lambda: "/tasks/exit" in env.sink.topics(cid), "the exec's exit event")
    assert env.sink.topics(cid)[2:5] == ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"]

    sleeper = pb.wkt.Any(
        type_url=spec.type_url, value=b'{"args": ["sleep", "30"], "cwd": "/", "user": {"uid": 0, "gid": 0}}'
    )
    shim.call("Exec", pb.api.ExecProcessRequest(id=cid, exec_id="e2", spec=sleeper))
    e2 = shim.call("Start", pb.api.StartRequest(id=cid, exec_id="e2")).pid
    procs = shim.call("Pids", pb.api.PidsRequest(id=cid)).processes
    assert {pid, e2} <= {p.pid for p in procs}  # (and the loop's `sleep 0.1` now and then)
    info = next(p.info for p in procs if p.pid == e2)
    assert info.type_url == "containerd.runc.v1.ProcessDetails"
    assert pb.runc.ProcessDetails.FromString(info.value).exec_id == "e2"

    shim.call("Pause", pb.api.PauseRequest(id=cid))
    assert shim.call("State", pb.api.StateRequest(id=cid)).status == PAUSED
    assert shim.call("State", pb.api.StateRequest(id=cid, exec_id="e2")).status == PAUSED
    with pytest.raises(CallError) as err:
        shim.call("Exec", pb.api.ExecProcessRequest(id=cid, exec_id="e3", spec=spec))
    assert (err.value.code, str(err.value)) == (FAILED_PRECONDITION, "cannot exec in a paused process")
    shim.call("Resume", pb.api.ResumeRequest(id=cid))
    assert shim.call("State", pb.api.StateRequest(id=cid)).status == RUNNING

    with pytest.raises(CallError) as err:
        shim.call("Delete", pb.api.DeleteRequest(id=cid))
    assert (err.value.code, str(err.value)) == (FAILED_PRECONDITION, "cannot delete a running process")
    with pytest.raises(CallError) as err:
        shim.call("Checkpoint", pb.api.CheckpointTaskRequest(id=cid, path="/tmp/cp"))
    assert err.value.code == UNIMPLEMENTED
    assert "checkpoint is not supported" in str(err.value)

    shim.call("Kill", pb.api.KillRequest(id=cid, signal=signal.SIGTERM))
    assert shim.call("Wait", pb.api.WaitRequest(id=cid)).exit_status == 42  # the trap's status
    # the exec'd process died with the container's PID namespace
    assert shim.call("Wait", pb.api.WaitRequest(id=cid, exec_id="e2")).exit_status == 137
    with pytest.raises(CallError) as err:  # checkKillError: a finished process is NotFound
        shim.call("Kill", pb.api.KillRequest(id=cid, signal=signal.SIGKILL))
    assert (err.value.code, str(err.value)) == (NOT_FOUND, "process already finished")
    env.sink.wait_topic("/tasks/resumed", cid)
    assert env.sink.topics(cid).count("/tasks/paused") == 1
    shim.call("Delete", pb.api.DeleteRequest(id=cid))


def test_stats_and_update_through_the_cgroup(env):
    cid = "stats"
    bundle = env.bundle(cid, ["sleep", "30"])
    shim = env.shim()
    shim.create(cid, bundle)
    shim.call("Start", pb.api.StartRequest(id=cid))
    stats = shim.call("Stats", pb.api.StatsRequest(id=cid)).stats
    if stats.type_url == "io.containerd.cgroups.v1.Metrics":
        metrics = pb.cg1.Metrics.FromString(stats.value)
        assert metrics.memory.usage.usage > 0
        assert metrics.pids.current == 1
    else:
        metrics = pb.cg2.Metrics.FromString(stats.value)
        assert metrics.memory.usage > 0
    resources = pb.wkt.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
                           value=b'{"memory": {"limit": 67108864}, "pids": {"limit": 50}}')  # fmt: skip
    shim.call("Update", pb.api.UpdateTaskRequest(id=cid, resources=resources))
    stats = shim.call("Stats", pb.api.StatsRequest(id=cid)).stats
    if stats.type_url == "io.containerd.cgroups.v1.Metrics":
        metrics = pb.cg1.Metrics.FromString(stats.value)
        assert (metrics.memory.usage.limit, metrics.pids.limit) == (64 << 20, 50)
    shim.call("Kill", pb.api.KillRequest(id=cid, signal=9))
    assert shim.call("Wait", pb.api.WaitRequest(id=cid)).exit_status == 137
    shim.call("Delete", pb.api.DeleteRequest(id=cid))


def test_oom_is_published(env):
    cid = "oom"
    # 16 MiB of memory, then a shell that keeps growing a string until the OOM killer ends it
    bundle = env.bundle(cid, ["sh", "-c", 'x=aaaaaaaa; while :; do x="$x$x"; done'])
    import json

    from inclavare.testing.bundles import base_config  # noqa: F401 - the spec below extends its linux part

    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["linux"].setdefault("resources", {})["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
    with open(path, "w") as f:
        json.dump(spec, f)
    shim = env.shim()
    shim.create(cid, bundle)
    shim.call("Start", pb.api.StartRequest(id=cid))
    assert shim.call("Wait", pb.api.WaitRequest(id=cid)).exit_status == 137
    env.sink.wait_topic("/tasks/oom", cid)
    shim.call("Delete", pb.api.DeleteRequest(id=cid))


def test_terminal_through_the_console_socket(env):
    cid = "tty"
    bundle = env.bundle(cid, ["sh", "-c", "stty size; [ -t 1 ] && echo is-a-tty; exit 5"])
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = True
    with open(path, "w") as f:
        json.dump(spec, f)
    io = fifos(env.base, cid)
    out = os.open(io["stdout"], os.O_RDONLY | os.O_NONBLOCK)
    shim = env.shim()
    shim.create(cid, bundle, stdout=io["stdout"], terminal=True)
    shim.call("ResizePty", pb.api.ResizePtyRequest(id=cid, width=101, height=33))
    shim.call("Start", pb.api.StartRequest(id=cid))
    assert shim.call("Wait", pb.api.WaitRequest(id=cid)).exit_status == 5
    text = read_fifo_to_eof(out).decode().replace("\r", "")
    assert text.splitlines() == ["33 101", "is-a-tty"]
    shim.call("Delete", pb.api.DeleteRequest(id=cid))


def test_one_shim_per_pod_and_shutdown_only_when_empty(env):
    """Containers of one pod (io.kubernetes.cri.sandbox-id) share one shim."""
    pod = {"io.kubernetes.cri.sandbox-id": "pod1"}
    a = env.bundle("pod1", ["sleep", "30"], annotations=pod)
    b = env.bundle("c2", ["sleep", "30"], annotations=pod)
    shim = env.shim()
    shim.create("pod1", a)
    address = shim.address
    first = shim.shim_pid()
    shim.create("c2", b)
    assert shim.address == address
    assert shim.shim_pid() == first
    with open(os.path.join(b, "address")) as f:
        assert f.read() == address  # containerd reads it back after a restart
    for cid in ("c2", "pod1"):
        shim.call("Start", pb.api.StartRequest(id=cid))
        shim.call("Kill", pb.api.KillRequest(id=cid, signal=9))
        shim.call("Wait", pb.api.WaitRequest(id=cid))
        shim.call("Delete", pb.api.DeleteRequest(id=cid))
        shim.call("Shutdown", pb.api.ShutdownRequest(id=cid))
        if cid == "c2":
            assert shim.shim_pid() == first  # the pod's sandbox is still served
    socket_path = address.removeprefix("unix://")
    wait_for(lambda: not os.path.exists(socket_path), "the shim to remove its socket", 10)
    wait_for(lambda: not os.path.exists(f"/proc/{first}") or _zombie(first), "the shim to exit", 10)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_delete_action_cleans_up_after_a_killed_shim(env):
    """containerd runs `<shim> ... delete` when the shim died: rune state and the pid with 137."""
    cid = "orphaned"
    bundle = env.bundle(cid, ["sleep", "30"])
    shim = env.shim()
    pid = shim.create(cid, bundle)
    shim.call("Start", pb.api.StartRequest(id=cid))
    shim_pid = shim.shim_pid()
    os.kill(shim_pid, signal.SIGKILL)
    wait_for(lambda: _zombie(shim_pid), "the shim to die", 10)
    out = subprocess.run([shimkit.SHIM, "-namespace", "ns", "-address", shim.containerd_address, "-id", cid,
                          "-bundle", bundle, "delete"], cwd=bundle, capture_output=True, env=shim.env(),
                         timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    resp = pb.api.DeleteResponse.FromString(out.stdout)
    assert (resp.pid, resp.exit_status) == (pid, 137)
    assert env.rune("ns", "state", cid).returncode != 0  # rune delete --force ran
    wait_for(lambda: _zombie(pid), "the container to be killed", 10)


def test_delete_of_a_task_never_started(env):
    """containerd deletes a created task when a start fails (and `ctr task delete` may): runc deletes a
    created container without --force; rune wants --force, so the shim passes it for that status."""
    cid = "never-started"
    bundle = env.bundle(cid, ["sleep", "30"])
    shim = env.shim()
    pid = shim.create(cid, bundle)
    deleted = shim.call("Delete", pb.api.DeleteRequest(id=cid))
    assert deleted.pid == pid
    assert env.rune("ns", "state", cid).returncode != 0
    wait_for(lambda: _zombie(pid), "the created init to be killed")
    env.sink.wait_topic("/tasks/delete", cid)
    assert "/tasks/exit" not in env.sink.topics(cid)  # its death after Delete is no news (upstream: no event)


def test_init_exit_kills_what_it_left_without_a_pid_namespace(env):
    """No PID namespace of its own: the kernel does not end the rest with init, the shim must
    (runc shim: ShouldKillAllOnExit, then `runc kill --all`), or a pod's shared namespace keeps them."""
    cid = "hostpid"
    bundle = env.bundle(cid, ["sh", "-c", "sleep 300 & echo $! > /tmp/child; exit 0"])
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "pid"]
    spec["root"]["readonly"] = False  # for /tmp/child
    with open(path, "w") as f:
        json.dump(spec, f)
    shim = env.shim()
    shim.create(cid, bundle)
    shim.call("Start", pb.api.StartRequest(id=cid))
    assert shim.call("Wait", pb.api.WaitRequest(id=cid)).exit_status == 0
    with open(os.path.join(bundle, "rootfs", "tmp", "child")) as f:
        child = int(f.read())  # the host's pid: the container shares our PID namespace
    wait_for(lambda: _zombie(child), "the orphaned sleep to be killed", 10)
    shim.call("Delete", pb.api.DeleteRequest(id=cid))


def test_a_second_create_of_a_live_container_changes_nothing(env):
    """The rootfs comes from containerd's mounts; a repeated Create must not unmount the live one."""
    cid = "twice"
    bundle = env.bundle(cid, ["sh", "-c", "cat /marker"])
    image = os.path.join(bundle, "rootfs")
    source = os.path.join(env.base, "image-rootfs")
    os.rename(image, source)  # the container's rootfs now arrives as a bind mount, as a snapshot does
    os.mkdir(image)
    with open(os.path.join(source, "marker"), "w") as f:
        f.write("from-the-mount\n")
    io = fifos(env.base, cid)
    out = os.open(io["stdout"], os.O_RDONLY | os.O_NONBLOCK)
    shim = env.shim()
    shim.start(cid, bundle)
    mounts = [pb.types.Mount(type="bind", source=source, options=["rbind", "ro"])]
    create = pb.api.CreateTaskRequest(id=cid, bundle=bundle, options=shim.options(), rootfs=mounts,
                                      stdout=io["stdout"])  # fmt: skip
    shim.call("Create", create)
    with pytest.raises(CallError) as err:
        shim.call("Create", create)
    assert (err.value.code, str(err.value)) == (ALREADY_EXISTS, "container twice: already exists")
    shim.call("Start", pb.api.StartRequest(id=cid))
    assert shim.call("Wait", pb.api.WaitRequest(id=cid)).exit_status == 0
    assert read_fifo_to_eof(out) == b"from-the-mount\n"
    shim.call("Delete", pb.api.DeleteRequest(id=cid))
    assert os.listdir(image) == []  # unmounted by Delete


def test_two_creates_at_once_make_one_container(env):
    """Create runs without the shim's lock until rune create: the id is taken first, or both would mount."""
    import threading

    from crikit import host

    cid = "race"
    bundle = env.bundle(cid, ["sleep", "30"])
    source = os.path.join(env.base, "race-rootfs")
    os.rename(os.path.join(bundle, "rootfs"), source)
    os.mkdir(os.path.join(bundle, "rootfs"))
    shim = env.shim()
    shim.start(cid, bundle)
    mounts = [pb.types.Mount(type="bind", source=source, options=["rbind"])]
    create = pb.api.CreateTaskRequest(id=cid, bundle=bundle, options=shim.options(), rootfs=mounts)
    results: list[object] = []

    def call() -> None:
        client = shimkit.Client(shim.address, timeout=60)
        try:
            results.append(client.call(shimkit.TASK, "Create", create, pb.api.CreateTaskResponse).pid)
        except CallError as exc:
            results.append(exc.code)
        client.close()

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = [r for r in results if isinstance(r, int) and r < 100]  # a gRPC code; else an init's pid
    assert codes == [ALREADY_EXISTS]  # not rune's "container with id exists" after a second mount
    assert len(results) == 2
    assert len(host.mounts_below(os.path.join(bundle, "rootfs"))) == 1
    shim.call("Kill", pb.api.KillRequest(id=cid, signal=9))
    shim.call("Wait", pb.api.WaitRequest(id=cid))
    shim.call("Delete", pb.api.DeleteRequest(id=cid))
