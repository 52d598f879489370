"""rootfs/mounts.py over a scratch rootfs: which mount(2) calls each entry
makes, where their targets land (openat2 RESOLVE_IN_ROOT, for real), and
the re-check before a remount (the CVE-2021-30465 class)."""

from __future__ import annotations

import errno
import os

import pytest

from inclavare._sys import consts as c
from inclavare.errors import InclavareError
from inclavare.runtime.config import MountEntry, mount_entries
from inclavare.runtime.rootfs import mounts
from inclavare.spec.load import parse_spec
from inclavare.spec.template import example

NOSUID, NODEV, NOEXEC, RDONLY = c.MS_NOSUID, c.MS_NODEV, c.MS_NOEXEC, c.MS_RDONLY
BIND, REC, REMOUNT = c.MS_BIND, c.MS_REC, c.MS_REMOUNT


def entry(destination, source, fstype, flags, propagation=(), data="", copy_up=False):
    return MountEntry(destination, source, fstype, flags, list(propagation), data, copy_up)


def test_the_template_mounts_in_order_on_their_targets(tree):
    spec = parse_spec(__import__("json").dumps(example()))
    entries = mount_entries(spec, "/bundle")
    mounts.mount_all(tree.sc, tree.root_fd, entries, {"": "/sys/fs/cgroup/c1"})
    made = [(src, where, fstype) for src, where, fstype, _flags, _data in tree.mounts()]
    assert made == [
        ("proc", "/proc", "proc"),
        ("tmpfs", "/dev", "tmpfs"),
        ("devpts", "/dev/pts", "devpts"),
        ("shm", "/dev/shm", "tmpfs"),
        ("mqueue", "/dev/mqueue", "mqueue"),
        ("sysfs", "/sys", "sysfs"),
        ("/sys/fs/cgroup/c1", "/sys/fs/cgroup", "bind"),  # v2: the container's own cgroup, bound ...
        (None, "/sys/fs/cgroup", None),  # ... and remounted read-only
    ]
    cgroup_remount = tree.mounts()[-1]
    assert cgroup_remount[3] & (RDONLY | REMOUNT | BIND) == RDONLY | REMOUNT | BIND
    assert all(os.path.isdir(tree.path(d)) for d in ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"))


def test_targets_are_opened_in_the_root_never_as_paths(tree):
    """Every mount(2) names its target as /proc/self/fd/N of an openat2 fd."""
    mounts.mount_all(tree.sc, tree.root_fd, [entry("/data", "tmpfs", "tmpfs", NOSUID)], {})
    (_name, target, *_rest) = next(call for call in tree.sc.calls if call[0] == "mount")
    assert str(target).startswith("/proc/self/fd/")
    opened = [call for call in tree.sc.calls if call[0] == "openat2"]
    assert opened[0][1] == "data"
    assert opened[0][4] & c.RESOLVE_IN_ROOT


def test_a_symlink_in_the_image_resolves_inside_the_rootfs(tree, tmp_path):
    """/evil -> /etc (absolute, pointing at the host's /etc) and ../.. chains
    stay in the rootfs: the directories are made there, the host is untouched."""
    tree.make("/etc/")
    os.symlink("/etc", tree.path("/evil"))
    os.symlink("../../../..", tree.path("/up"))
    mounts.mount_all(tree.sc, tree.root_fd, [entry("/evil/inside", "tmpfs", "tmpfs", 0),
                                             entry("/up/also", "tmpfs", "tmpfs", 0)], {})  # fmt: skip
    assert [where for _s, where, *_r in tree.mounts()] == ["/etc/inside", "/also"]
    assert os.path.isdir(tree.path("/etc/inside"))
    assert not os.path.exists("/etc/inside")


def test_a_dangling_symlink_on_the_way_is_refused(tree):
    os.symlink("/nonexistent/target", tree.path("/dangling"))
    with pytest.raises(InclavareError, match=r"mounts\[0\]: mounting tmpfs from tmpfs on /dangling/x: "):
        mounts.mount_all(tree.sc, tree.root_fd, [entry("/dangling/x", "tmpfs", "tmpfs", 0)], {})
    assert tree.mounts() == []


def test_readonly_bind_is_bound_then_remounted(tree, tmp_path):
    (tmp_path / "host").mkdir()
    data = entry("/data", str(tmp_path / "host"), "bind", BIND | REC | RDONLY | NOSUID, propagation=[c.MS_PRIVATE])
    mounts.mount_all(tree.sc, tree.root_fd, [data], {})
    bind, remount, propagation = tree.mounts()
    assert bind == (str(tmp_path / "host"), "/data", "bind", BIND | REC, None)  # ro means nothing to the bind
    assert remount[1:] == ("/data", None, RDONLY | NOSUID | BIND | REMOUNT, None)
    assert propagation[1:] == ("/data", None, c.MS_PRIVATE, None)


def test_a_target_swapped_between_bind_and_remount_is_not_remounted(tree, tmp_path):
    """After the bind the target is opened again; if the path now leads
    somewhere else (a container process swapped it), the read-only remount
    would land on the wrong object: refused, and nothing is remounted."""
    (tmp_path / "host").mkdir()
    tree.make("/data/")

    def swap(real: str) -> None:
        os.rename(real, real + ".old")
        os.mkdir(real)

    tree.sc.after_mount = swap
    with pytest.raises(InclavareError, match="no longer resolves to the new mount"):
        mounts.mount_all(tree.sc, tree.root_fd, [entry("/data", str(tmp_path / "host"), "bind", BIND | RDONLY)], {})
    assert [flags & REMOUNT for *_r, flags, _d in tree.mounts()] == [0]


def test_a_missing_bind_source_is_one_line(tree):
    with pytest.raises(InclavareError) as err:
        mounts.mount_all(tree.sc, tree.root_fd, [entry("/x", "/nonexistent/src", "bind", BIND)], {})
    assert str(err.value) == (
        "mounts[0]: mounting bind from /nonexistent/src on /x: bind mount source /nonexistent/src: "
        "No such file or directory"
    )


def test_a_refused_mount_names_the_entry_and_errno(tree):
    tree.make("/x/")
    tree.sc.fail_mount_at[tree.path("/x")] = errno.EPERM
    with pytest.raises(InclavareError) as err:
        mounts.mount_all(tree.sc, tree.root_fd, [entry("/x", "proc", "proc", 0)], {})
    assert str(err.value) == "mounts[0]: mounting proc from proc on /x: Operation not permitted"


def test_cgroup_v1_hierarchies_are_bound_into_a_tmpfs(tree):
    sources = {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/c1", "pids": "/sys/fs/cgroup/pids/c1"}
    mounts.mount_all(tree.sc, tree.root_fd, [entry("/sys/fs/cgroup", "cgroup", "cgroup", NOSUID | RDONLY)], sources)
    calls = [(src, where, fstype, flags & (RDONLY | REMOUNT | BIND)) for src, where, fstype, flags, _d in tree.mounts()]
    assert calls == [
        ("tmpfs", "/sys/fs/cgroup", "tmpfs", 0),  # writable while the hierarchies are bound in
        ("/sys/fs/cgroup/cpu,cpuacct/c1", "/sys/fs/cgroup/cpu,cpuacct", "bind", BIND),
        (None, "/sys/fs/cgroup/cpu,cpuacct", None, RDONLY | REMOUNT | BIND),
        ("/sys/fs/cgroup/pids/c1", "/sys/fs/cgroup/pids", "bind", BIND),
        (None, "/sys/fs/cgroup/pids", None, RDONLY | REMOUNT | BIND),
        (None, "/sys/fs/cgroup", None, RDONLY | REMOUNT | BIND),  # then the tmpfs too
    ]


def test_made_mounts_are_noted_with_their_new_ids(tree, tmp_path):
    """Without a mount namespace of its own, init notes each mount it made
    (rootfs/owned.py) by the id the re-opened target reports."""
    (tmp_path / "host").mkdir()
    made: list = []
    entries = [entry("/a", "tmpfs", "tmpfs", 0), entry("/b", str(tmp_path / "host"), "bind", BIND)]
    mounts.mount_all(tree.sc, tree.root_fd, entries, {}, made)
    assert [dest for _id, dest in made] == ["/a", "/b"]
    real_id = tree.sc.mount_id(tree.root_fd)
    assert all(mnt_id != real_id for mnt_id, _dest in made)
    assert made[0][0] != made[1][0]


def test_pivot_root_then_detach_the_old_root(tree, monkeypatch):
    monkeypatch.chdir(tree.rootfs)
    mounts.pivot(tree.sc, tree.rootfs)
    assert [call[0] for call in tree.sc.calls] == ["pivot_root", "mount", "umount2"]
    assert tree.sc.calls[0][1:] == (".", ".")
    assert tree.sc.calls[1][1:4] == (".", None, None)
    assert tree.sc.calls[1][4] == c.MS_SLAVE | REC
    assert tree.sc.calls[2][1:] == (".", c.MNT_DETACH)


def test_no_pivot_moves_the_root_and_chroots(tree, monkeypatch):
    monkeypatch.chdir(tree.rootfs)
    mounts.move_root(tree.sc, tree.rootfs)
    assert tree.sc.calls == [("mount", "/", tree.rootfs, None, c.MS_MOVE, None), ("chroot", ".")]


def test_readonly_root_keeps_flags_the_kernel_locked(tree):
    """In a user namespace the kernel refuses a remount that would drop a
    locked flag (EPERM): retried with the root's current flags kept."""
    tree.sc.fail_on[("mount", "/")] = errno.EPERM
    with pytest.raises(Exception, match="Operation not permitted"):
        mounts.readonly_root(tree.sc)
    assert [call[4] & ~RDONLY for call in tree.sc.calls] == [BIND | REMOUNT, BIND | REMOUNT | _locked("/")]


def _locked(path: str) -> int:
    st = os.statvfs(path)
    bits = ((1, c.MS_RDONLY), (2, c.MS_NOSUID), (4, c.MS_NODEV), (8, c.MS_NOEXEC), (1024, c.MS_NOATIME),
            (2048, c.MS_NODIRATIME), (4096, c.MS_RELATIME))  # fmt: skip
    return sum(ms for bit, ms in bits if st.f_flag & bit) & ~RDONLY
