"""cgroupsPath resolution, systemd slice expansion and mountinfo parsing (no root)."""

from __future__ import annotations

import pytest

from inclavare.errors import SpecError
from inclavare.runtime import cgroups


@pytest.mark.parametrize(
    ("path", "systemd", "want"),
    [
        (None, False, "/cid"),
        ("", False, "/cid"),
        ("/cgrouptest", False, "/cgrouptest"),
        ("/a//b/./c/", False, "/a/b/c"),
        ("/a/../../b", False, "/b"),  # an absolute path cannot climb above the root (runc CleanPath)
        ("testdir/cgrouptest/container", False, "testdir/cgrouptest/container"),
        ("system.slice:rune:cid", True, "/system.slice/rune-cid.scope"),
        (None, True, "/system.slice/rune-cid.scope"),
        ("a-b-c.slice:docker:x", True, "/a.slice/a-b.slice/a-b-c.slice/docker-x.scope"),
        (":crio:x", True, "/system.slice/crio-x.scope"),
        ("user.slice::x", True, "/user.slice/x.scope"),
        ("-.slice:p:x", True, "/p-x.scope"),
        ("system.slice:p:", True, "/system.slice/p-cid.scope"),
        ("system.slice:p:my-pod.slice", True, "/my.slice/my-pod.slice"),
    ],
)
def test_resolve_path(path, systemd, want):
    assert cgroups.resolve_path(path, "cid", systemd) == want


@pytest.mark.parametrize(
    ("path", "systemd"),
    [
        ("../escape", False),
        ("/", False),
        ("plain/path", True),  # --systemd-cgroup needs slice:prefix:name (runc)
        ("a:b", True),
        ("a:b:c:d", True),
        ("nota_slice:p:n", True),
        ("a--b.slice:p:n", True),
        ("-a.slice:p:n", True),
        ("a-.slice:p:n", True),
        ("system.slice:p/q:n", True),
        ("system.slice:p:n/m", True),
    ],
)
def test_bad_paths_name_the_field(path, systemd):
    with pytest.raises(SpecError) as err:
        cgroups.resolve_path(path, "cid", systemd)
    assert err.value.field == "linux.cgroupsPath"


def test_directory_absolute_relative_and_mount_root():
    assert cgroups.directory("/sys/fs/cgroup/pids", "/", "/user/1", "/abs/c") == "/sys/fs/cgroup/pids/abs/c"
    assert cgroups.directory("/sys/fs/cgroup/pids", "/", "/user/1", "rel/c") == "/sys/fs/cgroup/pids/user/1/rel/c"
    assert cgroups.directory("/sys/fs/cgroup/pids", "/", None, "rel") == "/sys/fs/cgroup/pids/rel"
    # The hierarchy is mounted from /docker/abc (e.g. inside a container):
    # /proc/self/cgroup's path is made relative to that root, as runc does.
    assert cgroups.directory("/sys/fs/cgroup/memory", "/docker/abc", "/docker/abc/sub", "c") == (
        "/sys/fs/cgroup/memory/sub/c"
    )


MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 31 0:39 / /mnt/odd\\040dir rw,relatime - cgroup cgroup rw,pids
50 23 0:50 / /proc rw - proc proc rw
"""


def test_mounts_parses_v1_v2_comounts_and_escapes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    found = cgroups.mounts(str(info))
    assert found == {
        "cpu": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
        "cpuacct": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
        "memory": ("/sys/fs/cgroup/memory", "/docker/abc"),
        "name=systemd": ("/sys/fs/cgroup/systemd", "/"),
        "unified": ("/sys/fs/cgroup/unified", "/"),
        "pids": ("/mnt/odd dir", "/"),
    }


def test_own_cgroups_of_this_process():
    own = cgroups.own_cgroups()
    assert own  # every process is in some cgroup
    assert all(path.startswith("/") for path in own.values())


def test_from_state_round_trip():
    from inclavare.runtime.cgroups.v1 import V1Manager
    from inclavare.runtime.cgroups.v2 import V2Manager

    v1 = V1Manager({"pids": "/sys/fs/cgroup/pids/x", "freezer": "/sys/fs/cgroup/freezer/x"}, ["/sys/fs/cgroup/pids/x"])
    back = cgroups.from_state(v1.to_json())
    assert (back.driver, back.paths, back.created) == ("v1", v1.paths, v1.created)
    assert v1.to_json()["freezer_state"] == "/sys/fs/cgroup/freezer/x/freezer.state"
    v2 = V2Manager("/sys/fs/cgroup", "/sys/fs/cgroup/a/b", ["/sys/fs/cgroup/a"])
    back2 = cgroups.from_state(v2.to_json())
    assert (back2.driver, back2.path, back2.created) == ("v2", v2.path, ["/sys/fs/cgroup/a"])
    assert v2.to_json()["freezer_state"] == "/sys/fs/cgroup/a/b/cgroup.freeze"
    assert cgroups.from_state({}) is None
    # state.json written before "created" existed still loads
    assert cgroups.from_state({"driver": "v1", "paths": {"pids": "/p"}}).created == []


def test_mount_sources_name_each_hierarchy_as_the_host_mounts_it():
    """What a "cgroup" mount binds: v1 one entry per hierarchy directory
    (co-mounted cpu,cpuacct once), v2 the one cgroup on the destination."""
    from inclavare.runtime.cgroups.v1 import V1Manager
    from inclavare.runtime.cgroups.v2 import V2Manager

    v1 = V1Manager({"cpu": "/sys/fs/cgroup/cpu,cpuacct/x", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/x",
                    "name=systemd": "/sys/fs/cgroup/systemd/x", "pids": "/sys/fs/cgroup/pids/x",
                    "rdma": "/elsewhere/rdma/x"})  # fmt: skip
    assert v1.mount_sources() == {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/x", "systemd": "/sys/fs/cgroup/systemd/x",
                                  "pids": "/sys/fs/cgroup/pids/x", "rdma": "/elsewhere/rdma/x"}  # fmt: skip
    assert V2Manager("/sys/fs/cgroup", "/sys/fs/cgroup/a/b").mount_sources() == {"": "/sys/fs/cgroup/a/b"}


@pytest.mark.parametrize(("content", "frozen"), [("FROZEN\n", True), ("FREEZING", True), ("1", True),
                                                 ("THAWED", False), ("0", False)])  # fmt: skip
def test_is_frozen_reads_the_saved_freezer_file(tmp_path, content, frozen):
    (tmp_path / "freezer.state").write_text(content)
    assert cgroups.is_frozen({"freezer_state": str(tmp_path / "freezer.state")}) is frozen


def test_is_frozen_without_a_freezer():
    assert cgroups.is_frozen({}) is False
    assert cgroups.is_frozen({"freezer_state": "/nonexistent/freezer.state"}) is False
