"""init's setup sequence (process/init.py build_container) over a scratch
rootfs and the recording syscalls: what it does, in which order, from the
launch plan — without root, and without changing this process's root."""

from __future__ import annotations

import errno
import json
import os

import pytest

from inclavare._sys import consts as c
from inclavare.errors import InclavareError
from inclavare.runtime.create import CreateOptions
from inclavare.runtime.plan import build
from inclavare.runtime.process import init
from inclavare.runtime.process.launch import LaunchFds
from inclavare.runtime.process.messages import HOOKS, HOOKS_DONE, Channel
from inclavare.spec.load import parse_spec
from inclavare.testing.bundles import base_config

CGROUP = {"": "/sys/fs/cgroup/c1"}


def plan_for(tree, config: dict, opts: CreateOptions | None = None):
    spec = parse_spec(json.dumps(config))
    return build("c1", os.path.dirname(tree.rootfs), tree.rootfs, spec, opts or CreateOptions(), None, CGROUP)


def userns_config(**linux) -> dict:
    """A container in user, mount, pid and uts namespaces of its own (devices are bound, not made)."""
    cfg = base_config(["true"])
    cfg["linux"]["namespaces"] = [{"type": t} for t in ("user", "mount", "pid", "uts", "ipc", "cgroup")]
    cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cfg["linux"].update(linux)
    return cfg


@pytest.fixture
def channel():
    """(main's end, init's end), "hooks-done" already waiting for init."""
    main, child = Channel.pair()
    main.send(HOOKS_DONE, {"id": "c1", "status": "created"})
    yield main, child
    main.close()
    child.close()


def run_init(tree, plan, child, made=None):
    fds = LaunchFds()
    fds.channel = child
    return init.build_container(tree.sc, plan, fds, made)


def test_the_setup_sequence(tree, channel, monkeypatch):
    monkeypatch.chdir(tree.rootfs)  # pivot_root's fchdir dance ends in "/": put it back afterwards
    tree.make("/proc/sys/kernel/domainname", "")
    tree.make("/proc/kcore", "k")
    tree.make("/proc/sys/")
    cfg = userns_config(sysctl={"kernel.domainname": "example"}, maskedPaths=["/proc/kcore", "/proc/acpi"],
                        readonlyPaths=["/proc/sys"], rootfsPropagation="slave")  # fmt: skip
    cfg["hostname"] = "box"
    cfg["root"]["readonly"] = True
    cfg["hooks"] = {"createContainer": [{"path": "/bin/true"}]}  # a hook: the masks wait for "hooks-done"
    main, child = channel
    state = run_init(tree, plan_for(tree, cfg), child)

    assert state == {"id": "c1", "status": "created"}  # what main sent with hooks-done: the hooks' state
    assert main.recv() == (HOOKS, None)  # a mount namespace of its own: no mounts to hand over
    calls = [call for call in tree.sc.calls if call[0] != "openat2"]
    cgroupns = calls.index(("unshare", c.CLONE_NEWCGROUP))  # once main placed init in its cgroups (hooks-done)
    pivot = calls.index(("pivot_root", ".", "."))
    mounts = tree.mounts()
    before = mounts[: [call[0] for call in calls[:cgroupns]].count("mount")]
    between = [
        m[1] for m in mounts[len(before) : len(before) + [call[0] for call in calls[cgroupns:pivot]].count("mount")]
    ]
    # rslave first, the rootfs made a mount point, the spec's mounts, /dev's devices (bound: a user namespace)
    assert before[0] == (None, "/", None, c.MS_SLAVE | c.MS_REC, None)
    assert before[1] == (tree.rootfs, "/", "bind", c.MS_BIND | c.MS_REC, None)
    assert [m[1] for m in before[2:6]] == ["/proc", "/dev", "/dev/pts", "/dev/shm"]
    assert ("/dev/null", "/dev/null", "bind", c.MS_BIND, None) in before
    with open(tree.path("/proc/sys/kernel/domainname")) as f:
        assert f.read() == "example"  # sysctl: before the hooks
    # After the hooks: read-only paths (bind, remount), masked paths (/proc/acpi is not there: skipped)
    assert between == ["/proc/sys", "/proc/sys", "/proc/kcore"]
    # Then pivot_root, the old root detached, rootfsPropagation, the read-only root, hostname, keyring
    assert [call[0] for call in calls[pivot:]] == ["pivot_root", "mount", "umount2", "mount", "mount", "sethostname",
                                                    "join_session_keyring"]  # fmt: skip
    assert calls[pivot + 3] == ("mount", "/", None, None, c.MS_SLAVE | c.MS_REC, None)
    assert calls[pivot + 4] == ("mount", "/", None, None, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY, None)
    assert calls[pivot + 5 :] == [("sethostname", "box"), ("join_session_keyring", "_ses.c1")]


