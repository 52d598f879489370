"""Hypothesis fuzzing of the tar and pax parsing: only the image errors ever escape.

Inputs are random bytes, well-formed archives (tarfile's ustar, GNU and pax
writers, and hand-made GNU long names and global headers) with random byte
edits, truncations and insertions, and pax record sets drawn from a grammar
of keys and hostile values with right or wrong lengths. Whatever escapes
other than an :class:`ImageError` (ValueError, OverflowError, RecursionError,
MemoryError, KeyboardInterrupt...: anything derived from BaseException) fails
the test, and every entry that is returned must be within the ranges the
extractor relies on. Well-formed archives are also read back against
tarfile, so strictness never costs a valid layer.

``INCLAVARE_FUZZ_EXAMPLES`` raises the budget and ``INCLAVARE_FUZZ_RANDOM=1``
draws new examples, for longer local runs.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from image_helpers import data_blocks, end, entry, header, make_tar, pax

from inclavare.image.errors import ImageError
from inclavare.image.extract import LayerApplier
from inclavare.image.tarstream import HEADER_ONLY, KINDS, MAX_ID, MAX_LINK, MAX_MODE, MAX_TIME, Entry, TarReader

N = int(os.environ.get("INCLAVARE_FUZZ_EXAMPLES", "150"))
FIXED = "INCLAVARE_FUZZ_RANDOM" not in os.environ  # CI replays the same examples; set it to explore
FUZZ = settings(max_examples=N, deadline=None, derandomize=FIXED, suppress_health_check=list(HealthCheck))


def _corpus() -> list[bytes]:
    members = [entry("d", "dir"), entry("d/" + "n" * 150, data=b"a" * 700, uid=70000, gid=5),
               entry("d/s", "symlink", linkname="../" + "t" * 120), entry("d/h", "hardlink", linkname="d/s"),
               entry("p", "fifo"), entry("c", "chr", devmajor=1, devminor=3)]  # fmt: skip
    members[1][0].pax_headers = {"SCHILY.xattr.user.a": "1", "SCHILY.xattr.trusted.overlay.opaque": "y",
                                 "mtime": "1700000000.25"}  # fmt: skip
    out = [make_tar(*members)]
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            for info, data in members:
                if fmt == tarfile.GNU_FORMAT or (len(info.name) < 100 and len(info.linkname) < 100):
                    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        out.append(buf.getvalue())
    glob = pax({"comment": b"global"})
    glob = header(b"g", b"g", int(glob[124:135], 8)) + glob[512:]
    longname = header(b"././@LongLink", b"L", 201) + data_blocks(b"x" * 200 + b"\0")
    out.append(glob + longname + header(b"short", size=3) + data_blocks(b"abc") + end())
    return out


CORPUS = _corpus()


def only_image_errors(fn: Callable[[], object]) -> None:
    message = ""
    try:
        fn()
    except ImageError as exc:
        message = str(exc)
    except BaseException as exc:
        pytest.fail(f"{type(exc).__name__} escaped the tar parser: {exc!r}"[:500])
    assert "\n" not in message


def read_all(data: bytes) -> list[Entry]:
    reader = TarReader(io.BytesIO(data), "layer 0")
    out = []
    for e in reader:
        body = b"".join(iter(lambda: reader.read(1 << 16), b""))
        assert len(body) == e.size
        check_entry(e)
        out.append(e)
    return out


def check_entry(e: Entry) -> None:
    """What extract.py relies on, for every entry the reader lets through."""
    assert e.name
    assert "\0" not in e.name
    assert "\0" not in e.linkname
    assert e.kind in KINDS.values()
    assert 0 <= e.mode <= MAX_MODE
    assert 0 <= e.uid <= MAX_ID
    assert 0 <= e.gid <= MAX_ID
    assert 0 <= e.mtime_ns < MAX_TIME * 10**9
    assert e.size >= 0
    if e.kind in HEADER_ONLY:
        assert e.size == 0
    if e.kind in ("symlink", "hardlink"):
        assert 0 < len(e.linkname) <= MAX_LINK
    if e.kind in ("chr", "blk"):
        os.makedev(e.devmajor, e.devminor)  # representable
    assert all(name and isinstance(value, bytes) for name, value in e.xattrs.items())


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None, insert: tuple[int, bytes] | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    if insert is not None:
        pos = insert[0] % len(buf)
        buf[pos:pos] = insert[1]
    if cut is not None:
        del buf[cut % (len(buf) + 1) :]
    return bytes(buf)


_EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8)
_CUT = st.none() | st.integers(0, 1 << 16)
_INSERT = st.none() | st.tuples(st.integers(0, 1 << 16), st.binary(min_size=1, max_size=600))


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes(data) -> None:
    only_image_errors(lambda: read_all(data))


@FUZZ
@given(st.binary(min_size=0, max_size=1500))
def test_random_bytes_after_a_valid_header(data) -> None:
    only_image_errors(lambda: read_all(header(b"f", size=100) + data))


@FUZZ
@given(st.sampled_from(range(len(CORPUS))), _EDITS, _CUT, _INSERT)
def test_mutated_archives(which, edits, cut, insert) -> None:
    only_image_errors(lambda: read_all(mutate(CORPUS[which], edits, cut, insert)))


@FUZZ
@given(st.sampled_from(range(len(CORPUS))), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)),
                                                     min_size=1, max_size=3))  # fmt: skip
def test_mutated_headers_with_fixed_checksums(which, edits) -> None:
    """Random edits rarely pass the checksum: recompute it, so the fields themselves are fuzzed."""
    data = bytearray(CORPUS[which])
    for pos, value in edits:
        data[pos % len(data)] = value
        block = (pos % len(data)) // 512 * 512
        if any(data[block : block + 512]):
            data[block + 148 : block + 156] = b" " * 8
            data[block + 148 : block + 156] = b"%06o\0 " % sum(data[block : block + 512])
    only_image_errors(lambda: read_all(bytes(data)))


_KEYS = st.sampled_from(["path", "linkpath", "mtime", "atime", "ctime", "uid", "gid", "size", "uname",
                         "SCHILY.xattr.user.x", "SCHILY.xattr.", "SCHILY.xattr.trusted.overlay.redirect",
                         "GNU.sparse.size", "hdrcharset", "comment", "LIBARCHIVE.xattr.user.y"])  # fmt: skip
_NUMBERS = st.sampled_from([b"nan", b"inf", b"-inf", b"-1", b"0", b"1.5", b"1e999", b"9" * 25, b"0x10", b"",
                            b" 7", b"4294967295", b"4294967294", b"8589934592", b"8589934591.999999999999",
                            b"1.", b".5", b"+1", b"\xef\xbc\x91"])  # fmt: skip
_VALUES = _NUMBERS | st.binary(max_size=40) | st.text(max_size=20).map(str.encode)


@st.composite
def pax_records(draw) -> bytes:
    records = []
    for key, value in draw(st.lists(st.tuples(_KEYS | st.text(max_size=8), _VALUES), max_size=6)):
        body = b" " + key.encode("utf-8", "surrogatepass") + b"=" + value + b"\n"
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n += 1
        records.append(str(n + draw(st.sampled_from([0, 0, 0, 1, -1, 5]))).encode() + body)
    return b"".join(records)


@FUZZ
@given(pax_records(), st.sampled_from(list(KINDS)) | st.binary(min_size=1, max_size=1), st.binary(max_size=40))
def test_pax_records_grammar(records, kind, body) -> None:
    ext = header(b"PaxHeader", b"x", len(records)) + data_blocks(records)
    size = len(body) if kind in (b"0", b"\0", b"7") else 0
    layer = ext + header(b"f", kind, size, linkname=b"t") + data_blocks(body) + end()
    only_image_errors(lambda: read_all(layer))


_NAMES = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0/"), min_size=1, max_size=40)


@FUZZ
@given(
    st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]),
    st.lists(st.tuples(st.lists(_NAMES, min_size=1, max_size=4).map("/".join),
                       st.sampled_from(["file", "dir", "symlink", "fifo"]), st.binary(max_size=900),
                       st.integers(0, 2**21 - 1), st.integers(0, 2**33 - 1)), max_size=5),
)  # fmt: skip
def test_valid_archives_are_read_as_tarfile_reads_them(fmt, spec) -> None:
    members = [entry(name, kind, data, uid=uid, gid=uid, mtime=mtime, linkname="target" if kind == "symlink" else "")
               for name, kind, data, uid, mtime in spec]  # fmt: skip
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    ours = read_all(buf.getvalue())
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        theirs = tar.getmembers()
    assert [(e.name.rstrip("/"), e.size, e.uid, e.mtime_ns // 10**9, e.linkname) for e in ours] == [
        (m.name, m.size if m.isreg() else 0, m.uid, int(m.mtime), m.linkname) for m in theirs
    ]


@settings(max_examples=max(N // 3, 20), deadline=None, derandomize=FIXED, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(range(len(CORPUS))), _EDITS, _CUT, _INSERT)
def test_mutated_archives_through_the_applier(tmp_path_factory, which, edits, cut, insert) -> None:
    """The whole extraction path: only image errors, and nothing written beside the rootfs."""
    base = tmp_path_factory.mktemp("fuzz")
    (base / "rootfs").mkdir()
    applier = LayerApplier(str(base / "rootfs"), rootless=True)
    try:
        only_image_errors(lambda: applier.apply(io.BytesIO(mutate(CORPUS[which], edits, cut, insert)), "layer 0"))
    finally:
        applier.close()
    assert os.listdir(base) == ["rootfs"]
