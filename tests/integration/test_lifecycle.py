"""create/start/state/kill/delete/run of real containers (root, namespaces)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from inclavare.testing.bundles import base_config
from inclavare.testing.containers import status, wait_status

pytestmark = pytest.mark.root


def test_run_foreground_exit_code_and_stdio(rune, bundle):
    b = bundle(base_config(["sh", "-c", "echo out; echo err >&2; exit 7"]))
    r = rune("run", "--bundle", b, "fg")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    assert rune("state", "fg").returncode == 1  # deleted after run


def test_create_start_state_delete(rune, bundle, tmp_path):
    b = bundle(base_config(["sh", "-c", "echo started > /tmp/x; sleep 100"]))
    pid_file = tmp_path / "pid"
    rune("create", "--bundle", b, "--pid-file", str(pid_file), "c1", check=True)
    state = json.loads(rune("state", "c1", check=True).stdout)
    assert state["status"] == "created"
    assert state["pid"] == int(pid_file.read_text())
    assert state["bundle"] == b
    rune("start", "c1", check=True)
    assert status(rune, "c1") == "running"
    assert rune("start", "c1").returncode == 1  # already started
    assert rune("delete", "c1").returncode == 1  # running: refused, no effect
    assert status(rune, "c1") == "running"
    rune("kill", "c1", "KILL", check=True)
    wait_status(rune, "c1", "stopped")
    rune("delete", "c1", check=True)
    assert rune("state", "c1").returncode == 1


def test_delete_created_needs_force(rune, bundle):
    b = bundle(base_config(["true"]))
    rune("create", "--bundle", b, "c2", check=True)
    assert rune("delete", "c2").returncode == 1
    assert status(rune, "c2") == "created"
    rune("delete", "--force", "c2", check=True)
    assert rune("state", "c2").returncode == 1


@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", "15", "sigterm"])
def test_kill_signal_forms(rune, rune_fg, bundle, sig):
    """Each spelling delivers SIGTERM itself: the container's trap for it
    sets the exit status `rune run` returns (any other signal would not)."""
    b = bundle(base_config(["sh", "-c", "trap 'exit 42' TERM; echo trapped; while true; do sleep 0.05; done"]))
    fg = rune_fg("run", "--bundle", b, "k", stdout=subprocess.PIPE, text=True)
    assert fg.stdout.readline() == "trapped\n"  # the trap is set
    rune("kill", "k", sig, check=True)
    assert fg.wait(timeout=10) == 42


def test_unknown_signal(rune, bundle):
    b = bundle(base_config(["sleep", "10"]))
    rune("run", "-d", "--bundle", b, "u", check=True)
    r = rune("kill", "u", "SIGNOPE")
    assert r.returncode == 1
    assert "unknown signal" in r.stderr


def refused(rune, *args: str) -> str:
    """The one line a refused verb prints (exit 1, no effect)."""
    r = rune(*args)
    assert r.returncode == 1, (args, r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr.split(' msg="', 1)[1].rstrip().removesuffix('"')


def test_every_verb_refuses_what_its_status_forbids(rune, bundle):
    """runtime/state.py's table through the CLI: one line, exit 1, the status unchanged."""
    b = bundle(base_config(["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done"]))
    rune("create", "--bundle", b, "t", check=True)
    assert refused(rune, "pause", "t") == "cannot pause container t: it is created"
    assert refused(rune, "resume", "t") == "cannot resume container t: it is created"
    assert refused(rune, "delete", "t") == "cannot delete container t: it is created (use --force)"
    rune("start", "t", check=True)
    assert refused(rune, "start", "t") == "cannot start container t: it is running"
    assert refused(rune, "resume", "t") == "cannot resume container t: it is running"
    rune("pause", "t", check=True)
    assert refused(rune, "exec", "t", "true") == "cannot exec in container t: it is paused"
    assert refused(rune, "pause", "t") == "cannot pause container t: it is paused"
    wait_status(rune, "t", "paused")
    rune("resume", "t", check=True)
    rune("kill", "t", "TERM", check=True)
    wait_status(rune, "t", "stopped")
    # containerd's shim reads "container not running" as "already exited" (see errors.py).
    assert refused(rune, "kill", "t") == "cannot kill container t: it is stopped (container not running)"
    assert refused(rune, "kill", "--all", "t", "KILL").endswith("(container not running)")
    assert refused(rune, "ps", "t") == "cannot list the processes of container t: it is stopped"
    assert refused(rune, "events", "--stats", "t") == "cannot watch the events of container t: it is stopped"
    assert refused(rune, "update", "--pids-limit", "9", "t") == "cannot update container t: it is stopped"
    assert refused(rune, "start", "t") == "cannot start container t: it is stopped"
    assert status(rune, "t") == "stopped"
    rune("delete", "t", check=True)


