"""Building OCI bundles on a busybox-static root filesystem.

The rootfs is made the way the OCI harness makes its own: Debian's static
busybox plus one symlink per applet, and an /etc/passwd with root and a
uid-10 ``test`` user.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess

BUSYBOX = "/bin/busybox"


def build_rootfs(path: str) -> str:
    """Create (or reuse) a busybox rootfs at `path`; returns `path`."""
    marker = os.path.join(path, ".rune-test-rootfs")
    if os.path.exists(marker):
        return path
    bindir = os.path.join(path, "bin")
    os.makedirs(bindir, exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(bindir, "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = os.path.join(bindir, applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    for d in ("etc", "tmp", "proc", "sys", "dev", "root", "home/test"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    os.chmod(os.path.join(path, "tmp"), 0o1777)
    with open(os.path.join(path, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\ntest:x:10:10:test:/home/test:/bin/sh\n")
    with open(os.path.join(path, "etc/group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\ntest:x:10:\n")
    open(marker, "w").close()
    return path


def base_config(args: list[str] | None = None) -> dict:
    """runc's template made non-interactive, running `args` (default: true)."""
    from ..spec.template import example

    spec = copy.deepcopy(example())
    process = spec["process"]
    assert isinstance(process, dict)
    process["terminal"] = False
    process["args"] = args or ["true"]
    return spec


def make_bundle(directory: str, config: dict | None = None, rootfs_cache: str | None = None) -> str:
    """Write config.json and a rootfs into `directory` (rootfs copied from a
    cache when given, so many tests share one busybox tree)."""
    os.makedirs(directory, exist_ok=True)
    rootfs = os.path.join(directory, "rootfs")
    if rootfs_cache:
        build_rootfs(rootfs_cache)
        if not os.path.exists(rootfs):
            shutil.copytree(rootfs_cache, rootfs, symlinks=True)
    else:
        build_rootfs(rootfs)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config if config is not None else base_config(), f, indent=1)
    return directory
