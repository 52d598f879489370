"""Shared fixtures: an isolated rune state root per test and a cached busybox rootfs."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNE = os.path.join(ROOT, "build", "rune")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (integration tier)")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def rootfs_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    from inclavare.testing.bundles import build_rootfs

    return build_rootfs(str(tmp_path_factory.mktemp("rootfs-cache") / "rootfs"))


@pytest.fixture
def state_root(tmp_path) -> str:
    return str(tmp_path / "state")


class Rune:
    """Runs the real `build/rune` binary with a private --root."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, *args: str, check: bool = False, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        # Output goes through files, not pipes: a detached container inherits
        # rune's stdio and would hold a pipe open long after rune exits.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdout", out)
            kw.setdefault("stderr", err)
            proc = subprocess.run([RUNE, "--root", self.root, *args], timeout=timeout, **kw)
            out.seek(0)
            err.seek(0)
            proc.stdout = out.read().decode(errors="replace") if kw["stdout"] is out else proc.stdout
            proc.stderr = err.read().decode(errors="replace") if kw["stderr"] is err else proc.stderr
        if check and proc.returncode != 0:
            raise AssertionError(f"rune {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def cleanup(self) -> None:
        if not os.path.isdir(self.root):
            return
        for cid in os.listdir(self.root):
            self("delete", "--force", cid)


@pytest.fixture
def rune(state_root: str):
    r = Rune(state_root)
    yield r
    r.cleanup()


@pytest.fixture
def bundle(tmp_path, rootfs_cache):
    """bundle(config) -> path of a bundle directory with that config."""
    from inclavare.testing.bundles import make_bundle

    count = [0]

    def make(config: dict) -> str:
        count[0] += 1
        return make_bundle(str(tmp_path / f"bundle{count[0]}"), config, rootfs_cache)

    return make