def test_list_and_features(rune, bundle):
    b = bundle(base_config(["sleep", "10"]))
    rune("run", "-d", "--bundle", b, "l1", check=True)
    rows = json.loads(rune("list", "--format", "json", check=True).stdout)
    assert [(r["id"], r["status"]) for r in rows] == [("l1", "running")]
    assert rune("list", "-q", check=True).stdout == "l1\n"
    assert "ID" in rune("list", check=True).stdout
    feats = json.loads(rune("features", check=True).stdout)
    assert "createRuntime" in feats["hooks"]


def test_failed_create_leaves_nothing(rune, bundle, state_root):
    cfg = base_config(["/does/not/exist"])
    b = bundle(cfg)
    r = rune("create", "--bundle", b, "bad")
    assert r.returncode == 1
    assert "no such file" in r.stderr
    assert "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(state_root, "bad"))
    assert not os.path.exists("/sys/fs/cgroup/pids/bad")
    with open("/proc/self/mountinfo") as f:
        assert b not in f.read()


def test_no_namespaces_shares_the_host_and_leaves_no_mounts(rune, bundle):
    """A config listing no namespace inherits every one of rune's (config-linux.md);
    the mounts it asks for are made in the host's mount namespace under the rootfs
    and removed again on delete."""
    cfg = base_config(["readlink", "/proc/self/ns/mnt"])
    cfg["linux"]["namespaces"] = []
    cfg["root"]["readonly"] = False
    cfg.pop("hostname")
    for key in ("maskedPaths", "readonlyPaths"):
        cfg["linux"].pop(key)
    b = bundle(cfg)
    r = rune("run", "--bundle", b, "nons", check=True)
    assert os.readlink("/proc/self/ns/mnt") in r.stdout
    with open("/proc/self/mountinfo") as f:
        assert b not in f.read()


def test_no_mount_namespace_refuses_what_would_change_the_host(rune, bundle, state_root):
    cfg = base_config(["true"])
    cfg["linux"]["namespaces"] = [{"type": "pid"}]
    cfg.pop("hostname")
    r = rune("create", "--bundle", bundle(cfg), "nomnt")
    assert r.returncode == 1
    assert "linux.maskedPaths: needs a mount namespace" in r.stderr
    assert not os.path.exists(os.path.join(state_root, "nomnt"))


def test_exec_without_a_mount_namespace_stays_in_the_rootfs(rune, bundle, tmp_path):
    """Joining the namespaces does not carry the init's chroot over: the exec'd
    process must take the container's root, not see the host's filesystem."""
    marker = tmp_path / "host-only-marker"
    marker.write_text("host")
    cfg = base_config(["sleep", "30"])
    cfg["linux"]["namespaces"] = [{"type": "pid"}]
    cfg["root"]["readonly"] = False
    cfg.pop("hostname")
    for key in ("maskedPaths", "readonlyPaths"):
        cfg["linux"].pop(key)
    rune("run", "-d", "--bundle", bundle(cfg), "nomntexec", check=True)
    try:
        r = rune("exec", "nomntexec", "sh", "-c", f"test -e {marker} && echo escaped; ls /; readlink /proc/1/root")
        assert r.returncode == 0, r.stderr
        assert "escaped" not in r.stdout
        assert "bin" in r.stdout.split()
    finally:
        rune("delete", "-f", "nomntexec")


