"""The strict tar reader: every malformed header is one UnsafeArchive line naming the layer and the entry.

Archives are written byte by byte (image_helpers.header/pax) so that each
test holds exactly the malformation it names; well-formed archives are
checked against what tarfile and GNU tar write.
"""

from __future__ import annotations

import io
import re
import tarfile

import pytest
from image_helpers import data_blocks, end, entry, header, make_tar, pax

from inclavare.image.errors import UnsafeArchive
from inclavare.image.tarstream import MAX_TIME, Entry, TarReader


def entries(data: bytes) -> list[tuple[Entry, bytes]]:
    reader = TarReader(io.BytesIO(data), "layer 0 (sha256:ab)")
    return [(e, b"".join(iter(lambda: reader.read(7), b""))) for e in reader]


def refused(data: bytes, match: str) -> str:
    with pytest.raises(UnsafeArchive) as info:
        entries(data)
    msg = str(info.value)
    assert msg.startswith("layer 0 (sha256:ab): ")
    assert "\n" not in msg
    assert re.search(match, msg), msg
    return msg


def test_well_formed_pax_entry() -> None:
    records = {"path": "dir/" + "n" * 200, "mtime": "1700000000.123456789", "uid": "4000000000", "gid": "7",
               "SCHILY.xattr.user.k": "v\n=\0binary"}  # fmt: skip
    info, data = entry("short", data=b"hello", uid=1, gid=2, mode=0o4755)
    info.pax_headers = records
    [(e, body)] = entries(make_tar((info, data)))
    assert (e.name, e.kind, e.size, body) == ("dir/" + "n" * 200, "file", 5, b"hello")
    assert (e.uid, e.gid, e.mode & 0o7777) == (4_000_000_000, 7, 0o4755)
    assert e.mtime_ns == 1_700_000_000_123_456_789
    assert e.xattrs == {"user.k": b"v\n=\0binary"}


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_agrees_with_tarfile_on_what_it_writes(fmt) -> None:
    members = [entry("d", "dir", mode=0o750), entry("d/" + "f" * 120, data=b"x" * 1000, uid=5, gid=6),
               entry("d/l", "symlink", linkname="t" * 150), entry("d/h", "hardlink", linkname="d/" + "f" * 120),
               entry("p", "fifo"), entry("c", "chr", devmajor=1, devminor=3)]  # fmt: skip
    if fmt == tarfile.USTAR_FORMAT:  # ustar has no long names
        members = [m for m in members if len(m[0].name) < 100 and len(m[0].linkname) < 100]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    got = [(e.name.rstrip("/"), e.kind, e.size, e.linkname, e.mode, e.uid, e.gid, e.mtime_ns,
            e.devmajor, e.devminor, body) for e, body in entries(buf.getvalue())]  # fmt: skip
    want = [(i.name, kind, i.size if i.isreg() else 0, i.linkname, i.mode, i.uid, i.gid, i.mtime * 10**9,
             i.devmajor if i.ischr() else 0, i.devminor if i.ischr() else 0, d) for (i, d), kind in
            zip(members, [m[0].type for m in members], strict=True)]  # fmt: skip
    kinds = {b"5": "dir", b"0": "file", b"2": "symlink", b"1": "hardlink", b"6": "fifo", b"3": "chr"}
    want = [(n, kinds[k], *rest) for n, k, *rest in want]
    assert [g[:2] for g in got] == [(n, k) for n, k, *_ in want]
    assert got == want


# --- times: NaN, infinities, negative, huge, not numbers --------------------------------------------------


@pytest.mark.parametrize("key", ["mtime", "atime", "ctime"])
@pytest.mark.parametrize(
    "value",
    [
        b"nan",
        b"NaN",
        b"inf",
        b"-inf",
        b"Infinity",
        b"-1",
        b"-0.5",
        b"1e9",
        b"0x10",
        b"",
        b" 1",
        b"1 ",
        b"1.2.3",
        b"+5",
        str(MAX_TIME).encode(),
        b"9" * 20,
        b"9" * 21,
        b"1_000",
        b"\xd9\xa1",
    ],
)
def test_bad_pax_times(key, value) -> None:
    refused(pax({key: value}) + header(b"f") + end(), rf"f: pax {key} .* is not a time")


