"""rootfs/masks.py over a scratch rootfs: linux.maskedPaths, linux.readonlyPaths, linux.sysctl."""

from __future__ import annotations

import os

import pytest

from inclavare._sys import consts as c
from inclavare.errors import InclavareError, SyscallError
from inclavare.runtime.rootfs import masks

BIND, REC, RDONLY, REMOUNT = c.MS_BIND, c.MS_REC, c.MS_RDONLY, c.MS_REMOUNT


def test_a_masked_file_gets_dev_null(tree):
    tree.make("/proc/kcore", "secret")
    masks.mask(tree.sc, tree.root_fd, "/proc/kcore")
    assert tree.mounts() == [("/dev/null", "/proc/kcore", "bind", BIND, None)]


def test_a_masked_directory_gets_an_empty_readonly_tmpfs(tree):
    tree.make("/sys/firmware/efi/vars")
    masks.mask(tree.sc, tree.root_fd, "/sys/firmware")
    assert tree.mounts() == [("tmpfs", "/sys/firmware", "tmpfs", RDONLY, None)]
    assert os.listdir(tree.path("/sys/firmware")) == []  # covered, as the container sees it


def test_masking_what_is_not_there_does_nothing(tree):
    masks.mask(tree.sc, tree.root_fd, "/proc/acpi")
    masks.readonly(tree.sc, tree.root_fd, "/proc/bus")
    assert tree.mounts() == []


def test_a_masked_path_is_resolved_in_the_root(tree):
    """A symlink planted where a masked path is resolves inside the rootfs:
    the mask lands on the rootfs's file, never on the host's."""
    tree.make("/etc/shadow", "in the image")
    os.makedirs(tree.path("/proc"))
    os.symlink("/etc/shadow", tree.path("/proc/kcore"))
    masks.mask(tree.sc, tree.root_fd, "/proc/kcore")
    assert tree.mounts() == [("/dev/null", "/etc/shadow", "bind", BIND, None)]


def test_a_readonly_path_is_bound_onto_itself_then_remounted(tree):
    tree.make("/proc/sys/")
    masks.readonly(tree.sc, tree.root_fd, "/proc/sys")
    (src, where, fstype, flags, _d), remount = tree.mounts()
    bind = next(call for call in tree.sc.calls if call[0] == "mount")
    assert src == bind[1]  # source and target: the same opened fd (/proc/self/fd/N)
    assert (where, fstype, flags) == ("/proc/sys", "bind", BIND | REC)
    assert remount == (None, "/proc/sys", None, RDONLY | REC | BIND | REMOUNT, None)


def test_a_readonly_path_swapped_before_the_remount_stays_untouched(tree):
    tree.make("/proc/sys/")

    def swap(real: str) -> None:
        os.rename(real, real + ".old")
        os.mkdir(real)

    tree.sc.after_mount = swap
    with pytest.raises(SyscallError, match="no longer resolves to the new mount"):
        masks.readonly(tree.sc, tree.root_fd, "/proc/sys")
    assert [flags & REMOUNT for *_r, flags, _d in tree.mounts()] == [0]


def test_sysctl_is_written_through_the_containers_proc(tree):
    path = tree.make("/proc/sys/net/ipv4/ip_forward", "0")
    masks.write_sysctl(tree.sc, tree.root_fd, "net.ipv4.ip_forward", "1")
    with open(path) as f:
        assert f.read() == "1"
    assert [call[1] for call in tree.sc.calls] == ["proc/sys/net/ipv4/ip_forward"]  # one openat2, in the root


def test_a_sysctl_that_does_not_exist_is_one_line(tree):
    tree.make("/proc/sys/")
    with pytest.raises(InclavareError, match=r"^openat2 proc/sys/kernel/nope: No such file or directory$"):
        masks.write_sysctl(tree.sc, tree.root_fd, "kernel.nope", "1")
