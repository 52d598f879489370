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
