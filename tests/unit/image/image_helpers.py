"""Tar layers built entry by entry, for the image tests (imported by name: no package here)."""

from __future__ import annotations

import io
import tarfile

KID = "kbs:///default/key/1"


def entry(name: str, kind: str = "file", data: bytes = b"", **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    """One tar member: kind is file, dir, symlink, hardlink, fifo, chr or blk."""
    info = tarfile.TarInfo(name)
    info.type = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "fifo": tarfile.FIFOTYPE,
        "chr": tarfile.CHRTYPE,
        "blk": tarfile.BLKTYPE,
    }[kind]
    info.mode = 0o755 if kind == "dir" else 0o644
    info.mtime = 1_600_000_000
    for key, value in kw.items():
        setattr(info, key, value)
    info.size = len(data) if kind == "file" else 0
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def header(name: bytes = b"f", kind: bytes = b"0", size: int = 0, *, mode: bytes = b"0000644", uid: bytes = b"0",
           gid: bytes = b"0", mtime: bytes = b"14000000000", linkname: bytes = b"", magic: bytes = b"ustar\x0000",
           prefix: bytes = b"", devmajor: bytes = b"0", devminor: bytes = b"0", raw: dict[int, bytes] | None = None,
           checksum: int | None = None) -> bytes:  # fmt: skip
    """One 512-byte ustar header with exactly these field bytes (octal fields NUL-terminated
    unless a value fills them); `raw` overwrites bytes at offsets; the checksum is right unless given."""

    def octal(value: bytes, width: int) -> bytes:
        return value if len(value) >= width else value.rjust(width - 1, b"0") + b"\0"

    b = bytearray(512)
    fields = [(0, name, 100), (100, octal(mode, 8), 8), (108, octal(uid, 8), 8), (116, octal(gid, 8), 8),
              (124, octal(b"%o" % size, 12), 12), (136, octal(mtime, 12), 12), (156, kind, 1),
              (157, linkname, 100), (257, magic, 8), (329, octal(devmajor, 8), 8), (337, octal(devminor, 8), 8),
              (345, prefix, 155)]  # fmt: skip
    for off, value, width in fields:
        b[off : off + min(len(value), width)] = value[:width]
    for off, value in (raw or {}).items():
        b[off : off + len(value)] = value
    b[148:156] = b" " * 8
    total = sum(b) if checksum is None else checksum
    b[148:156] = b"%06o\0 " % total
    return bytes(b)


def data_blocks(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def pax(records: dict[str, bytes] | list[bytes]) -> bytes:
    """An 'x' header and its records: a dict is encoded correctly, a list of raw records is used as is."""
    if isinstance(records, dict):
        raw = []
        for k, v in records.items():
            body = b" " + k.encode() + b"=" + v + b"\n"
            n = len(body) + 1
            while len(str(n)) + len(body) != n:
                n += 1
            raw.append(str(n).encode() + body)
        records = raw
    data = b"".join(records)
    return header(b"PaxHeader", b"x", len(data)) + data_blocks(data)


def end() -> bytes:
    return bytes(1024)
