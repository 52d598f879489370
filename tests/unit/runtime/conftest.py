"""A scratch rootfs and the recording syscalls over it (_sys/fake.py TreeSyscalls):
container setup runs for real on the tree, without root; mounts are only recorded."""

from __future__ import annotations

import os

import pytest

from inclavare._sys.fake import TreeSyscalls


class Tree:
    def __init__(self, base) -> None:
        self.rootfs = str(base / "rootfs")
        os.mkdir(self.rootfs)
        os.mkdir(base / "covered")
        self.sc = TreeSyscalls(str(base / "covered"))
        self.root_fd = os.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def path(self, inside: str) -> str:
        return os.path.join(self.rootfs, inside.lstrip("/"))

    def make(self, inside: str, content: str = "", mode: int = 0o644) -> str:
        """A file in the rootfs (a directory if `inside` ends with /)."""
        path = self.path(inside)
        if inside.endswith("/"):
            os.makedirs(path, exist_ok=True)
            return path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def mounts(self) -> list[tuple[str | None, str, str | None, int, str | None]]:
        """(source, target, fstype, flags, data) of each mount(2) call, in order,
        the target as a path in the rootfs when it was one."""
        return [(src, self.inside(real), fstype, flags, data) for src, real, fstype, flags, data in self.sc.mounts]

    def inside(self, real: str) -> str:
        if real == self.rootfs:
            return "/"
        return real[len(self.rootfs) :] if real.startswith(self.rootfs + "/") else real


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    yield t
    os.close(t.root_fd)
