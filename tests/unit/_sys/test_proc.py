"""/proc parsing: mountinfo lines and their octal escapes (proc(5); no root)."""

from __future__ import annotations

from inclavare._sys import proc

MOUNTINFO = (
    "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    "90 22 0:51 / /run/bundle\\040with\\011tab/rootfs rw master:3 shared:9 - overlay over\\134lay rw,lowerdir=/l\n"
    "91 90 0:52 /sub\\012dir /run/bundle\\040with\\011tab/rootfs/proc rw,nosuid - proc proc rw\n"
    "92 90 0:53 / /x\\134040y rw - tmpfs tmpfs rw\n"
)


def test_mountinfo_fields_and_escapes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    mounts = proc.mountinfo(str(info))
    assert [(m.id, m.parent, m.dev) for m in mounts] == [(22, 1, "254:1"), (90, 22, "0:51"), (91, 90, "0:52"),
                                                         (92, 90, "0:53")]  # fmt: skip
    assert mounts[1].point == "/run/bundle with\ttab/rootfs"
    assert (mounts[1].fstype, mounts[1].source, mounts[1].super_options) == ("overlay", "over\\lay", "rw,lowerdir=/l")
    assert (mounts[2].root, mounts[2].point) == ("/sub\ndir", "/run/bundle with\ttab/rootfs/proc")
    assert mounts[3].point == "/x\\040y"  # an escaped backslash followed by digits is not an escape


def test_unescape_leaves_what_is_not_an_octal_escape():
    assert proc.unescape("plain") == "plain"
    assert proc.unescape("a\\040b") == "a b"
    assert proc.unescape("a\\09b\\") == "a\\09b\\"
    assert proc.unescape("\\134") == "\\"


def test_mountinfo_of_this_process_has_its_root():
    assert any(m.point == "/" for m in proc.mountinfo())
