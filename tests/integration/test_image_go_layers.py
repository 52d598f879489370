"""Layers written by Go's archive/tar (umoci repack) go through the strict tar reader unchanged.

The reader refuses what tarfile tolerated (docs/encrypted-images.md, "Tar
headers"); this checks that what the Go tools that write most layers
produce is still accepted, entry for entry: pax long names and link
targets, xattrs, setuid bits, device nodes, fifos and times past 2038.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys

import pytest

from inclavare.image.build import build_image, tar_directory

UMOCI = shutil.which("umoci")
pytestmark = [pytest.mark.root, pytest.mark.skipif(UMOCI is None, reason="umoci is not installed")]
LONG_DIR, LONG_FILE, LONG_LINK = "d" * 120, "f" * 120, "t" * 130
FUTURE = 4_102_444_800  # 2100-01-01


def umoci(*args: str) -> None:
    done = subprocess.run([UMOCI or "umoci", *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_umoci_repacked_layer_unpacks_the_same(tmp_path, rootfs_cache) -> None:
    layout = str(tmp_path / "img")
    build_image(layout, "v1", [(tar_directory(rootfs_cache), "gzip")], {"Cmd": ["/bin/true"]})
    umoci("unpack", "--image", f"{layout}:v1", str(tmp_path / "work"))
    root = tmp_path / "work/rootfs"
    deep = root / "deep" / LONG_DIR
    deep.mkdir(parents=True)
    (deep / LONG_FILE).write_text("long\n")
    os.symlink(LONG_LINK, root / "deep/longlink")
    os.mknod(root / "deep/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(root / "deep/fifo", 0o620)
    (root / "deep/suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "deep/suid", 0o4755)
    os.utime(root / "deep/suid", (FUTURE, FUTURE))
    os.setxattr(root / "bin/busybox", "user.note", b"kept")
    umoci("repack", "--image", f"{layout}:v2", str(tmp_path / "work"))

    done = subprocess.run([sys.executable, "-m", "inclavare.cli.tool._main", "image", "unpack", f"{layout}:v2",
                           str(tmp_path / "ours")],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ours = tmp_path / "ours/rootfs"
    assert (ours / "deep" / LONG_DIR / LONG_FILE).read_text() == "long\n"
    assert os.readlink(ours / "deep/longlink") == LONG_LINK
    null = os.lstat(ours / "deep/null")
    assert (stat.S_ISCHR(null.st_mode), os.major(null.st_rdev), os.minor(null.st_rdev)) == (True, 1, 3)
    assert stat.S_ISFIFO(os.lstat(ours / "deep/fifo").st_mode)
    suid = os.lstat(ours / "deep/suid")
    assert (stat.S_IMODE(suid.st_mode), int(suid.st_mtime)) == (0o4755, FUTURE)
    assert os.getxattr(ours / "bin/busybox", "user.note") == b"kept"
    assert sorted(os.listdir(ours)) == sorted(os.listdir(root))
