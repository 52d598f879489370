"""Where a PAL library may come from: registry.select and the ownership walk (_sys/trusted.py).

Every route a bundle (or an image behind it) could use to name a file of its
own is tried here against real files; the integration tier
(tests/integration/test_pal_origin.py) does the same through `rune run`.
"""

from __future__ import annotations

import os
import shutil

import pytest

from inclavare._sys.trusted import open_trusted
from inclavare.enclave import registry
from inclavare.enclave.errors import EnclaveRuntimeNotFound
from inclavare.errors import UntrustedPath

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need files owned by others (root)")


@pytest.fixture
def node(tmp_path):
    """A PAL directory of the operator's and a bundle of someone else's."""
    pal_dir = tmp_path / "pal"
    pal_dir.mkdir(mode=0o755)
    lib = pal_dir / "liberpal-ok.so"
    shutil.copyfile("/usr/bin/true", lib)
    os.chmod(lib, 0o755)
    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "lib").mkdir(parents=True)
    evil = bundle / "rootfs" / "lib" / "liberpal-evil.so"
    shutil.copyfile("/usr/bin/true", evil)
    os.chmod(evil, 0o755)
    return {"pal_dir": str(pal_dir), "lib": str(lib), "bundle": str(bundle), "evil": str(evil)}


def select(node: dict[str, str], path: str) -> int:
    return registry.select(path, pal_dirs=(node["pal_dir"],), forbidden=(node["bundle"], node["bundle"] + "/rootfs"))


def refusal(node: dict[str, str], path: str) -> str:
    with pytest.raises(EnclaveRuntimeNotFound) as err:
        select(node, path)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def same_file(fd: int, path: str) -> bool:
    a, b = os.fstat(fd), os.stat(path)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def test_a_library_in_the_configured_directory_is_opened_by_fd(node):
    fd = select(node, node["lib"])
    try:
        assert same_file(fd, node["lib"])
        assert os.get_inheritable(fd) is False
    finally:
        os.close(fd)


def test_names_of_registered_runtimes_open_nothing(node):
    assert select(node, "wasm") == -1
    assert select(node, "native") == -1


@pytest.mark.parametrize(
    "route",
    [
        "direct",  # the image's own file, by its absolute path
        "dotdot",  # /pal/../bundle/rootfs/...
        "proc-cwd",  # /proc/self/cwd/... (rune's cwd is often the bundle)
        "proc-root",  # /proc/self/root/<the file>
        "proc-pid-root",  # /proc/<pid>/root/...
        "symlink-in-bundle",  # a link in the bundle to the image's file
        "symlink-in-pal-dir-to-bundle",  # a link in the operator's dir pointing out
    ],
)
def test_every_route_to_the_bundles_own_file_is_refused(node, route, monkeypatch):
    evil = node["evil"]
    if route == "direct":
        path = evil
    elif route == "dotdot":
        path = node["pal_dir"] + "/../bundle/rootfs/lib/liberpal-evil.so"
    elif route == "proc-cwd":
        monkeypatch.chdir(node["bundle"])
        path = "/proc/self/cwd/rootfs/lib/liberpal-evil.so"
    elif route == "proc-root":
        path = "/proc/self/root" + evil
    elif route == "proc-pid-root":
        path = f"/proc/{os.getpid()}/root" + evil
    elif route == "symlink-in-bundle":
        path = node["bundle"] + "/link.so"
        os.symlink(evil, path)
    else:
        path = node["pal_dir"] + "/liberpal-link.so"
        os.symlink(evil, path)
    msg = refusal(node, path)
    assert msg.startswith(f"enclave runtime {path}: ")
    assert msg.endswith(f"PAL libraries are loaded only from the node's pal_dirs ({node['pal_dir']}), "
                        "in the administrator's files")  # fmt: skip


def test_a_symlink_into_the_configured_directory_counts_as_its_target(node, tmp_path):
    link = tmp_path / "elsewhere.so"
    os.symlink(node["lib"], link)
    fd = select(node, str(link))
    assert same_file(fd, node["lib"])
    os.close(fd)


def test_the_bundle_inside_a_configured_directory_is_still_refused(node):
    msg = registry_error(node["evil"], pal_dirs=(os.path.dirname(node["bundle"]),), bundle=node["bundle"])
    assert f"resolves to {node['evil']}, inside {node['bundle']}" in msg


def registry_error(path: str, pal_dirs: tuple[str, ...], bundle: str) -> str:
    with pytest.raises(EnclaveRuntimeNotFound) as err:
        registry.select(path, pal_dirs=pal_dirs, forbidden=(bundle,))
    return str(err.value)


@root_only
def test_a_hard_link_in_the_bundle_is_not_the_operators_file(node):
    link = node["bundle"] + "/rootfs/lib/liberpal-hard.so"
    os.link(node["lib"], link)  # same inode as the operator's library, but named by the image
    assert "inside" in refusal(node, link)


@root_only
@pytest.mark.parametrize(
    ("target", "change", "reason"),
    [
        ("file", lambda p: os.chown(p, 1000, 1000), "is owned by uid 1000, not root"),
        ("file", lambda p: os.chmod(p, 0o775), "is writable by group or others"),
        ("file", lambda p: os.chmod(p, 0o757), "is writable by group or others"),
        ("dir", lambda p: os.chown(p, 1000, 0), "is owned by uid 1000, not root"),
        ("dir", lambda p: os.chmod(p, 0o777), "is writable by group or others"),
        ("dir", lambda p: os.chmod(p, 0o775), "is writable by group or others"),
    ],
)
def test_what_others_could_change_is_refused(node, target, change, reason):
    change(node["lib"] if target == "file" else node["pal_dir"])
    msg = refusal(node, node["lib"])
    assert reason in msg
    if target == "dir":
        assert f"directory {node['pal_dir']} " in msg


@root_only
def test_a_sticky_world_writable_directory_on_the_way_is_fine(node):
    """/tmp-like: nobody but the owner may rename or remove an entry (unlink(2))."""
    os.chmod(os.path.dirname(node["pal_dir"]), 0o1777)
    os.close(select(node, node["lib"]))


def test_fifos_devices_and_directories_are_not_libraries(node):
    fifo = node["pal_dir"] + "/liberpal-fifo.so"
    os.mkfifo(fifo, 0o644)
    assert "not a regular file" in refusal(node, fifo)  # and open() did not block on it
    assert "not a regular file" in refusal(node, node["pal_dir"])


def test_open_trusted_without_allowed_dirs_still_walks():
    fd = open_trusted("/usr/bin/true", allowed=())
    os.close(fd)
    with pytest.raises(UntrustedPath, match=r"^/tmp: not a regular file$"):
        open_trusted("/tmp", allowed=())


def test_a_path_swapped_after_the_check_loads_the_checked_file(node, pal):
    """select() in `rune create`, dlopen in init: the fd, not the path, crosses the gap."""
    path = node["pal_dir"] + "/liberpal-swap.so"
    shutil.copyfile(pal("v3"), path)
    fd = select(node, path)
    try:
        os.rename(shutil.copyfile(pal("v1"), path + ".new"), path)  # the name now holds a v1 PAL
        rt = registry.resolve(path, fd)(tee="software")
        assert rt.probe()["api_version"] == 3
    finally:
        os.close(fd)
