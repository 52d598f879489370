"""Container setup decisions checked over the recording FakeSyscalls (no root):
mount options -> mount(2) calls, namespace plans, the bounding set."""

from __future__ import annotations

import os

import pytest

from inclavare._sys import consts as c
from inclavare._sys.fake import FakeSyscalls
from inclavare.errors import SyscallError
from inclavare.runtime import config, privileges
from inclavare.runtime.rootfs import mounts
from inclavare.spec.load import parse_spec
from inclavare.spec.template import example


class DirFakeSyscalls(FakeSyscalls):
    """openat2 hands out real O_PATH fds of a scratch directory, so the code
    under test can close them and read their mount ids; everything else is
    only recorded. Once something was "mounted", fds are of /proc (another
    mount), as reopening a real mount target would give — unless `swapped`,
    which plays a path replaced between mounting and reopening."""

    def __init__(self, scratch: str, swapped: bool = False) -> None:
        super().__init__()
        self.scratch = scratch
        self.mounted = False
        self.swapped = swapped

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
        super().mount(source, target, fstype, flags, data)
        self.mounted = True

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        self._record("openat2", path, dirfd, flags, resolve)
        where = "/proc" if self.mounted and not self.swapped else self.scratch
        return os.open(where, os.O_PATH | os.O_CLOEXEC)


@pytest.mark.parametrize(
    ("options", "flags", "propagation", "data"),
    [
        (["nosuid", "noexec", "nodev", "ro"], c.MS_NOSUID | c.MS_NOEXEC | c.MS_NODEV | c.MS_RDONLY, [], ""),
        (["rbind", "rprivate"], c.MS_BIND | c.MS_REC, [c.MS_PRIVATE | c.MS_REC], ""),
        (["ro", "rw", "mode=755", "size=64k"], 0, [], "mode=755,size=64k"),
        (["bind", "shared", "slave"], c.MS_BIND, [c.MS_SHARED, c.MS_SLAVE], ""),
        (["strictatime", "noatime", "atime"], c.MS_STRICTATIME, [], ""),
    ],
)
def test_mount_options(options, flags, propagation, data):
    assert config.parse_mount_options(options)[:3] == (flags, propagation, data)


def test_namespace_plan_creates_and_joins():
    spec = parse_spec(_json({"linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"},
                                                      {"type": "user"}]}}))  # fmt: skip
    flags, join = config.namespace_plan(spec)
    assert flags == c.CLONE_NEWPID | c.CLONE_NEWUSER
    assert join == [("network", "/run/netns/x")]


def test_tmpfs_mount_call(tmp_path):
    sc = DirFakeSyscalls(str(tmp_path))
    entry = config.mount_entries(parse_spec(_json({})), "/bundle")[1]  # /dev tmpfs from the template
    mounts.mount_one(sc, os.open(str(tmp_path), os.O_PATH), entry)
    _, target, source, fstype, flags, data = next(call for call in sc.calls if call[0] == "mount")
    assert (source, fstype, data) == ("tmpfs", "tmpfs", "mode=755,size=65536k")
    assert target.startswith("/proc/self/fd/")  # mounted on the opened object, never on a path
    assert flags == c.MS_NOSUID | c.MS_STRICTATIME


def test_readonly_bind_is_remounted(tmp_path):
    sc = DirFakeSyscalls(str(tmp_path))
    (tmp_path / "src").mkdir()
    entry = config.MountEntry("/data", str(tmp_path / "src"), "bind", c.MS_BIND | c.MS_REC | c.MS_RDONLY, [], "", False)
    mounts.mount_one(sc, os.open(str(tmp_path), os.O_PATH), entry)
    calls = [call for call in sc.calls if call[0] == "mount"]
    assert calls[0][4] == c.MS_BIND | c.MS_REC  # the bind itself ignores ro ...
    assert calls[1][4] == c.MS_RDONLY | c.MS_BIND | c.MS_REMOUNT  # ... so it is remounted read-only
    opened = [call[1] for call in sc.calls if call[0] == "openat2"]
    assert opened.count("data") == 2  # re-opened after mounting: the old fd names the covered directory


def test_remount_refuses_a_target_that_no_longer_is_the_new_mount(tmp_path):
    sc = DirFakeSyscalls(str(tmp_path), swapped=True)
    (tmp_path / "src").mkdir()
    entry = config.MountEntry("/data", str(tmp_path / "src"), "bind", c.MS_BIND | c.MS_REC | c.MS_RDONLY, [], "", False)
    with pytest.raises(SyscallError, match="/data no longer resolves to the new mount"):
        mounts.mount_one(sc, os.open(str(tmp_path), os.O_PATH), entry)
    assert [call[4] for call in sc.calls if call[0] == "mount"] == [c.MS_BIND | c.MS_REC]  # no remount


def test_bounding_set_drops_everything_not_kept(monkeypatch):
    sc = FakeSyscalls()
    monkeypatch.setattr(privileges, "last_cap", lambda: 40)
    keep = privileges.cap_mask(["CAP_KILL", "CAP_CHOWN"])
    privileges.drop_bounding(sc, keep)
    dropped = {call[2] for call in sc.calls if call[1] == c.PR_CAPBSET_DROP}
    assert dropped == set(range(41)) - {c.CAP_BITS["CAP_KILL"], c.CAP_BITS["CAP_CHOWN"]}


def _json(overrides: dict) -> str:
    import json

    doc = example()
    doc.update(overrides)
    return json.dumps(doc)
