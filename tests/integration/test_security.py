"""Attacker-in-the-container tests for the runc CVE classes rune closes.

Each test plays the container's side of a known escape and checks the host
is unaffected. See docs/architecture.md, "Security design".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from inclavare.testing.bundles import base_config
from inclavare.testing.containers import wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def running(rune, bundle):
    cfg = base_config(["sleep", "100"])
    cfg["root"]["readonly"] = False
    b = bundle(cfg)
    rune("run", "-d", "--bundle", b, "sec", check=True)
    return "sec"


# -- CVE-2019-5736: overwriting the host binary through /proc/self/exe ---------------------


def test_proc_self_exe_script_via_exec_does_not_reach_host_binary(rune, running):
    """A `#!/proc/self/exe` script run by `rune exec` would execute rune's own host
    binary inside the container. With the sealed trampoline it re-enters the
    trampoline, which refuses (126), and the host interpreter is never run."""
    script = "printf '#!/proc/self/exe\\n' > /evil && chmod +x /evil"
    rune("exec", running, "sh", "-c", script, check=True)
    r = rune("exec", running, "/evil")
    assert r.returncode == 126


def test_exec_process_exe_is_never_a_host_file(rune, running):
    """What /proc/self/exe names while the container process execs: never the
    host interpreter (the exec'd program itself afterwards)."""
    out = rune("exec", running, "readlink", "/proc/self/exe", check=True).stdout.strip()
    assert out == "/bin/busybox"
    host_python = os.path.realpath(sys.executable)
    assert host_python not in out


def test_created_init_is_not_reachable_from_the_container(rune, bundle):
    """Before `start`, pid 1 of the container is rune's (host) interpreter: it is
    non-dumpable, so a process exec'd into the container can neither read nor
    open for writing /proc/1/exe, nor take its fds from /proc/1/fd."""
    b = bundle(base_config(["true"]))
    rune("create", "--bundle", b, "pre", check=True)
    probe = (
        "cat /proc/1/exe > /dev/null 2>&1 && echo READ; echo x 2>/dev/null > /proc/1/exe && echo WROTE;"
        "for f in /proc/1/fd/*; do readlink $f && echo LINK; cat $f > /dev/null 2>&1 && echo OPENED; done; echo done"
    )
    out = rune("exec", "pre", "sh", "-c", probe, check=True).stdout.split()
    assert out == ["done"]  # nothing readable, writable, resolvable or openable


# -- CVE-2024-21626: leaked host file descriptors and a cwd outside the rootfs -----------


@pytest.mark.parametrize("fd", [3, 4, 5, 6, 7, 8])
def test_cwd_through_proc_self_fd_is_refused(rune, bundle, fd, state_root):
    cfg = base_config(["true"])
    cfg["process"]["cwd"] = f"/proc/self/fd/{fd}"
    r = rune("create", "--bundle", bundle(cfg), "cwd")
    assert r.returncode == 1
    assert "process.cwd" in r.stderr
    assert not os.path.exists(os.path.join(state_root, "cwd"))


def test_exec_cwd_through_proc_self_fd_is_refused(rune, running):
    for fd in range(3, 9):
        r = rune("exec", "--cwd", f"/proc/self/fd/{fd}", running, "pwd")
        assert r.returncode == 1, r.stdout


def test_no_host_fd_reaches_the_container(rune, bundle, tmp_path):
    """rune's caller leaks an inheritable fd (a host directory) to rune: the
    container process must not get it; with --preserve-fds 1 it must."""
    import fcntl

    host_dir = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    fd = fcntl.fcntl(host_dir, fcntl.F_DUPFD, 20)  # a free fd >= 20, clear of the one `ls` opens
    try:
        b = bundle(base_config(["ls", "/proc/self/fd"]))
        leaked = rune("run", "--bundle", b, "fds", pass_fds=(fd,), check=True).stdout.split()
        keep = str(fd - 2)  # --preserve-fds N passes fds 3 .. 3+N-1
        preserved = rune(
            "run", "--preserve-fds", keep, "--bundle", b, "fds2", pass_fds=(fd,), check=True
        ).stdout.split()
    finally:
        os.close(host_dir)
        os.close(fd)
    assert str(fd) not in leaked
    assert str(fd) in preserved


# -- mount targets resolved inside the rootfs ------------------------------------------


def test_mount_destination_symlink_stays_inside_rootfs(rune, bundle, tmp_path):
    """The image plants symlinks to host paths (absolute, or climbing out with
    ..): each resolves inside the rootfs, where the mount then lands."""
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    cfg = base_config(["sh", "-c", "grep -c ' /inside/sub ' /proc/self/mountinfo"])
    cfg["root"]["readonly"] = False
    for dest in ("/abs/sub", "/rel/sub"):
        cfg["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs"})
    b = bundle(cfg)
    rootfs = os.path.join(b, "rootfs")
    os.makedirs(os.path.join(rootfs, "inside", "sub"))
    os.symlink("/inside", os.path.join(rootfs, "abs"))  # absolute: a host path from rune's point of view
    os.symlink("../../../../../../../../inside", os.path.join(rootfs, "rel"))  # climbs out, if followed on the host
    r = rune("run", "--bundle", b, "links", check=True)
    assert r.stdout.strip() == "2"  # both mounts on /inside/sub inside the container
    assert not os.path.exists("/inside")