@pytest.mark.parametrize(("value", "ns"), [(b"0", 0), (b"1.", 10**9), (b"1.5", 1_500_000_000),
                                           (b"2.0000000019", 2_000_000_001), (b"0017", 17 * 10**9)])  # fmt: skip
def test_good_pax_times(value, ns) -> None:
    [(e, _)] = entries(pax({"mtime": value}) + header(b"f") + end())
    assert e.mtime_ns == ns


def test_header_time_out_of_range() -> None:
    base256 = b"\x80" + (MAX_TIME).to_bytes(11, "big")
    refused(header(b"f", raw={136: base256}) + end(), r"f: mtime is out of range")
    refused(header(b"f", raw={136: b"\xff" * 12}) + end(), r"f: mtime field is negative")


def test_gnu_atime_and_ctime_are_checked() -> None:
    gnu = b"ustar  \0"
    refused(header(b"f", magic=gnu, raw={345: b"12x\0"}) + end(), r"f: atime field .* is not an octal number")
    refused(
        header(b"f", magic=gnu, raw={357: b"\x80" + MAX_TIME.to_bytes(11, "big")}) + end(), "f: ctime is out of range"
    )
    entries(header(b"f", magic=gnu, raw={345: b"0000000001\0"}) + end())


# --- ids, sizes, modes, devices -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["uid", "gid", "size"])
@pytest.mark.parametrize("value", [b"abc", b"-1", b"", b"1.5", b"0x1", b" 1", b"1e3", b"9" * 21, b"nan"])
def test_pax_numbers_that_are_not_numbers(key, value) -> None:
    # tarfile turns these into 0: uid=abc would be root
    refused(pax({key: value}) + header(b"f") + end(), rf"f: pax {key} .* is not a decimal number")


@pytest.mark.parametrize("key", ["uid", "gid"])
def test_ids_chown_cannot_take(key) -> None:
    refused(pax({key: b"4294967295"}) + header(b"f") + end(), rf"f: {key} 4294967295 is out of range")
    refused(
        header(b"f", raw={108 if key == "uid" else 116: b"\x80" + b"\xff" * 7}) + end(), rf"f: {key} .* out of range"
    )


@pytest.mark.parametrize(("offset", "what"), [(100, "mode"), (108, "uid"), (116, "gid"), (124, "size"),
                                              (136, "mtime"), (329, "devmajor"), (337, "devminor")])  # fmt: skip
@pytest.mark.parametrize("garbage", [b"12x4\0", b"9\0", b"1 2\0", b"-1\0", b"\x00\x001\x002\0"])
def test_header_numbers_that_are_not_octal(offset, what, garbage) -> None:
    refused(header(b"f", raw={offset: garbage}) + end(), rf"f: {what} field .* is not an octal number")


@pytest.mark.parametrize(("offset", "what"), [(108, "uid"), (124, "size"), (329, "devmajor")])
def test_negative_base256(offset, what) -> None:
    refused(header(b"f", raw={offset: b"\xff" * 8}) + end(), rf"f: {what} field is negative")


def test_base256_numbers_are_read() -> None:
    big = b"\x80" + (3_000_000_000).to_bytes(7, "big")
    [(e, _)] = entries(header(b"f", raw={108: big}) + end())
    assert e.uid == 3_000_000_000


def test_mode_and_device_ranges() -> None:
    refused(header(b"f", raw={100: b"\x80" + b"\x01" * 7}) + end(), r"f: mode .* is out of range")
    refused(header(b"c", b"3", devmajor=b"10000") + end(), r"c: device number 4096:0 is out of range")
    refused(header(b"c", b"4", devminor=b"4000000") + end(), r"c: device number 0:1048576 is out of range")


# --- structure: checksums, truncation, end of archive -------------------------------------------------------


