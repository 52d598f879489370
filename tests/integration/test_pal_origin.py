"""No bundle can make rune load a library of its own (fail closed, docs/architecture.md).

A bundle's rootfs carries a "PAL" whose constructor leaves a marker file the
moment it is loaded (tests/fixtures/pal/evil.c). Each route a bundle — or the
image it was unpacked from — could take to name that file, or to get a file of
its choosing into the node's PAL directory's place, is tried through `rune
run`. For every route: a one-line refusal, exit 1, no state left behind, no
marker, and inotify saw nobody open the file at all.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import threading

import pytest

from inclavare.testing.bundles import base_config

pytestmark = pytest.mark.root

IN_OPEN, IN_NONBLOCK, IN_CLOEXEC = 0x20, 0o4000, 0o2000000


class OpenWatch:
    """inotify(7) IN_OPEN on files: did anyone open one of them, by any name (hard links too)?"""

    def __init__(self, *paths: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        assert self.fd >= 0
        for path in paths:
            assert libc.inotify_add_watch(self.fd, path.encode(), IN_OPEN) >= 0, path

    def opened(self) -> bool:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return False
        offset = 0
        while offset < len(data):  # struct inotify_event: wd, mask, cookie, len, name[len]
            _wd, mask, _cookie, size = struct.unpack_from("iIII", data, offset)
            if mask & IN_OPEN:
                return True
            offset += 16 + size
        return False

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def evil(tmp_path, bundle, cc):
    """(bundle path, the evil library in its rootfs, the marker it would leave)."""
    marker = str(tmp_path / "LOADED")
    b = bundle(base_config(["true"]))
    lib_dir = os.path.join(b, "rootfs", "lib")
    os.makedirs(lib_dir, exist_ok=True)
    lib = cc(os.path.join(lib_dir, "liberpal-evil.so"), ["evil.c"],
             ["-O1", "-Wall", "-Werror", "-shared", "-fPIC", f'-DMARKER="{marker}"'])  # fmt: skip
    os.chmod(lib, 0o755)
    return b, lib, marker


def set_runtime(bundle: str, path: str, by_env: bool = False) -> None:
    import json

    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if by_env:
        cfg["process"]["env"] += ["ENCLAVE_TYPE=software", f"ENCLAVE_RUNTIME_PATH={path}"]
    else:
        cfg["annotations"] = {"enclave.type": "software", "enclave.runtime.path": path}
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)


def assert_refused(rune, bundle: str, lib: str, marker: str, state_root: str, cid: str, **kw) -> str:
    watch = OpenWatch(lib)
    try:
        r = rune("run", "--bundle", bundle, cid, **kw)
        opened = watch.opened()
    finally:
        watch.close()
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "PAL libraries are loaded only from the node's pal_dirs" in r.stderr
    assert not os.path.exists(marker), "the bundle's library was loaded"
    assert not opened, "the bundle's library was opened"
    assert not os.path.exists(os.path.join(state_root, cid))
    return r.stderr


@pytest.mark.parametrize(
    "route",
    [
        "annotation",
        "env",
        "proc-self-cwd",
        "proc-self-root",
        "proc-pid-root",
        "dotdot",
        "symlink-in-bundle",
        "symlink-outside-bundle",
        "symlink-in-pal-dir",
    ],
)
def test_a_bundle_cannot_name_its_own_library(rune, evil, route, pal_dir, tmp_path, state_root):
    b, lib, marker = evil
    kw = {}
    path = {
        "annotation": lib,
        "env": lib,
        "proc-self-cwd": "/proc/self/cwd/rootfs/lib/liberpal-evil.so",
        "proc-self-root": "/proc/self/root" + lib,
        "proc-pid-root": f"/proc/{os.getpid()}/root" + lib,
        "dotdot": pal_dir + "/" + os.path.relpath(lib, pal_dir),
        "symlink-in-bundle": os.path.join(b, "pal.so"),
        "symlink-outside-bundle": str(tmp_path / "pal.so"),
        "symlink-in-pal-dir": os.path.join(pal_dir, f"liberpal-link-{os.getpid()}.so"),
    }[route]
    if route.startswith("symlink"):
        os.symlink(lib, path)
    if route == "proc-self-cwd":
        kw["cwd"] = b
    set_runtime(b, path, by_env=route == "env")
    try:
        err = assert_refused(rune, b, lib, marker, state_root, "evil", **kw)
    finally:
        if route == "symlink-in-pal-dir":
            os.unlink(path)
    where = "process.env ENCLAVE_RUNTIME_PATH" if route == "env" else "annotations.enclave.runtime.path"
    assert f"config.json: {where}: enclave runtime {path}: " in err


def test_a_hard_link_in_the_bundle_to_a_node_pal_is_refused(rune, evil, pal, state_root):
    b, lib, marker = evil
    link = os.path.join(b, "rootfs", "lib", "liberpal-hard.so")
    os.link(pal("v2"), link)  # the operator's inode, under the image's name
    set_runtime(b, link)
    err = assert_refused(rune, b, lib, marker, state_root, "hard")
    assert f"resolves to {link}, inside {b}" in err


def test_a_library_swapped_in_during_create_is_never_loaded(rune, evil, pal, pal_dir, bundle, state_root):
    """The name flips between the node's PAL and a symlink to the bundle's, as fast as it can,
    while containers are made: each create either refuses the link or loads the file it checked."""
    b, lib, marker = evil
    path = os.path.join(pal_dir, "liberpal-flip.so")
    good = shutil.copyfile(pal("v2"), path + ".good")
    os.symlink(lib, path + ".evil")
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            shutil.copyfile(good, path + ".tmp")
            os.rename(path + ".tmp", path)
            os.symlink(lib, path + ".lnk")
            os.rename(path + ".lnk", path)

    set_runtime(b, path)
    watch = OpenWatch(lib)
    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    outcomes = set()
    try:
        for i in range(15):
            r = rune("run", "--bundle", b, f"flip{i}")
            outcomes.add(r.returncode)
            assert r.returncode in (0, 1), r.stderr
            if r.returncode:
                assert "PAL libraries are loaded only from" in r.stderr or "changed while being checked" in r.stderr
    finally:
        stop.set()
        flipper.join()
        opened = watch.opened()
        watch.close()
        for name in (path, path + ".good", path + ".evil"):
            if os.path.lexists(name):
                os.unlink(name)
    assert not os.path.exists(marker)
    assert not opened
