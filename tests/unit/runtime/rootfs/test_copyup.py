"""tmpcopyup (rootfs/copyup.py, and the tmpfs mount around it in mounts.py)."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from inclavare._sys import consts as c
from inclavare.errors import InclavareError
from inclavare.runtime.config import MountEntry
from inclavare.runtime.rootfs import copyup, mounts

DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def test_copy_tree_keeps_modes_owners_times_and_links(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    dst.mkdir()
    (src / "sub" / "file").write_text("data")
    if os.geteuid() == 0:
        os.chown(src / "sub" / "file", 1234, 5678)
    os.chmod(src / "sub" / "file", 0o4750)
    os.chmod(src / "sub", 0o710)
    os.symlink("/etc/passwd", src / "link")  # copied as a link, never followed
    os.mkfifo(src / "fifo", 0o600)
    os.utime(src / "sub" / "file", ns=(1_000_000_000, 2_000_000_000))
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(src / "sock"))  # skipped: a socket means nothing copied
    s_fd, d_fd = os.open(src, DIR), os.open(dst, DIR)
    try:
        copyup.copy_tree(s_fd, d_fd)
    finally:
        os.close(s_fd)
        os.close(d_fd)
    assert sorted(os.listdir(dst)) == ["fifo", "link", "sub"]
    st = os.stat(dst / "sub" / "file")
    assert (dst / "sub" / "file").read_text() == "data"
    assert stat.S_IMODE(st.st_mode) == 0o4750  # set after chown, which clears set-id bits
    assert stat.S_IMODE(os.stat(dst / "sub").st_mode) == 0o710
    assert st.st_mtime_ns == 2_000_000_000
    assert os.readlink(dst / "link") == "/etc/passwd"
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_tmpcopyup_fills_the_new_tmpfs_from_what_it_covers(tree):
    tree.make("/var/cache/app/index", "cached")
    entry = MountEntry("/var/cache/app", "tmpfs", "tmpfs", c.MS_NOSUID | c.MS_RDONLY, [], "mode=755", True)
    mounts.mount_one(tree.sc, tree.root_fd, entry)
    tmpfs, remount = tree.mounts()
    assert tmpfs == ("tmpfs", "/var/cache/app", "tmpfs", c.MS_NOSUID, "mode=755")  # writable while it is filled
    assert remount[1:] == ("/var/cache/app", None, c.MS_NOSUID | c.MS_RDONLY | c.MS_BIND | c.MS_REMOUNT, None)
    with open(tree.path("/var/cache/app/index")) as f:  # the new directory the "tmpfs" put there
        assert f.read() == "cached"


def test_tmpcopyup_needs_a_tmpfs(tree):
    tree.make("/data/")
    entry = MountEntry("/data", "proc", "proc", 0, [], "", True)
    with pytest.raises(InclavareError, match=r"mounts\[0\]: mounting proc from proc on /data: .*tmpfs mounts only"):
        mounts.mount_all(tree.sc, tree.root_fd, [entry], {})
    assert tree.mounts() == []


def test_tmpcopyup_refuses_a_target_swapped_after_the_mount(tree):
    """The copy goes where the path leads after mounting; if that is not
    the new tmpfs any more, nothing is copied there."""
    tree.make("/var/cache/app/index", "cached")

    def swap(real: str) -> None:
        os.rename(real, real + ".tmpfs")
        os.mkdir(real)

    tree.sc.after_mount = swap
    entry = MountEntry("/var/cache/app", "tmpfs", "tmpfs", 0, [], "", True)
    with pytest.raises(InclavareError, match="no longer resolves to the new tmpfs"):
        mounts.mount_all(tree.sc, tree.root_fd, [entry], {})
    assert os.listdir(tree.path("/var/cache/app")) == []