def test_bad_checksum_first_header() -> None:
    refused(header(b"f", checksum=1) + end(), r"offset 0: bad header checksum")


def test_bad_checksum_later_header_is_not_the_end() -> None:
    """tarfile ends the archive at a later bad header, silently dropping the rest of the layer."""
    data = header(b"a", size=1) + data_blocks(b"1") + header(b"b", checksum=5) + header(b"c") + end()
    refused(data, r"offset 1024: bad header checksum")


def test_signed_checksum_is_accepted() -> None:
    name = "é".encode()  # bytes >= 0x80: old writers summed them as signed chars
    good = header(name)
    signed = sum(b if b < 128 else b - 256 for b in good[:148] + b" " * 8 + good[156:])
    [(e, _)] = entries(header(name, checksum=signed) + end())
    assert e.name == "é"


@pytest.mark.parametrize("cut", [1, 100, 511, 512 + 1, 512 + 300])
def test_truncated(cut) -> None:
    data = header(b"f", size=600) + data_blocks(b"x" * 600)
    refused(data[:cut], r"truncated: the stream ends inside (a header|the entry's data)")


def test_truncated_padding() -> None:
    refused(header(b"f", size=10) + b"x" * 10 + b"\0" * 100, r"f: truncated")


def test_end_of_archive_forms() -> None:
    one = header(b"f") + header(b"g")
    assert [e.name for e, _ in entries(one)] == ["f", "g"]  # no trailer at all
    assert [e.name for e, _ in entries(one + bytes(512))] == ["f", "g"]  # one zero block, then EOF
    assert [e.name for e, _ in entries(one + end() + b"anything after the end")] == ["f", "g"]
    refused(header(b"f") + bytes(512) + header(b"g") + end(), r"offset 512: a zero block in the middle")
    assert entries(b"") == []


# --- pax records ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "why"),
    [
        ([b"13 path=abc\n"], "has a wrong length"),  # 12 bytes
        ([b"11 path=abc\n"], "has a wrong length"),
        ([b"12 path=abc!"], "has a wrong length"),  # no newline
        ([b"012 path=ab\n"], "does not start with its length"),
        ([b"x2 path=abc\n"], "does not start with its length"),
        ([b"12path=abcd\n"], "does not start with its length"),
        ([b" 12 path=ab\n"], "does not start with its length"),
        ([b"9999999999999999999999 a=b\n"], "does not start with its length"),
        ([b"12 pathabcd\n"], "is not key=value"),
        ([b"8 =abcd\n"], "is not key=value"),
        ([b"12 pa\0h=abc\n"], "is not key=value"),
        ([b"11 p\xffth=ab\n"], "key is not UTF-8"),
        ([b"8 uid=1\n", b"8 uid=2\n"], "pax key 'uid' appears twice"),
        ([b"8 uid=1\n", b"\0\0\0"], "does not start with its length"),
        ([b"3 a\n"], "has a wrong length"),
    ],
)
def test_malformed_pax_records(records, why) -> None:
    refused(pax(records) + header(b"f") + end(), rf"offset 0: pax record at byte \d+ {why}|{why}")


@pytest.mark.parametrize(("key", "value", "why"), [
    ("path", b"", "pax path record is empty or holds a NUL byte"),
    ("path", b"a\0b", "pax path record is empty or holds a NUL byte"),
    ("linkpath", b"", "pax linkpath record is empty"),
    ("SCHILY.xattr.", b"v", "pax xattr record with no attribute name"),
    ("GNU.sparse.map", b"0,1", "sparse files are not supported"),
])  # fmt: skip
def test_bad_pax_values(key, value, why) -> None:
    refused(pax({key: value}) + header(b"f", b"2", linkname=b"t") + end(), why)


def test_global_headers_are_checked_not_applied() -> None:
    g = _retype(pax({"path": b"elsewhere", "mtime": b"5"}), b"g")
    [(e, _)] = entries(g + header(b"f") + end())
    assert e.name == "f"
    assert e.mtime_ns == 0o14000000000 * 10**9
    refused(_retype(pax([b"5 a=\n", b"oops"]), b"g") + header(b"f") + end(), "pax record")
    refused(pax({"uid": b"1"}) + _retype(pax({"uid": b"2"}), b"g") + header(b"f") + end(), "global header between")


