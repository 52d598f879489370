"""Files of an untrusted rootfs: resolved inside it, regular files only, bounded (enclave/identity/rootfs.py).

The identity layer hashes with these checks, and the built-in runtimes read
their program with the same function (before, each runtime had its own copy,
which read FIFOs and devices).
"""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from inclavare.enclave.identity.errors import IdentityError
from inclavare.enclave.identity.rootfs import RootfsError, read_in_root, sha256_in_root


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "app").write_bytes(b"inside")
    (tmp_path / "secret").write_bytes(b"host secret")
    return root


def test_symlinks_resolve_inside_the_rootfs(rootfs, tmp_path):
    (rootfs / "bin" / "up").symlink_to("../../secret")  # climbs to / of the rootfs, not out of it
    (rootfs / "bin" / "abs").symlink_to("/bin/app")
    assert read_in_root(str(rootfs), "/bin/abs", 100) == b"inside"
    assert sha256_in_root(str(rootfs), "/bin/abs") == hashlib.sha256(b"inside").digest()
    with pytest.raises(RootfsError, match=r"^/bin/up: No such file or directory in rootfs$"):
        read_in_root(str(rootfs), "/bin/up", 100)


def test_a_fifo_is_refused_without_waiting_for_a_writer(rootfs):
    os.mkfifo(rootfs / "bin" / "pipe")
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_in_root(str(rootfs), "/bin/pipe", 100)
        except RootfsError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "blocked on a FIFO"
    assert [str(e) for e in outcome] == ["/bin/pipe: not a regular file"]
    with pytest.raises(RootfsError, match=r"^/bin: not a regular file$"):
        sha256_in_root(str(rootfs), "/bin")


def test_the_size_is_bounded(rootfs):
    assert read_in_root(str(rootfs), "/bin/app", 6) == b"inside"
    with pytest.raises(RootfsError, match=r"^/bin/app: larger than 5 bytes$"):
        read_in_root(str(rootfs), "/bin/app", 5)
    (rootfs / "big").write_bytes(bytes((1 << 20) + 1))
    with pytest.raises(RootfsError, match=r"^/big: larger than 1 MiB$"):
        read_in_root(str(rootfs), "/big", 1 << 20)


def test_errors_are_in_the_tree(tmp_path):
    with pytest.raises(IdentityError, match=r"^rootfs .*/missing: No such file or directory$"):
        read_in_root(str(tmp_path / "missing"), "/x", 1)
