"""A strict streaming reader of layer tars: ustar, GNU and pax headers.

Ref: POSIX.1-2017 ``pax`` ("ustar Interchange Format", "pax Interchange
Format"); GNU tar's manual, "Basic Tar Format" (``L``/``K`` long names,
base-256 numbers).

Why not ``tarfile``: it is lenient where a layer must not be. After the
first header, a header with a bad checksum ends the archive without an
error (the rest of the layer is silently dropped); pax numbers that do not
parse become 0 (``uid=abc`` is root); ``mtime=nan`` becomes a float NaN
that ends the unpack in a ValueError; global headers are applied to the entries after them
(Go's archive/tar, used by containerd and containers/storage, does not, and
containers/storage ignores them); and every member is kept in memory.

Here each header is checked whole before its entry is returned, and
anything malformed or ambiguous is one :class:`UnsafeArchive` naming the
layer and the entry (its name, or its offset when the name is unknown):
bad checksums, truncation, numbers that are not numbers or are out of
range (times before 1970 or past ustar's 11 octal digits, ids that chown(2)
cannot take, device numbers Linux cannot encode), pax records that do not
follow ``"%d %s=%s\\n"``, duplicate pax keys, two long names for one entry,
data on entries that have none, sparse files, unknown entry types.
Unknown pax keywords are ignored, as pax(1) requires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import UnsafeArchive

BLOCK = 512
MAX_HEADER = 1 << 20  # a long name or pax record set bigger than this is not a file system entry
MAX_TIME = 8**11  # seconds: the ustar maximum (11 octal digits, year 2242); ns stay within int64
MAX_ID = 2**32 - 2  # (uid_t)-1 means "leave unchanged" to chown(2)
MAX_MODE = 0o7777777  # 7 octal digits: permission bits plus the file type some writers include
MAX_MAJOR, MAX_MINOR = 1 << 12, 1 << 20  # Linux dev_t: 12-bit major, 20-bit minor (include/linux/kdev_t.h)
MAX_LINK = 4095  # PATH_MAX less the NUL: symlink(2) refuses longer targets

KINDS = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
         b"3": "chr", b"4": "blk", b"5": "dir", b"6": "fifo"}  # fmt: skip
HEADER_ONLY = ("hardlink", "symlink", "chr", "blk", "dir", "fifo")  # no data follows their header
_PAX, _GLOBAL, _LONGNAME, _LONGLINK = b"x", b"g", b"L", b"K"
_XATTR = "SCHILY.xattr."
_ZERO = bytes(BLOCK)
_OCTAL = re.compile(rb"[0-7]*")
_INT = re.compile(rb"[0-9]{1,20}")
_TIME = re.compile(rb"([0-9]{1,20})(?:\.([0-9]{0,20}))?")


@dataclass
class Entry:
    """One file system entry of a layer, its extension headers applied."""

    name: str
    kind: str  # a value of KINDS
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


class TarReader:
    """Iterates the entries of the tar read from `stream` (``read(n)``); :meth:`read` gives
    the data of the current one (what is left unread is skipped on the next step)."""

    def __init__(self, stream: Any, where: str) -> None:
        self._src = stream
        self._where = where
        self._offset = 0
        self._left = 0  # data bytes of the current entry not read yet
        self._pad = 0  # then the zero padding to the next block
        self._done = False
        self._current = "offset 0"  # the entry errors name

    def __iter__(self) -> TarReader:
        return self

    def __next__(self) -> Entry:
        self._skip(self._left + self._pad)
        self._left = self._pad = 0
        entry = None if self._done else self._next_entry()
        if entry is None:
            self._done = True
            raise StopIteration
        self._current = entry.name
        self._left, self._pad = entry.size, -entry.size % BLOCK
        return entry

    def read(self, n: int) -> bytes:
        """Up to `n` bytes of the current entry's data; b"" at its end."""
        n = min(n, self._left)
        if n <= 0:
            return b""
        data = self._src.read(n)
        if not data:
            raise UnsafeArchive(self._where, self._current, "truncated: the stream ends inside the entry's data")
        self._offset += len(data)
        self._left -= len(data)
        return data

    def _next_entry(self) -> Entry | None:
        ext: dict[bytes, Any] = {}  # extension headers seen for the entry to come
        while True:
            self._current = f"offset {self._offset}"
            loc = _Located(self._where, self._current)
            block = self._exact(BLOCK, eof_ok=not ext)
            if block is None:
                return None
            if block == _ZERO:
                after = self._exact(BLOCK, eof_ok=True)  # the end: two zero blocks (or one, then EOF)
                if ext:
                    raise loc.error("an extension header with no entry after it")
                if after is not None and after != _ZERO:
                    raise loc.error("a zero block in the middle of the archive")
                return None
            h = _Header(block, loc)
            if h.type not in (_PAX, _GLOBAL, _LONGNAME, _LONGLINK):
                return _entry(h, ext, loc)
            if h.size > MAX_HEADER:
                raise loc.error(f"extension header of {h.size} bytes (over {MAX_HEADER})")
            data = self._exact(h.size, eof_ok=False) or b""
            self._skip(-h.size % BLOCK)
            if h.type == _GLOBAL:  # checked, then ignored as containers/storage does
                if ext:
                    raise loc.error("a global header between an entry and its extensions")
                _pax_records(data, loc)
            elif h.type in ext:
                raise loc.error(f"two {h.type.decode()!r} headers for one entry")
            else:
                ext[h.type] = _pax_records(data, loc) if h.type == _PAX else _long_name(data, loc)

    def _exact(self, n: int, eof_ok: bool) -> bytes | None:
        chunks, got = [], 0
        while got < n:
            data = self._src.read(n - got)
            if not data:
                break
            chunks.append(data)
            got += len(data)
        self._offset += got
        if got == n:
            return b"".join(chunks)
        if got == 0 and eof_ok:
            return None
        raise UnsafeArchive(self._where, f"offset {self._offset - got}", "truncated: the stream ends inside a header")

    def _skip(self, n: int) -> None:
        while n > 0:
            data = self._src.read(min(n, 1 << 20))
            if not data:
                raise UnsafeArchive(self._where, self._current, "truncated: the stream ends inside the entry's data")
            self._offset += len(data)
            n -= len(data)