# --- GNU long names, links, types ------------------------------------------------------------------------------


def long_name(kind: bytes, name: bytes) -> bytes:
    return header(b"././@LongLink", kind, len(name)) + data_blocks(name)


def test_gnu_long_names() -> None:
    [(e, _)] = entries(long_name(b"L", b"n" * 300 + b"\0") + long_name(b"K", b"t" * 200 + b"\0")
                       + header(b"short", b"2", linkname=b"x") + end())  # fmt: skip
    assert (e.name, e.linkname) == ("n" * 300, "t" * 200)


@pytest.mark.parametrize(("data", "why"), [
    (long_name(b"L", b"a\0") + long_name(b"L", b"b\0"), "two 'L' headers for one entry"),
    (long_name(b"L", b"a\0") + pax({"path": b"b"}), "both a GNU long name and a pax path record"),
    (long_name(b"L", b"a\0junk"), "GNU long name is empty or has bytes after its NUL"),
    (long_name(b"L", b"\0"), "GNU long name is empty"),
    (long_name(b"K", b"a\0") + pax({"linkpath": b"b"}), "both a GNU long name and a pax linkpath record"),
])  # fmt: skip
def test_bad_long_names(data, why) -> None:
    refused(data + header(b"f", b"2", linkname=b"t") + end(), why)


@pytest.mark.parametrize("ext", [pax({"uid": b"1"}), long_name(b"L", b"a\0")])
def test_extension_header_with_no_entry(ext) -> None:
    refused(ext + end(), r"offset \d+: an extension header with no entry after it")
    refused(ext, "truncated: the stream ends inside a header")


@pytest.mark.parametrize(("kind", "why"), [(b"S", "sparse files are not supported"),
                                           (b"V", r"unsupported tar entry type b'V'"),
                                           (b"D", r"unsupported tar entry type b'D'"),
                                           (b"Z", r"unsupported tar entry type b'Z'")])  # fmt: skip
def test_unsupported_types(kind, why) -> None:
    refused(header(b"f", kind) + end(), rf"f: {why}")


@pytest.mark.parametrize("kind", [b"1", b"2", b"3", b"4", b"5", b"6"])
def test_data_on_header_only_entries(kind) -> None:
    refused(header(b"f", kind, 10, linkname=b"t") + data_blocks(b"x" * 10) + end(), r"f: a \w+ entry has 10 bytes")


@pytest.mark.parametrize(("kind", "link", "why"), [(b"2", b"", "symlink target must be"),
                                                   (b"1", b"", "hardlink target must be"),
                                                   (b"2", b"a" * 4096, "symlink target must be")])  # fmt: skip
def test_bad_link_targets(kind, link, why) -> None:
    records = {"linkpath": link} if len(link) > 100 else {}
    refused((pax(records) if records else b"") + header(b"f", kind, linkname=link[:100]) + end(), why)


def test_names() -> None:
    refused(header(b"") + end(), r"offset 0: entry has no name")
    [(e, _)] = entries(header(b"name", prefix=b"some/prefix") + end())
    assert e.name == "some/prefix/name"
    assert entries(header(b"old/", b"\0") + end())[0][0].kind == "dir"  # pre-POSIX directories
    gnu = header(b"name", magic=b"ustar  \0", raw={345: b"00000000000\0"})  # GNU: no prefix there
    assert entries(gnu + end())[0][0].name == "name"


def test_huge_extension_header_is_refused_before_it_is_read() -> None:
    refused(header(b"././@LongLink", b"L", 2 << 20) + end(), r"extension header of 2097152 bytes \(over 1048576\)")


def _retype(ext: bytes, kind: bytes) -> bytes:
    size = int(ext[124:135], 8)
    return header(b"PaxHeader", kind, size) + ext[512:]
