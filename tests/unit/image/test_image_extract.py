"""Applying layers: hostile archives stay inside the rootfs; whiteouts; owners, modes, times."""

from __future__ import annotations

import io
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from image_helpers import data_blocks, end, entry, header, make_tar, pax

from inclavare.image.errors import UnsafeArchive
from inclavare.image.extract import LayerApplier

ROOT = os.geteuid() == 0


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text("do not touch")
    return d


@pytest.fixture
def rootfs(tmp_path):
    d = tmp_path / "rootfs"
    d.mkdir()
    return d


def apply(rootfs, *layers: bytes, rootless: bool | None = None, privileged_xattrs: bool = False) -> LayerApplier:
    applier = LayerApplier(str(rootfs), rootless, **({"privileged_xattrs": True} if privileged_xattrs else {}))
    try:
        for i, layer in enumerate(layers):
            applier.apply(io.BytesIO(layer), f"layer{i}")
    finally:
        applier.close()
    return applier


def untouched(outside) -> bool:
    return sorted(os.listdir(outside)) == ["secret"] and (outside / "secret").read_text() == "do not touch"


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../evil", "/etc/evil", "a/b/../../../evil"])
def test_escaping_names_are_refused(rootfs, outside, name) -> None:
    with pytest.raises(UnsafeArchive, match=r"layer0: .*(absolute path|'\.\.' in layer path)"):
        apply(rootfs, make_tar(entry(name, data=b"x")))
    assert untouched(outside)


def test_absolute_symlink_parent_is_followed_inside_the_rootfs(rootfs, outside) -> None:
    layer = make_tar(entry("link", "symlink", linkname=str(outside)), entry("link/pwned", data=b"x"))
    apply(rootfs, layer)
    assert untouched(outside)
    assert (rootfs / str(outside).lstrip("/") / "pwned").read_bytes() == b"x"
    assert os.readlink(rootfs / "link") == str(outside)


def test_relative_symlink_climbing_out_stops_at_the_root(rootfs, outside) -> None:
    depth = "../" * (len(rootfs.parts) + 3)
    layer = make_tar(entry("up", "symlink", linkname=depth), entry("up/tmp-pwned", data=b"x"))
    apply(rootfs, layer)
    assert (rootfs / "tmp-pwned").read_bytes() == b"x"
    assert untouched(outside)


def test_symlink_set_in_lower_layer_then_written_through(rootfs, outside) -> None:
    lower = make_tar(entry("etc", "symlink", linkname=str(outside)))
    upper = make_tar(entry("etc/secret", data=b"overwritten"))
    apply(rootfs, lower, upper)
    assert untouched(outside)


def test_entry_replaces_a_symlink_instead_of_following_it(rootfs, outside) -> None:
    lower = make_tar(entry("f", "symlink", linkname=str(outside / "secret")))
    upper = make_tar(entry("f", data=b"mine"))
    apply(rootfs, lower, upper)
    assert untouched(outside)
    assert not (rootfs / "f").is_symlink()
    assert (rootfs / "f").read_bytes() == b"mine"


@pytest.mark.parametrize("target", ["../outside/secret", "/etc/passwd"])
def test_hard_links_outside_are_refused(rootfs, outside, target) -> None:
    with pytest.raises(UnsafeArchive):
        apply(rootfs, make_tar(entry("h", "hardlink", linkname=target)))
    assert os.stat(outside / "secret").st_nlink == 1


def test_hard_link_through_an_escaping_symlink_stays_inside(rootfs, outside) -> None:
    layer = make_tar(entry("l", "symlink", linkname=str(outside)), entry("h", "hardlink", linkname="l/secret"))
    with pytest.raises(UnsafeArchive, match="does not exist"):
        apply(rootfs, layer)
    assert os.stat(outside / "secret").st_nlink == 1


def test_hard_link_inside(rootfs) -> None:
    apply(rootfs, make_tar(entry("a", data=b"1"), entry("b", "hardlink", linkname="a")))
    assert os.stat(rootfs / "a").st_ino == os.stat(rootfs / "b").st_ino