def test_failing_poststop_hook_is_a_warning_and_the_others_run(rune, bundle, tmp_path):
    out = tmp_path / "out"
    cfg = base_config(["true"])
    cfg["hooks"] = {"poststop": [{"path": "/bin/false"},
                                 {"path": "/bin/sh", "args": ["sh", "-c", f"echo ran >> {out}"]}]}  # fmt: skip
    rune("run", "--bundle", bundle(cfg), "hooks", check=True)
    assert out.read_text() == "ran\n"


def test_hook_timeout_and_state_on_stdin(rune, bundle, tmp_path):
    out = tmp_path / "state.json"
    cfg = base_config(["true"])
    cfg["annotations"] = {"k": "v"}
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}]}
    rune("run", "--bundle", bundle(cfg), "hst", check=True)
    st = json.loads(out.read_text())
    assert (st["id"], st["status"], st["annotations"]) == ("hst", "created", {"k": "v"})
    cfg["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]}
    r = rune("create", "--bundle", bundle(cfg), "slow")
    assert r.returncode == 1
    assert "prestart hook #0 (/bin/sleep) timed out after 1s" in r.stderr
    # A state bigger than a pipe, to a hook that never reads it: the timeout still holds.
    cfg["annotations"] = {"big": "x" * (256 << 10)}
    started = time.monotonic()
    r = rune("create", "--bundle", bundle(cfg), "slowbig")
    assert r.returncode == 1
    assert "timed out after 1s" in r.stderr
    assert time.monotonic() - started < 4
    cfg["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"], "timeout": 5}]}
    rune("create", "--bundle", bundle(cfg), "bigread", check=True)
    assert len(json.loads(out.read_text())["annotations"]["big"]) == 256 << 10
    rune("delete", "-f", "bigread", check=True)


def test_failed_terminal_run_leaves_no_console_socket(rune, bundle, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cfg = base_config(["true"])
    cfg["process"]["terminal"] = True
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}  # create fails after the console socket exists
    r = rune("run", "--bundle", bundle(cfg), "ttyfail", env={**os.environ, "TMPDIR": str(scratch)})
    assert r.returncode == 1
    assert "createRuntime hook #0" in r.stderr
    assert list(scratch.iterdir()) == []


def test_run_foreground_terminal(rune, bundle):
    """process.terminal without --console-socket: rune holds the pty itself (under script(1) for a tty)."""
    cfg = base_config(["sh", "-c", "tty; [ -t 0 ] && echo STDIN-IS-TTY; exit 5"])
    cfg["process"]["terminal"] = True
    b = bundle(cfg)
    rune_bin = rune("--version").args[0]
    cmd = f"{rune_bin} --root {rune.root} run --bundle {b} tty1"
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 5
    assert "/dev/pts/0" in r.stdout  # the container's own devpts instance
    assert "STDIN-IS-TTY" in r.stdout


def test_killed_create_leaves_a_deletable_container(rune, state_root):
    """A `rune create` killed half-way leaves state.json saying "creating" with no
    init pid. It must read as stopped once its creator is gone, and `delete
    --force` must remove it — without signalling pid 0 (its own process group)."""
    from inclavare.runtime import state as st

    d = st.make_dir(state_root, "half")
    s = st.State("half", d)
    dead = subprocess.Popen(["true"])
    dead.wait()
    s.extra["creator"] = [dead.pid, None]
    s.save()
    assert status(rune, "half") == "stopped"
    r = subprocess.run(["setsid", "--wait", rune("--version").args[0], "--root", state_root,
                        "delete", "--force", "half"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(d)


# -- a container without a mount namespace of its own: delete removes rune's mounts only ----


def shared_mounts_config(args: list[str]) -> dict:
    """No mount namespace: the container's mounts are made in the host's, under the rootfs."""
    cfg = base_config(args)
    cfg["linux"]["namespaces"] = [{"type": "pid"}]
    cfg["root"]["readonly"] = False
    cfg.pop("hostname")
    for key in ("maskedPaths", "readonlyPaths"):
        cfg["linux"].pop(key)
    return cfg


def mounts_under(path: str) -> list[str]:
    """Mount points at or below `path`, from mountinfo with its octal escapes decoded."""
    from inclavare._sys.proc import mountinfo

    top = os.path.realpath(path)
    return [m.point for m in mountinfo() if m.point == top or m.point.startswith(top + "/")]


def unmount_all_under(path: str) -> None:
    for point in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def test_delete_keeps_the_rootfs_mount_and_the_operators_volumes(rune, bundle):
    """containerd's rootfs is a mount (an overlay) and volumes may be mounted
    under it: delete unmounted everything below the rootfs, those included."""
    b = bundle(shared_mounts_config(["sh", "-c", "cat /srv/vol/marker"]))
    rootfs = os.path.join(b, "rootfs")
    vol = os.path.join(rootfs, "srv", "vol")
    os.makedirs(vol, exist_ok=True)
    try:
        subprocess.run(["mount", "--bind", rootfs, rootfs], check=True)  # the rootfs is a mount point
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "operator-volume", vol], check=True)
        with open(os.path.join(vol, "marker"), "w") as f:
            f.write("operator data\n")
        ours = set(mounts_under(rootfs))
        r = rune("run", "--bundle", b, "keepvols")  # run deletes the container when it exits
        assert (r.returncode, r.stdout) == (0, "operator data\n"), r.stderr
        assert set(mounts_under(rootfs)) == ours  # rune's /proc, /dev, ... gone; ours kept
        with open(os.path.join(vol, "marker")) as f:
            assert f.read() == "operator data\n"
    finally:
        unmount_all_under(rootfs)