class _Located:
    """Where errors point: the layer, then the entry (its offset until its name is known)."""

    def __init__(self, where: str, entry: str) -> None:
        self.where, self.entry = where, entry

    def error(self, reason: str) -> UnsafeArchive:
        return UnsafeArchive(self.where, self.entry, reason)


class _Header:
    """The fields of one 512-byte header block, checksum verified."""

    def __init__(self, b: bytes, loc: _Located) -> None:
        want = _number(b[148:156], "checksum", loc)
        unsigned = sum(b[:148]) + 8 * 0x20 + sum(b[156:])
        signed = unsigned - 256 * sum(1 for c in b[:148] + b[156:] if c & 0x80)  # old writers summed signed chars
        if want not in (unsigned, signed):
            raise loc.error("bad header checksum")
        self.name = _cstr(b[0:100])
        if b[257:263] == b"ustar\0" and b[345] != 0:  # POSIX ustar: a prefix (GNU has other fields there)
            self.name = _cstr(b[345:500]) + "/" + self.name
        self.type = b[156:157]
        if self.name and self.type not in (_PAX, _GLOBAL, _LONGNAME, _LONGLINK):
            loc.entry = self.name  # an extension header's own name means nothing: it keeps its offset
        self.mode = _number(b[100:108], "mode", loc)
        self.uid = _number(b[108:116], "uid", loc)
        self.gid = _number(b[116:124], "gid", loc)
        self.size = _number(b[124:136], "size", loc)
        self.mtime = _number(b[136:148], "mtime", loc) * 10**9
        self.linkname = _cstr(b[157:257])
        ustar = b[257:262] == b"ustar"  # POSIX or GNU: the device fields exist
        self.devmajor = _number(b[329:337], "devmajor", loc) if ustar else 0
        self.devminor = _number(b[337:345], "devminor", loc) if ustar else 0
        if b[257:265] == b"ustar  \0":  # GNU keeps atime and ctime where POSIX has the prefix
            for what, f in (("atime", b[345:357]), ("ctime", b[357:369])):
                if _number(f, what, loc) >= MAX_TIME:
                    raise loc.error(f"{what} is out of range (0 to {MAX_TIME - 1} seconds)")


def _entry(h: _Header, ext: dict[bytes, Any], loc: _Located) -> Entry:
    pax: dict[str, bytes] = ext.get(_PAX, {})
    name = _pick(h.name, ext.get(_LONGNAME), pax.get("path"), "path", loc)
    loc.entry = name or loc.entry
    linkname = _pick(h.linkname, ext.get(_LONGLINK), pax.get("linkpath"), "linkpath", loc)
    if h.type == b"S" or any(k.startswith("GNU.sparse.") for k in pax):
        raise loc.error("sparse files are not supported")
    kind = KINDS.get(h.type)
    if kind is None:
        raise loc.error(f"unsupported tar entry type {h.type!r}")
    if h.type == b"\0" and name.endswith("/"):
        kind = "dir"  # pre-POSIX tars marked directories only by the trailing slash
    e = Entry(name, kind, h.mode, h.uid, h.gid, h.size, h.mtime, linkname, h.devmajor, h.devminor)
    for key in ("uid", "gid", "size"):
        if key in pax:
            setattr(e, key, _pax_int(pax[key], key, loc))
    times = {key: _pax_time(pax[key], key, loc) for key in ("mtime", "atime", "ctime") if key in pax}
    e.mtime_ns = times.get("mtime", e.mtime_ns)
    for key, value in pax.items():
        if key.startswith(_XATTR):
            if key == _XATTR:
                raise loc.error("pax xattr record with no attribute name")
            e.xattrs[key[len(_XATTR) :]] = value
    _check(e, loc)
    return e


