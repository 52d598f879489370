"""A fake host for the device plugin: rune's path, SGX device nodes (a device node needs root to make)."""

from __future__ import annotations

import os
import stat

import pytest

RUNE = "/usr/local/bin/rune"
MISC_MAJOR = 10


def make_misc_device(root: str, path: str, minor: int = 125) -> None:
    """A character device node of the misc major, as the SGX drivers make (needs root)."""
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    os.mknod(full, 0o600 | stat.S_IFCHR, os.makedev(MISC_MAJOR, minor))


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device node needs root")