def test_delete_cleans_a_rootfs_whose_path_has_a_space(rune, tmp_path, rootfs_cache):
    """mountinfo writes a space as \\040: matched against the raw text, rune's
    own mounts under such a rootfs were never found and leaked."""
    from inclavare.testing.bundles import make_bundle

    b = make_bundle(str(tmp_path / "my bundle"), shared_mounts_config(["true"]), rootfs_cache)
    rootfs = os.path.join(b, "rootfs")
    try:
        rune("create", "--bundle", b, "spaced", check=True)
        assert len(mounts_under(rootfs)) >= 4  # /proc, /dev, /dev/pts, /sys, ...
        rune("delete", "--force", "spaced", check=True)
        assert mounts_under(rootfs) == []
    finally:
        unmount_all_under(rootfs)


@pytest.mark.parametrize("failure", ["mount", "hook"])
def test_failed_create_takes_back_only_its_own_mounts(rune, bundle, state_root, failure):
    """A create failing after some mounts were made: init takes its mounts back
    itself when it fails before handing the list over (a later mount fails),
    create's undo does once it holds the list (a createRuntime hook fails)."""
    cfg = shared_mounts_config(["true"])
    if failure == "mount":
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/does/not/exist", "options": ["bind"]})
    else:
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    b = bundle(cfg)
    rootfs = os.path.join(b, "rootfs")
    vol = os.path.join(rootfs, "srv", "vol")
    os.makedirs(vol, exist_ok=True)
    try:
        subprocess.run(["mount", "--bind", rootfs, rootfs], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "operator-volume", vol], check=True)
        ours = set(mounts_under(rootfs))
        r = rune("create", "--bundle", b, "failing")
        assert r.returncode == 1
        assert set(mounts_under(rootfs)) == ours
        assert not os.path.exists(os.path.join(state_root, "failing"))
    finally:
        unmount_all_under(rootfs)


# -- exec failures are named, as runc names them (exec <path>: <errno text>), exit 1 --------


def with_program(bundle, path: str, content: str, mode: int, args: list[str] | None = None, **cfg_extra) -> str:
    cfg = base_config(args or [path])
    cfg.update(cfg_extra)
    b = bundle(cfg)
    target = os.path.join(b, "rootfs", path.lstrip("/"))
    with open(target, "w") as f:
        f.write(content)
    os.chmod(target, mode)
    return b


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        ("echo not a script\n", 0o755, "exec /junk: exec format error"),  # no #!: ENOEXEC from execve
        ("#!/no/such/shell\n", 0o755, "exec /junk: no such file or directory"),  # ENOENT after the lookup
        ("#!/bin/sh\necho hi\n", 0o644, '/junk\\": permission denied'),  # no x bit: at create, as LookPath
    ],
)
def test_run_names_the_exec_failure(rune, bundle, state_root, content, mode, message):
    b = with_program(bundle, "/junk", content, mode)
    r = rune("run", "--bundle", b, "junk")
    assert r.returncode == 1
    assert message in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert not os.path.exists(os.path.join(state_root, "junk"))