def test_hard_link_to_a_symlink_links_the_symlink(rootfs, outside) -> None:
    apply(
        rootfs, make_tar(entry("s", "symlink", linkname=str(outside / "secret")), entry("h", "hardlink", linkname="s"))
    )
    assert os.path.islink(rootfs / "h")
    assert os.stat(outside / "secret").st_nlink == 1


def test_devices_skipped_without_root(rootfs) -> None:
    applier = apply(
        rootfs, make_tar(entry("dev/null", "chr", devmajor=1, devminor=3), entry("dev/fifo", "fifo")), rootless=True
    )
    assert not os.path.lexists(rootfs / "dev/null")
    assert stat.S_ISFIFO(os.lstat(rootfs / "dev/fifo").st_mode)
    assert applier.report.skipped == ["dev/null: device node skipped (not root)"]


@pytest.mark.skipif(not ROOT, reason="mknod and chown need root")
def test_devices_owners_and_modes_as_root(rootfs) -> None:
    layer = make_tar(
        entry("dev/null", "chr", devmajor=1, devminor=3, mode=0o666),
        entry("dev/sda", "blk", devmajor=8, devminor=0, mode=0o660, gid=6),
        entry("usr/bin/su", data=b"#!", mode=0o4755, uid=0, gid=0),
        entry("home/u/f", data=b"x", mode=0o2640, uid=1000, gid=1001),
        entry("home/u/l", "symlink", linkname="f", uid=1000, gid=1001),
    )
    apply(rootfs, layer, rootless=False)
    st_null, st_sda = os.lstat(rootfs / "dev/null"), os.lstat(rootfs / "dev/sda")
    assert stat.S_ISCHR(st_null.st_mode)
    assert os.major(st_null.st_rdev) == 1
    assert stat.S_IMODE(st_null.st_mode) == 0o666
    assert stat.S_ISBLK(st_sda.st_mode)
    assert st_sda.st_gid == 6
    assert stat.S_IMODE(os.lstat(rootfs / "usr/bin/su").st_mode) == 0o4755
    f = os.lstat(rootfs / "home/u/f")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1000, 1001, 0o2640)
    assert os.lstat(rootfs / "home/u/l").st_uid == 1000


def test_modes_and_times(rootfs) -> None:
    layer = make_tar(
        entry("ro", "dir", mode=0o555, mtime=1_000_000_000), entry("ro/f", data=b"x", mode=0o600, mtime=1_200_000_000)
    )
    apply(rootfs, layer, rootless=True)
    d, f = os.lstat(rootfs / "ro"), os.lstat(rootfs / "ro/f")
    assert stat.S_IMODE(d.st_mode) == 0o555
    assert d.st_mtime == 1_000_000_000
    assert stat.S_IMODE(f.st_mode) == 0o600
    assert f.st_mtime == 1_200_000_000


def _xattr_entry(name: str, **xattrs: str) -> tuple:
    info, data = entry(name, data=b"x")
    info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return info, data


def _settable(rootfs, name: str, value: bytes = b"1") -> bool:
    probe = rootfs / ".probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, name, value)
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


def test_user_xattrs_kept(rootfs) -> None:
    if not _settable(rootfs, "user.test"):
        pytest.skip("this filesystem has no user xattrs")
    applier = apply(rootfs, make_tar(_xattr_entry("f", **{"user.inclavare": "yes"})))
    assert os.getxattr(rootfs / "f", "user.inclavare") == b"yes"
    assert applier.report.skipped == []


_CAP = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # cap_net_bind_service


@pytest.mark.skipif(not ROOT, reason="trusted.* and security.* xattrs need root")
def test_privileged_xattrs_dropped_unless_asked(rootfs, tmp_path) -> None:
    """trusted.overlay.* would steer an overlay mount of the rootfs; security.selinux is the host's to label."""
    if not _settable(rootfs, "trusted.overlay.redirect", b"/x"):
        pytest.skip("this filesystem has no trusted xattrs")
    hostile = {"trusted.overlay.redirect": "/etc", "trusted.overlay.opaque": "y",
               "security.selinux": "system_u:object_r:shadow_t:s0", "security.capability": _CAP}  # fmt: skip
    layer = make_tar(_xattr_entry("a", **hostile), _xattr_entry("b", **hostile))
    applier = apply(rootfs, layer, rootless=False)
    for name in ("a", "b"):
        assert sorted(os.listxattr(rootfs / name)) == ["security.capability"]
    assert applier.report.skipped == [
        f"layer0: xattr {x} dropped from 2 entries (--keep-privileged-xattrs applies it)"
        for x in ("security.selinux", "trusted.overlay.opaque", "trusted.overlay.redirect")
    ]
    asked = tmp_path / "asked"
    asked.mkdir()
    apply(asked, layer, rootless=False, privileged_xattrs=True)
    assert os.getxattr(asked / "a", "trusted.overlay.redirect") == b"/etc"
    assert os.getxattr(asked / "a", "security.selinux").rstrip(b"\0") == b"system_u:object_r:shadow_t:s0"


