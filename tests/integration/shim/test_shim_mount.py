"""containerd's snapshot mounts on <bundle>/rootfs: overlay, a read-only bind, and lowerdirs beyond a page."""

from __future__ import annotations

import os

import pytest
from crikit import host

from inclavare.shim import mount
from inclavare.shim.errors import InvalidArgument

pytestmark = pytest.mark.root


@pytest.fixture
def base(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    yield tmp_path
    host.unmount_below(str(tmp_path))


def layers(base, n: int, name_len: int) -> list[str]:
    out = []
    for i in range(n):
        d = base / "layers" / f"{i:03d}-{'x' * name_len}"
        d.mkdir(parents=True)
        (d / f"file{i}").write_text(str(i))
        (d / "top").write_text(str(i))
        out.append(str(d))
    return out


def overlay(base, lower: list[str]) -> tuple[str, str, list[str]]:
    upper, work = base / "upper", base / "work"
    upper.mkdir()
    work.mkdir()
    # as containerd's overlayfs snapshotter writes them: upper first in lowerdir is the newest
    return "overlay", "overlay", ["index=off", f"workdir={work}", f"upperdir={upper}", f"lowerdir={':'.join(lower)}"]


def test_overlay_rootfs_and_unmount(base):
    target = base / "rootfs"
    target.mkdir()
    lower = layers(base, 3, 4)
    mount.mount_rootfs([overlay(base, lower)], str(target))
    assert (target / "top").read_text() == "0"  # the first lowerdir wins
    assert sorted(p for p in os.listdir(target) if p.startswith("file")) == ["file0", "file1", "file2"]
    mount.unmount_all(str(target))
    assert os.listdir(target) == []


def test_lowerdirs_longer_than_a_page_go_through_short_links(base):
    """An image of many layers: containerd's option string exceeds mount(2)'s page of data."""
    target = base / "rootfs"
    target.mkdir()
    lower = layers(base, 60, 120)
    assert len(":".join(lower)) > mount.PAGE
    mount.mount_rootfs([overlay(base, lower)], str(target))
    assert (target / "top").read_text() == "0"
    assert (target / "file59").read_text() == "59"
    assert os.listdir(mount.LINKS_ROOT) == []  # the links are gone once overlayfs resolved them
    mount.unmount_all(str(target))


def test_read_only_bind_is_read_only(base):
    src, target = base / "src", base / "rootfs"
    src.mkdir()
    target.mkdir()
    (src / "f").write_text("x")
    mount.mount_rootfs([("bind", str(src), ["rbind", "ro"])], str(target))
    assert (target / "f").read_text() == "x"
    with pytest.raises(OSError, match="Read-only file system"):
        (target / "g").write_text("y")
    mount.unmount_all(str(target))


def test_a_failed_component_leaves_nothing_mounted(base):
    target = base / "rootfs"
    target.mkdir()
    lower = layers(base, 1, 4)
    with pytest.raises(Exception, match="failed to mount rootfs component"):
        mount.mount_rootfs([overlay(base, lower), ("overlay", "overlay", ["lowerdir=/nonexistent"])], str(target))
    assert host.mounts_below(str(target)) == []
    with pytest.raises(InvalidArgument, match="loop devices are not supported"):
        mount.mount_rootfs([("ext4", "/img", ["loop"])], str(target))