def test_tmpcopyup_copies_the_image_files_and_never_follows_its_links(rune, bundle, tmp_path):
    """tmpcopyup (podman's --tmpfs default): the tmpfs starts with the image's
    files, owners and modes; a symlink to a host path is copied as a link."""
    secret = tmp_path / "host-secret"
    secret.write_text("host data")
    cfg = base_config(["sh", "-c", "cat /data/a; stat -c '%u:%g %a' /data/sub/b; readlink /data/link; "
                                   "cat /data/link 2>/dev/null || echo no-host-file; "
                                   "touch /data/new || echo ro"])  # fmt: skip
    cfg["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                          "options": ["tmpcopyup", "ro", "nosuid", "mode=755"]})  # fmt: skip
    b = bundle(cfg)
    data = os.path.join(b, "rootfs", "data")
    os.makedirs(os.path.join(data, "sub"))
    with open(os.path.join(data, "a"), "w") as f:
        f.write("from the image\n")
    with open(os.path.join(data, "sub", "b"), "w") as f:
        f.write("x")
    os.chown(os.path.join(data, "sub", "b"), 1234, 5678)
    os.chmod(os.path.join(data, "sub", "b"), 0o640)
    os.symlink(str(secret), os.path.join(data, "link"))
    r = rune("run", "--bundle", b, "copyup")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["from the image", "1234:5678 640", str(secret), "no-host-file", "ro"]


def test_dangling_symlink_mount_target_is_refused(rune, bundle, tmp_path, state_root):
    """A mount target through a symlink to a path missing in the rootfs (here a host
    directory) is refused: no directory is made on the host, nothing is left behind."""
    victim = tmp_path / "victim"
    victim.mkdir()
    cfg = base_config(["true"])
    cfg["root"]["readonly"] = False
    cfg["mounts"].append({"destination": "/abs/sub", "type": "tmpfs", "source": "tmpfs"})
    b = bundle(cfg)
    os.symlink(str(victim), os.path.join(b, "rootfs", "abs"))
    r = rune("run", "--bundle", b, "dangling")
    assert r.returncode == 1
    assert "/abs/sub" in r.stderr
    assert "dangling symlink" in r.stderr
    assert list(victim.iterdir()) == []
    assert not os.path.exists(os.path.join(state_root, "dangling"))


def test_masked_and_readonly_paths_cannot_be_undone(rune, bundle):
    # /proc/keys and /proc/timer_list are in the template's maskedPaths and exist on this kernel
    script = ("umount /proc/keys; umount -l /proc/timer_list; mount -o remount,rw /proc/sys; "
              "echo 1 > /proc/sys/kernel/ns_last_pid; cat /proc/keys /proc/timer_list | wc -c")  # fmt: skip
    r = rune("run", "--bundle", bundle(base_config(["sh", "-c", script])), "masks")
    assert r.stdout.split()[-1] == "0"  # both still masked by /dev/null
    assert "umount: can't unmount /proc/keys: Operation not permitted" in r.stderr
    assert "permission denied" in r.stderr.lower()  # the remount
    assert "Read-only file system" in r.stderr


def test_container_cannot_see_state_dir_or_console_socket(rune, bundle, state_root, tmp_path):
    sock = tmp_path / "console.sock"
    listener = subprocess.Popen([sys.executable, "-c", _CONSOLE_SINK, str(sock)], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "listening"
        cfg = base_config(["sh", "-c", "cat /proc/self/mountinfo; ls -la /proc/1/fd; find / -xdev -name state.json"])
        cfg["process"]["terminal"] = True
        rune("create", "--console-socket", str(sock), "--bundle", bundle(cfg), "seen", check=True)
        rune("start", "seen", check=True)
        listener.wait(timeout=20)
        out = listener.stdout.read()
    finally:
        listener.kill()
    assert state_root not in out
    assert str(sock) not in out
    assert "state.json" not in out
    assert json.loads(rune("state", "seen").stdout)["status"] == "stopped"


# Receives the pty master from rune and prints what the container writes to it.
_CONSOLE_SINK = r"""
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1); print("listening", flush=True)
conn, _ = s.accept()
msg, anc, _, _ = conn.recvmsg(64, socket.CMSG_LEN(4))
fd = array.array("i", anc[0][2])[0]
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode(errors="replace"))
"""


# -- sysctls in a namespace joined by path that is the host's -----------------------------


def _read_sysctl(key: str) -> str:
    with open("/proc/sys/" + key.replace(".", "/")) as f:
        return f.read().strip()


@pytest.mark.parametrize(
    ("ns_type", "ns_name", "key", "value"),
    [
        ("network", "net", "net.ipv4.tcp_keepalive_probes", None),  # None: the host's value + 1
        ("ipc", "ipc", "kernel.shmmni", None),
        ("uts", "uts", "kernel.domainname", "rune-leaked.example"),
    ],
)
def test_sysctl_in_a_joined_host_namespace_is_refused(rune, bundle, state_root, ns_type, ns_name, key, value):
    """runc refuses "sysctl %q not allowed in host network namespace": a
    namespace given by path can be the host's own, and the value would land on
    the host. rune compares namespace identities, for net, ipc and uts alike."""
    before = _read_sysctl(key)
    cfg = base_config(["true"])
    host_ns = f"/proc/{os.getpid()}/ns/{ns_name}"  # pytest's: the same namespaces rune runs in
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != ns_type]
    cfg["linux"]["namespaces"].append({"type": ns_type, "path": host_ns})
    if ns_type == "uts":
        cfg.pop("hostname")
    cfg["linux"]["sysctl"] = {key: value or str(int(before) + 1)}
    try:
        r = rune("create", "--bundle", bundle(cfg), "hostsysctl")
        assert _read_sysctl(key) == before
    finally:
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(before)  # undo what a failing run wrote
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert f"config.json: linux.sysctl.{key}: not allowed in the host's {ns_type} namespace" in lines[0]
    assert not os.path.exists(os.path.join(state_root, "hostsysctl"))


def test_sysctl_in_a_joined_namespace_of_its_own_is_written_there(rune, bundle):
    """The check compares identities, not paths: another network namespace
    joined by path takes the sysctl, and the host keeps its value."""
    key = "net.ipv4.tcp_keepalive_probes"
    before = _read_sysctl(key)
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        host_net = os.readlink("/proc/self/ns/net")
        net = f"/proc/{holder.pid}/ns/net"
        wait_for(lambda: os.readlink(net) != host_net, "unshare to enter a new network namespace")
        cfg = base_config(["cat", "/proc/sys/net/ipv4/tcp_keepalive_probes"])
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "network"]
        cfg["linux"]["namespaces"].append({"type": "network", "path": f"/proc/{holder.pid}/ns/net"})
        cfg["linux"]["sysctl"] = {key: str(int(before) + 2)}
        r = rune("run", "--bundle", bundle(cfg), "ownnet")
        assert (r.returncode, r.stdout.strip()) == (0, str(int(before) + 2)), r.stderr
        assert _read_sysctl(key) == before
    finally:
        holder.kill()
        holder.wait()


def test_joining_runes_own_mount_namespace_is_refused(rune, bundle, state_root):
    """A mount namespace path that is rune's own would have init make the
    whole tree rslave and pivot_root in it: every process's root moved into
    the rootfs. Run in a throwaway mount namespace, so that a rune without
    the check wrecks only that one."""
    cfg = base_config(["true"])
    cfg["linux"]["cgroupsPath"] = f"/rune-ownmnt-{os.getpid()}"
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "mount"]
    cfg["linux"]["namespaces"].append({"type": "mount", "path": "/proc/self/ns/mnt"})  # opened by rune: its own
    b = bundle(cfg)
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", rune("--version").args[0], "--root",
                        state_root, "create", "--bundle", b, "ownmnt"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr
    assert "linux.namespaces[" in r.stderr
    assert "is rune's own mount namespace" in r.stderr
    assert not os.path.exists(os.path.join(state_root, "ownmnt"))