@pytest.mark.parametrize(
    ("layer", "entry_name", "why"),
    [
        (pax({"mtime": b"nan"}) + header(b"f") + end(), "f", "pax mtime 'nan' is not a time"),
        (pax({"mtime": b"inf"}) + header(b"f") + end(), "f", "pax mtime 'inf' is not a time"),
        (pax({"atime": b"-1"}) + header(b"f") + end(), "f", "pax atime '-1' is not a time"),
        (pax({"ctime": b"1e400"}) + header(b"f") + end(), "f", "pax ctime '1e400' is not a time"),
        (pax({"mtime": b"99999999999999999999"}) + header(b"f") + end(), "f", "is not a time"),
        (pax({"uid": b"abc"}) + header(b"f", uid=b"1750") + end(), "f", "pax uid 'abc' is not a decimal number"),
        (pax({"gid": b"-5"}) + header(b"f") + end(), "f", "pax gid '-5' is not a decimal number"),
        (pax({"size": b"x"}) + header(b"f") + end(), "f", "pax size 'x' is not a decimal number"),
        (pax({"path": b"a\0b"}) + header(b"f") + end(), "f", "pax path record is empty or holds a NUL"),
        (pax([b"99 path=x\n"]) + header(b"f") + end(), "offset 0", "pax record at byte 0 has a wrong length"),
        (header(b"f", uid=b"9x") + end(), "f", "uid field '000009x\\x00' is not an octal number"),
        (
            header(b"a", size=1) + data_blocks(b"1") + header(b"b", checksum=3) + end(),
            "offset 1024",
            "bad header checksum",
        ),
        (header(b"a", size=1) + data_blocks(b"1") + header(b"b")[:200], "offset 1024", "truncated"),
        (
            header(b"L", b"L", 4) + data_blocks(b"a\0bc") + header(b"f") + end(),
            "offset 0",
            "GNU long name is empty or has bytes after its NUL",
        ),
        (header(b"f", b"2", linkname=b"") + end(), "f", "symlink target must be 1 to 4095 characters"),
    ],
)
def test_malformed_headers_are_one_line_errors(rootfs, layer, entry_name, why) -> None:
    with pytest.raises(UnsafeArchive) as info:
        apply(rootfs, layer, rootless=True)
    assert str(info.value).startswith(f"layer0: {entry_name}: ")
    assert why in str(info.value)
    assert "\n" not in str(info.value)


def test_a_later_bad_header_does_not_silently_end_the_layer(rootfs) -> None:
    layer = header(b"a", size=1) + data_blocks(b"1") + header(b"b", checksum=3) + header(b"c") + end()
    with pytest.raises(UnsafeArchive, match="layer0: offset 1024: bad header checksum"):
        apply(rootfs, layer, rootless=True)


def test_global_headers_are_not_applied_to_entries(rootfs) -> None:
    """As Go's archive/tar and containers/storage: a 'g' header renames nothing."""
    g = pax({"path": b"renamed", "mtime": b"7"})
    g = header(b"PaxHeader", b"g", int(g[124:135], 8)) + g[512:]
    apply(rootfs, g + header(b"a") + header(b"b") + end(), rootless=True)
    assert sorted(os.listdir(rootfs)) == ["a", "b"]


def test_whiteouts_remove_lower_entries(rootfs) -> None:
    lower = make_tar(entry("a", data=b"1"), entry("d", "dir"), entry("d/x", data=b"2"), entry("keep", data=b"3"))
    upper = make_tar(entry(".wh.a"), entry(".wh.d"), entry(".wh.missing"), entry("sub/.wh.nothing"))
    applier = apply(rootfs, lower, upper)
    assert sorted(os.listdir(rootfs)) == ["keep"]
    assert applier.report.whiteouts == 4