def _check(e: Entry, loc: _Located) -> None:
    if not e.name:
        raise loc.error("entry has no name")
    if e.mode > MAX_MODE:
        raise loc.error(f"mode {e.mode:o} is out of range")
    for key, value in (("uid", e.uid), ("gid", e.gid)):
        if value > MAX_ID:
            raise loc.error(f"{key} {value} is out of range (0 to {MAX_ID})")
    if not 0 <= e.mtime_ns < MAX_TIME * 10**9:
        raise loc.error(f"mtime is out of range (0 to {MAX_TIME - 1} seconds)")
    if e.kind in HEADER_ONLY and e.size != 0:
        raise loc.error(f"a {e.kind} entry has {e.size} bytes of data (must be 0)")
    if e.kind in ("symlink", "hardlink") and not 0 < len(e.linkname) <= MAX_LINK:
        raise loc.error(f"{e.kind} target must be 1 to {MAX_LINK} characters")
    if "\0" in e.linkname:
        raise loc.error("NUL byte in link target")
    if e.kind in ("chr", "blk") and (e.devmajor >= MAX_MAJOR or e.devminor >= MAX_MINOR):
        raise loc.error(f"device number {e.devmajor}:{e.devminor} is out of range")


def _pick(header: str, gnu: str | None, pax: bytes | None, key: str, loc: _Located) -> str:
    """A name from the header, a GNU long name, or a pax record: at most one extension."""
    if gnu is not None and pax is not None:
        raise loc.error(f"both a GNU long name and a pax {key} record")
    if pax is None:
        return header if gnu is None else gnu
    if not pax or b"\0" in pax:
        raise loc.error(f"pax {key} record is empty or holds a NUL byte")
    return pax.decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, loc: _Located) -> dict[str, bytes]:
    """pax extended header records, ``"%d %s=%s\\n"`` where %d counts the whole record."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space] if space > pos else b""
        if not _INT.fullmatch(digits) or digits.startswith(b"0"):
            raise loc.error(f"pax record at byte {pos} does not start with its length")
        end = pos + int(digits)
        if end > len(data) or end < space + 3 or data[end - 1] != 0x0A:
            raise loc.error(f"pax record at byte {pos} has a wrong length")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq or not key or b"\0" in key:
            raise loc.error(f"pax record at byte {pos} is not key=value")
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            raise loc.error(f"pax record at byte {pos}: key is not UTF-8") from None
        if text in out:
            raise loc.error(f"pax key {text!r} appears twice")
        out[text] = value
        pos = end
    return out


def _pax_int(value: bytes, key: str, loc: _Located) -> int:
    if not _INT.fullmatch(value):
        raise loc.error(f"pax {key} {_shown(value)} is not a decimal number")
    return int(value)


def _pax_time(value: bytes, key: str, loc: _Located) -> int:
    """Seconds since the epoch, ``[0-9]+(.[0-9]*)?``, as nanoseconds (no float is ever made)."""
    m = _TIME.fullmatch(value)
    if m is None or int(m.group(1)) >= MAX_TIME:
        raise loc.error(f"pax {key} {_shown(value)} is not a time (decimal seconds, 0 to {MAX_TIME - 1})")
    return int(m.group(1)) * 10**9 + int((m.group(2) or b"")[:9].ljust(9, b"0"))


def _long_name(data: bytes, loc: _Located) -> str:
    """A GNU long name: the name, then NULs only."""
    name, _, rest = data.partition(b"\0")
    if not name or rest.strip(b"\0"):
        raise loc.error("GNU long name is empty or has bytes after its NUL")
    return name.decode("utf-8", "surrogateescape")


def _number(f: bytes, what: str, loc: _Located) -> int:
    """A numeric header field: octal, space/NUL padded; or GNU base-256 (first byte 0x80 set)."""
    if f[0] & 0x80:
        if f[0] & 0x40:
            raise loc.error(f"{what} field is negative")
        return int.from_bytes(bytes([f[0] & 0x3F]) + f[1:], "big")
    digits = f.strip(b" \0")
    if not _OCTAL.fullmatch(digits):
        raise loc.error(f"{what} field {_shown(f)} is not an octal number")
    return int(digits, 8) if digits else 0


def _cstr(f: bytes) -> str:
    return f.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _shown(value: bytes) -> str:
    return repr(value[:40])[1:]
