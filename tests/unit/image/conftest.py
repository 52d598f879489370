"""Shared helpers for the image tests: tar layers built entry by entry, a key store, a provider config."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile

import pytest

from inclavare.image.keystore import FileKeyStore, ResourcePath

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


@pytest.fixture
def keystore(tmp_path) -> FileKeyStore:
    store = FileKeyStore(str(tmp_path.joinpath("keys").mkdir() or tmp_path / "keys"))
    store.put(ResourcePath.parse(KID), os.urandom(32))
    return store


@pytest.fixture
def provider_config(tmp_path, keystore: FileKeyStore) -> str:
    """An ocicrypt key provider config running inclavare's provider (the real module, as a process)."""
    path = tmp_path / "ocicrypt.json"
    cmd = {"path": sys.executable, "args": ["-m", "inclavare.cli.keyprovider", "--keys", keystore.root]}
    path.write_text(json.dumps({"key-providers": {"inclavare": {"cmd": cmd}}}))
    return str(path)