@pytest.mark.parametrize("name", [".wh...", "sub/.wh...", ".wh..", ".wh."])
def test_whiteout_of_dot_or_dotdot_is_refused(rootfs, outside, name) -> None:
    """'.wh...' whites out '..': it must not empty the directory holding the rootfs."""
    (rootfs / "kept").write_text("x")
    with pytest.raises(UnsafeArchive, match="a whiteout must name an entry"):
        apply(rootfs, make_tar(entry("sub", "dir"), entry(name)))
    assert untouched(outside)
    assert (rootfs / "kept").exists()


def test_whiteout_does_not_hide_the_same_layer(rootfs) -> None:
    apply(rootfs, make_tar(entry("a", data=b"new"), entry(".wh.a")))
    assert (rootfs / "a").read_bytes() == b"new"


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_directory(rootfs, marker_first) -> None:
    lower = make_tar(
        entry("d", "dir"), entry("d/old", data=b"1"), entry("d/sub", "dir"), entry("d/sub/deep", data=b"2")
    )
    upper_entries = [entry("d", "dir"), entry("d/new", data=b"3")]
    marker = entry("d/.wh..wh..opq")
    upper = make_tar(*([marker, *upper_entries] if marker_first else [*upper_entries, marker]))
    apply(rootfs, lower, upper)
    assert sorted(os.listdir(rootfs / "d")) == ["new"]


def test_opaque_through_a_symlinked_parent_keeps_this_layers_files(rootfs) -> None:
    lower = make_tar(
        entry("usr", "dir"),
        entry("usr/lib", "dir"),
        entry("usr/lib/old", data=b"1"),
        entry("lib", "symlink", linkname="usr/lib"),
    )
    upper = make_tar(entry("lib/new", data=b"2"), entry("usr/lib/.wh..wh..opq"))
    apply(rootfs, lower, upper)
    assert sorted(os.listdir(rootfs / "usr/lib")) == ["new"]


def test_directory_replaced_by_file_and_back(rootfs) -> None:
    apply(
        rootfs,
        make_tar(entry("p", "dir"), entry("p/c", data=b"1")),
        make_tar(entry("p", data=b"file")),
        make_tar(entry("p", "dir")),
    )
    assert os.path.isdir(rootfs / "p")
    assert os.listdir(rootfs / "p") == []


def test_file_under_a_regular_file_is_refused(rootfs) -> None:
    with pytest.raises(UnsafeArchive, match="is not a directory"):
        apply(rootfs, make_tar(entry("f", data=b"1"), entry("f/g", data=b"2")))


def test_symlink_loop_is_refused(rootfs) -> None:
    with pytest.raises(UnsafeArchive, match="too many levels"):
        apply(
            rootfs,
            make_tar(entry("a", "symlink", linkname="b"), entry("b", "symlink", linkname="a"), entry("a/x", data=b"")),
        )


def test_truncated_tar_is_refused(rootfs) -> None:
    data = make_tar(entry("f", data=b"x" * 2000))
    with pytest.raises(UnsafeArchive, match="layer0: f: truncated: the stream ends inside the entry's data"):
        apply(rootfs, data[:1200])


_SEGMENTS = st.sampled_from(["..", ".", "a", "b", "", "/", "x.wh.", ".wh.a", "l"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.lists(_SEGMENTS, min_size=1, max_size=5),
            st.sampled_from(["file", "dir", "symlink", "hardlink"]),
            st.sampled_from(["..", "/", "a", "../..", "/tmp"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_nothing_ever_lands_outside(tmp_path_factory, spec) -> None:
    base = tmp_path_factory.mktemp("fuzz")
    rootfs, outside = base / "rootfs", base / "outside"
    rootfs.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("do not touch")
    layer = make_tar(*[entry("/".join(parts), kind, data=b"x", linkname=link) for parts, kind, link in spec])
    try:
        apply(rootfs, layer, rootless=True)
    except UnsafeArchive:
        pass
    assert untouched(outside)
    assert sorted(os.listdir(base)) == ["outside", "rootfs"]