def test_start_fails_with_the_exec_error_and_the_container_stops(rune, bundle):
    b = with_program(bundle, "/junk", "not a program\n", 0o755)
    rune("create", "--bundle", b, "junk2", check=True)
    r = rune("start", "junk2")
    assert (r.returncode, r.stderr.count("exec /junk: exec format error")) == (1, 1), r.stderr
    wait_status(rune, "junk2", "stopped")
    rune("delete", "junk2", check=True)


def test_exec_names_the_exec_failure(rune, bundle):
    b = with_program(bundle, "/junk", "not a program\n", 0o755, ["sleep", "30"])
    rune("run", "-d", "--bundle", b, "junk3", check=True)
    r = rune("exec", "junk3", "/junk")
    assert (r.returncode, r.stderr.count("exec /junk: exec format error")) == (1, 1), r.stderr
    assert rune("exec", "junk3", "true").returncode == 0  # the container is unharmed


def test_exec_failure_is_reported_under_a_seccomp_profile(rune, bundle):
    """The trampoline's prctl and fcntl run under the container's filter: a
    profile that allows them (as Docker's and containerd's do) still reports."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    cfg = base_config(["/junk"])
    cfg["linux"]["seccomp"] = profile
    b = bundle(cfg)
    with open(os.path.join(b, "rootfs", "junk"), "w") as f:
        f.write("not a program\n")
    os.chmod(os.path.join(b, "rootfs", "junk"), 0o755)
    r = rune("run", "--bundle", b, "junk4")
    assert (r.returncode, r.stderr.count("exec /junk: exec format error")) == (1, 1), r.stderr


def test_container_process_gets_default_signal_dispositions(rune, bundle):
    """CPython ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
    across execve: the container process must not inherit that (runc's don't)."""
    r = rune("run", "--bundle", bundle(base_config(["grep", "SigIgn", "/proc/self/status"])), "sigs", check=True)
    ignored = int(r.stdout.split()[1], 16)
    assert ignored & (1 << (13 - 1)) == 0  # SIGPIPE
    assert ignored & (1 << (25 - 1)) == 0  # SIGXFSZ


def test_hooks_run_in_runes_pid_namespace_and_init_is_pid_1_of_its_own(rune, bundle, tmp_path):
    """Without an intermediate (no user namespace, nothing joined) rune forks
    init into the new pid namespace itself and must return to its own at
    once: the prestart hook it forks next belongs to the host's."""
    hook_ns = tmp_path / "hook-ns"
    cfg = base_config(["sh", "-c", "echo $$; ls -l /proc/self/ns/pid"])
    cfg["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"readlink /proc/self/ns/pid > {hook_ns}"]}]}
    r = rune("run", "--bundle", bundle(cfg), "pidns", check=True)
    pid, listing = r.stdout.splitlines()[:2]
    assert pid == "1"
    assert hook_ns.read_text().strip() == os.readlink("/proc/self/ns/pid")
    assert not listing.endswith(os.readlink("/proc/self/ns/pid"))


def test_hooks_get_default_signal_dispositions(rune, bundle, tmp_path):
    out = tmp_path / "sigign"
    cfg = base_config(["true"])
    cfg["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"grep SigIgn /proc/self/status > {out}"]}]}
    rune("run", "--bundle", bundle(cfg), "hooksigs", check=True)
    ignored = int(out.read_text().split()[1], 16)
    assert ignored & ((1 << (13 - 1)) | (1 << (25 - 1))) == 0  # SIGPIPE, SIGXFSZ


def test_detached_run_that_cannot_exec_leaves_nothing(rune, bundle, state_root):
    b = with_program(bundle, "/junk", "not a program\n", 0o755)
    r = rune("run", "-d", "--bundle", b, "junk5")
    assert (r.returncode, r.stderr.count("exec /junk: exec format error")) == (1, 1), r.stderr
    assert not os.path.exists(os.path.join(state_root, "junk5"))
