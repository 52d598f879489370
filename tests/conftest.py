"""Shared fixtures: an isolated rune state root per test and a cached busybox rootfs."""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile

import pytest

# The CRI tests talk gRPC from this process; by default grpcio's fork handlers
# restart its threads in every forked child, and tests that fork (seccomp's
# run_confined, SCMP_ACT_KILL_THREAD) then leave a child whose other threads
# hold the pipe open forever. Set before anything imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

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
    """Runs the real `build/rune` binary with a private --root (and the test node's --config)."""

    def __init__(self, root: str, config: str | None = None) -> None:
        self.root = root
        self.globals = ["--root", root, *(["--config", config] if config else [])]

    def __call__(self, *args: str, check: bool = False, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        # Output goes through files, not pipes: a detached container inherits
        # rune's stdio and would hold a pipe open long after rune exits.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdout", out)
            kw.setdefault("stderr", err)
            proc = subprocess.run([RUNE, *self.globals, *args], timeout=timeout, **kw)
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
def rune(state_root: str, node_config: str):
    r = Rune(state_root, node_config)
    yield r
    r.cleanup()


@pytest.fixture(scope="session")
def pal_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test node's PAL directory: where `pal` builds the fixture PALs."""
    return str(tmp_path_factory.mktemp("pal"))


@pytest.fixture(scope="session")
def node_config(tmp_path_factory: pytest.TempPathFactory, pal_dir: str) -> str:
    """The test node's rune configuration (runtime/nodeconfig.py): PALs load from `pal_dir` only."""
    path = tmp_path_factory.mktemp("etc") / "rune.toml"
    path.write_text(f'[enclave]\npal_dirs = ["{pal_dir}"]\n')
    return str(path)


@pytest.fixture
def bundle(tmp_path, rootfs_cache):
    """bundle(config) -> path of a bundle directory with that config."""
    from inclavare.testing.bundles import make_bundle

    count = [0]

    def make(config: dict) -> str:
        count[0] += 1
        return make_bundle(str(tmp_path / f"bundle{count[0]}"), config, rootfs_cache)

    return make


# -- fixture PALs (tests/fixtures/pal), compiled with the system gcc on first use ----------
# pal("v2") returns the path of liberpal-v2.so built into the session's tmp dir.

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "pal")
CFLAGS = ["-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]

# variant -> (PAL source, compiler flags); see the head of each source file.
VARIANTS = {
    "v1": ("pal_v1.c", []),
    "v1-noversion": ("pal_v1.c", ["-DNO_GET_VERSION"]),
    "v2": ("pal_v2.c", ["-DPAL_API_VERSION=2"]),
    "v2-nokill": ("pal_v2.c", ["-DPAL_API_VERSION=2", "-DNO_KILL"]),
    "v2-noexec": ("pal_v2.c", ["-DPAL_API_VERSION=2", "-DNO_EXEC"]),
    "v2-eintr": ("pal_v2.c", ["-DPAL_API_VERSION=2", "-DNO_EINTR_RETRY"]),
    "v3": ("pal_v2.c", ["-DPAL_API_VERSION=3"]),
    "v3-v4": ("pal_v2.c", ["-DPAL_API_VERSION=3", "-DREPORTED_VERSION=4"]),
}


def compile_c(out: str, sources: list[str], flags: list[str]) -> str:
    cmd = ["gcc", *flags, "-I", SRC, "-o", out, *(os.path.join(SRC, s) for s in sources)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return out


@pytest.fixture(scope="session")
def cc():
    """cc(out, sources, flags) -> out: compile fixture sources with gcc."""
    return compile_c


@pytest.fixture(scope="session")
def pal(pal_dir: str):
    """pal(variant) -> absolute path of that fixture PAL, in the test node's PAL directory."""
    out_dir = pathlib.Path(pal_dir)
    built: dict[str, str] = {}

    def build(variant: str) -> str:
        if variant not in built:
            source, flags = VARIANTS[variant]
            out = str(out_dir / f"liberpal-{variant}.so")
            built[variant] = compile_c(out, [source, "passthrough.c"], [*CFLAGS, *flags])
        return built[variant]

    return build
