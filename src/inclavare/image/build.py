"""Packing root filesystems into OCI images: layers as tar, gzip or zstd blobs.

Used to make images for samples and tests without a registry. A layer is
given as uncompressed tar bytes; the config's ``rootfs.diff_ids`` are their
digests, the manifest's layer descriptors those of the compressed blobs
(image-spec config.md "Layer DiffID", manifest.md). Compression is
deterministic (gzip ``mtime=0``), so the same input gives the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from typing import Any

from . import mediatypes as mt
from .layout import Descriptor, Layout


def compress(tar: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(tar, mtime=0)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(tar)
    if compression == "":
        return tar
    raise ValueError(f"unknown compression {compression!r}")


def tar_directory(path: str) -> bytes:
    """A layer tar of the tree at `path` (numeric owners, sorted, ``./``-relative names)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                arc = os.path.relpath(full, path)
                info = tar.gettarinfo(full, arc)
                info.uname = info.gname = ""
                if info.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def build_image(
    layout_path: str,
    ref: str,
    layers: list[tuple[bytes, str]],
    config: dict[str, Any] | None = None,
    architecture: str = "amd64",
) -> Descriptor:
    """Write an image of `layers` ((tar bytes, compression) pairs) tagged `ref`."""
    layout = Layout.create(layout_path)
    descs, diff_ids = [], []
    for tar, compression in layers:
        blob = compress(tar, compression)
        digest, size = layout.write_blob([blob])
        descs.append(Descriptor(mt.LayerType(compression, False).media_type(), digest, size).to_json())
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
    image = {
        "architecture": architecture,
        "os": "linux",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cfg = layout.write_json(image, mt.CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": mt.MANIFEST, "config": cfg.to_json(), "layers": descs}
    desc = layout.write_json(manifest, mt.MANIFEST)
    layout.tag(desc, ref)
    return desc