def test_without_hooks_the_rootfs_is_built_before_hooks_done(tree, channel, monkeypatch):
    """No hook to order against: the masks, pivot_root, hostname and keyring
    happen while main joins the cgroups; "hooks-done" (then the cgroup
    namespace) is read last, before anything of the process's identity."""
    monkeypatch.chdir(tree.rootfs)
    tree.make("/proc/kcore", "k")
    cfg = userns_config(maskedPaths=["/proc/kcore"])
    cfg["hostname"] = "box"
    main, child = channel
    state = run_init(tree, plan_for(tree, cfg), child)
    assert state == {"id": "c1", "status": "created"}
    assert main.recv() == (HOOKS, None)
    calls = [call[0] for call in tree.sc.calls if call[0] != "openat2"]
    assert calls.index("pivot_root") < calls.index("sethostname") < calls.index("join_session_keyring")
    assert tree.sc.calls[-1] == ("unshare", c.CLONE_NEWCGROUP)  # after hooks-done, and nothing after it


def test_without_hooks_init_does_not_wait_before_pivot_root(tree, monkeypatch):
    """The order above is not an artefact of "hooks-done" being sent early:
    with no hook, init reaches pivot_root before main says anything."""
    monkeypatch.chdir(tree.rootfs)
    main, child = Channel.pair()
    try:
        os.close(main.wfd)  # main says nothing more: waiting for "hooks-done" ends in EOF
        main.wfd = -1
        with pytest.raises(InclavareError, match="exited during setup"):
            run_init(tree, plan_for(tree, userns_config()), child)
        assert ("pivot_root", ".", ".") in tree.sc.calls
        assert ("unshare", c.CLONE_NEWCGROUP) not in tree.sc.calls
    finally:
        main.close()
        child.close()


def test_no_pivot_moves_the_root(tree, channel, monkeypatch):
    monkeypatch.chdir(tree.rootfs)
    run_init(tree, plan_for(tree, userns_config(), CreateOptions(no_pivot=True, no_new_keyring=True)), channel[1])
    names = [call[0] for call in tree.sc.calls if call[0] != "openat2"]
    assert "pivot_root" not in names
    move = tree.sc.calls.index(("mount", "/", tree.rootfs, None, c.MS_MOVE, None))
    assert tree.sc.calls[move + 1] == ("chroot", ".")
    assert "join_session_keyring" not in names


def test_sharing_the_hosts_mount_namespace(tree, channel, monkeypatch):
    """No mount namespace: no rslave, no pivot_root (it would swap the host's
    root) but a chroot, and each mount made is handed to main with "hooks"."""
    monkeypatch.chdir(tree.rootfs)
    cfg = base_config(["true"])
    cfg["linux"]["namespaces"] = [{"type": "pid"}]
    cfg["mounts"] = [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}]
    main, child = channel
    made: list = []
    run_init(tree, plan_for(tree, cfg), child, made)
    assert tree.mounts()[0][1] == "/tmp"  # no prepare_root: the host's tree is left as it is
    kind, payload = main.recv()
    assert kind == HOOKS
    assert next(dest for _id, dest in payload["mounts"]) == "/tmp"
    assert made == []  # handed over: main removes them from here on
    names = [call[0] for call in tree.sc.calls]
    assert "pivot_root" not in names
    assert ("chroot", ".") in tree.sc.calls


def test_a_failing_step_is_one_line_naming_it(tree, channel, monkeypatch):
    monkeypatch.chdir(tree.rootfs)
    tree.make("/proc/kcore", "k")
    tree.sc.fail_mount_at[tree.path("/proc/kcore")] = errno.EPERM
    with pytest.raises(InclavareError) as err:
        run_init(tree, plan_for(tree, userns_config(maskedPaths=["/proc/kcore"])), channel[1])
    assert str(err.value) == "masked path /proc/kcore: mount /proc/self/fd/" + str(err.value).split("/proc/self/fd/")[1]
    assert str(err.value).endswith(": Operation not permitted")
    assert "pivot_root" not in [call[0] for call in tree.sc.calls]  # stopped where it failed


def test_the_plan_is_frozen(tree):
    plan = plan_for(tree, userns_config())
    with pytest.raises(AttributeError, match="frozen"):
        plan.no_pivot = True
    with pytest.raises(AttributeError, match="frozen"):
        del plan.mounts
    assert plan.own_mount_ns
    assert plan.in_userns
    assert plan.new_flags & c.CLONE_NEWUSER
    assert not plan.joins
