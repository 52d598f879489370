"""OCI image layouts on disk: descriptors, verified blobs, index and manifests.

Ref: OCI image-spec image-layout.md (``oci-layout``, ``index.json``,
``blobs/<alg>/<encoded>``), descriptor.md (``mediaType``, ``digest``,
``size``, ``annotations``; digest grammar and the registered sha256/sha512
algorithms), image-index.md and manifest.md. Every blob read through
:meth:`Layout.open_blob` is checked against its descriptor's size and
digest; a blob that is longer, shorter or different raises
:class:`DigestMismatch` naming the digest, never its content.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import mediatypes as mt
from .errors import DigestMismatch, LayoutError

LAYOUT_VERSION = "1.0.0"
_DIGEST = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
JSON_LIMIT = 16 << 20  # manifests, indexes and configs are small; refuse to load a huge "JSON" blob
CHUNK = 1 << 20
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def check_digest(digest: object, where: str) -> str:
    """A digest string `alg:hex` with a registered algorithm (descriptor.md "Digests")."""
    if not isinstance(digest, str) or ":" not in digest:
        raise LayoutError(where, "digest", "must be a string <algorithm>:<encoded>")
    alg, encoded = digest.split(":", 1)
    if alg not in _DIGEST or not _DIGEST[alg].fullmatch(encoded):
        raise LayoutError(where, "digest", f"unsupported or malformed digest {digest!r}")
    return digest


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (descriptor.md); unknown fields are kept in `extra`."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: object, where: str) -> Descriptor:
        if not isinstance(doc, dict):
            raise LayoutError(where, "", "descriptor must be an object")
        media_type, size, ann = doc.get("mediaType"), doc.get("size"), doc.get("annotations", {})
        if not isinstance(media_type, str) or not media_type:
            raise LayoutError(where, "mediaType", "must be a non-empty string")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise LayoutError(where, "size", "must be a non-negative integer")
        if not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items()):
            raise LayoutError(where, "annotations", "must map strings to strings")
        extra = {k: v for k, v in doc.items() if k not in ("mediaType", "digest", "size", "annotations")}
        return cls(media_type, check_digest(doc.get("digest"), where), size, dict(ann), extra)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        out.update(self.extra)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Manifest:
    """An image manifest (manifest.md): config and layer descriptors."""

    descriptor: Descriptor
    config: Descriptor
    layers: list[Descriptor]
    doc: dict[str, Any]


class VerifiedReader:
    """Reads a blob and, at end of file, checks it against its descriptor.

    Extra hashers (e.g. an HMAC) see the same bytes. Reading past the
    declared size, or stopping short of it, is a :class:`DigestMismatch`.
    """

    def __init__(self, fd: int, desc: Descriptor, hashers: Iterable[Any] = ()) -> None:
        self._file: BinaryIO = os.fdopen(fd, "rb")
        self.desc = desc
        self._alg = desc.digest.split(":", 1)[0]
        self._hash = hashlib.new(self._alg)
        self._extra = list(hashers)
        self._seen = 0
        self.verified = False

    def read(self, n: int = -1) -> bytes:
        want = CHUNK if n is None or n < 0 else n
        data = self._file.read(min(want, self.desc.size - self._seen + 1))
        self._seen += len(data)
        if self._seen > self.desc.size:
            raise DigestMismatch(
                self.desc.digest, "size", f"blob is longer than the descriptor's {self.desc.size} bytes"
            )
        self._hash.update(data)
        for h in self._extra:
            h.update(data)
        if not data or self._seen == self.desc.size:
            self._finish()
        return data

    def _finish(self) -> None:
        if self.verified:
            return
        if self._seen != self.desc.size or self._file.read(1):
            raise DigestMismatch(self.desc.digest, "size", f"blob size differs from the descriptor's {self.desc.size}")
        if f"{self._alg}:{self._hash.hexdigest()}" != self.desc.digest:
            raise DigestMismatch(self.desc.digest, "digest", "blob content does not match its digest")
        self.verified = True

    def drain(self) -> None:
        """Read to the end so the size and digest checks run."""
        while self.read(CHUNK):
            pass
        self._finish()

    def close(self) -> None:
        self._file.close()

    def fileno(self) -> int:
        return self._file.fileno()

    def __enter__(self) -> VerifiedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Layout:
    """An OCI image layout directory (image-layout.md)."""

    def __init__(self, path: str) -> None:
        self.path = path
        marker = os.path.join(path, "oci-layout")
        doc = self._json_file(marker, "oci-layout")
        if not isinstance(doc, dict) or doc.get("imageLayoutVersion") != LAYOUT_VERSION:
            raise LayoutError(marker, "imageLayoutVersion", f"must be {LAYOUT_VERSION!r}")

    @classmethod
    def create(cls, path: str) -> Layout:
        """Make an empty layout at `path` (or open the one already there)."""
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        if not os.path.exists(os.path.join(path, "oci-layout")):
            _atomic_write(os.path.join(path, "oci-layout"), json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
        if not os.path.exists(os.path.join(path, "index.json")):
            _atomic_write(os.path.join(path, "index.json"), json.dumps({"schemaVersion": 2, "manifests": []}).encode())
        return cls(path)

    def _json_file(self, path: str, what: str) -> Any:
        try:
            with open(path, "rb") as f:
                data = f.read(JSON_LIMIT + 1)
        except OSError as exc:
            raise LayoutError(path, "", f"cannot read {what}: {exc.strerror}") from None
        return _loads(data, path)

    def index(self) -> dict[str, Any]:
        path = os.path.join(self.path, "index.json")
        doc = self._json_file(path, "index.json")
        if not isinstance(doc, dict) or doc.get("schemaVersion") != 2 or not isinstance(doc.get("manifests"), list):
            raise LayoutError(path, "manifests", "index.json must have schemaVersion 2 and a manifests array")
        return doc

    def blob_path(self, digest: str) -> str:
        alg, encoded = check_digest(digest, "blob").split(":", 1)
        return os.path.join(self.path, "blobs", alg, encoded)

    def open_blob(self, desc: Descriptor, hashers: Iterable[Any] = ()) -> VerifiedReader:
        path = self.blob_path(desc.digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise LayoutError(desc.digest, "", f"cannot open blob: {exc.strerror}") from None
        return VerifiedReader(fd, desc, hashers)

    def read_json(self, desc: Descriptor) -> dict[str, Any]:
        if desc.size > JSON_LIMIT:
            raise LayoutError(desc.digest, "size", f"a {desc.media_type} over {JSON_LIMIT} bytes is refused")
        with self.open_blob(desc) as r:
            data = b"".join(iter(lambda: r.read(CHUNK), b""))
            r.drain()
        doc = _loads(data, desc.digest)
        if not isinstance(doc, dict):
            raise LayoutError(desc.digest, "", "must be a JSON object")
        return doc

    def resolve(self, ref: str | None) -> Descriptor:
        """The manifest descriptor named `ref` (or the only one), through nested indexes."""
        entries = [Descriptor.parse(d, f"index.json: manifests[{i}]") for i, d in enumerate(self.index()["manifests"])]
        if ref is not None:
            entries = [d for d in entries if d.annotations.get(mt.REF_NAME) == ref]
            if not entries:
                raise LayoutError(os.path.join(self.path, "index.json"), "manifests", f"no image tagged {ref!r}")
        if len(entries) != 1:
            raise LayoutError(
                os.path.join(self.path, "index.json"), "manifests", f"{len(entries)} images match; name a tag"
            )
        desc = entries[0]
        for _ in range(8):  # an index of indexes is legal; bound the depth
            if desc.media_type not in (mt.INDEX, mt.DOCKER_LIST):
                return desc
            desc = self._pick_platform(desc)
        raise LayoutError(desc.digest, "manifests", "image indexes nested too deeply")

    def _pick_platform(self, desc: Descriptor) -> Descriptor:
        doc = self.read_json(desc)
        arch = _ARCH.get(platform.machine(), platform.machine())
        for i, m in enumerate(doc.get("manifests") or []):
            d = Descriptor.parse(m, f"{desc.digest}: manifests[{i}]")
            plat = d.extra.get("platform") or {}
            if plat.get("os", "linux") == "linux" and plat.get("architecture", arch) == arch:
                return d
        raise LayoutError(desc.digest, "manifests", f"no manifest for linux/{arch}")

    def manifest(self, desc: Descriptor) -> Manifest:
        if desc.media_type not in (mt.MANIFEST, mt.DOCKER_MANIFEST):
            raise LayoutError(desc.digest, "mediaType", f"not an image manifest: {desc.media_type!r}")
        doc = self.read_json(desc)
        if doc.get("schemaVersion") != 2:
            raise LayoutError(desc.digest, "schemaVersion", "must be 2")
        if doc.get("mediaType", desc.media_type) != desc.media_type:
            raise LayoutError(desc.digest, "mediaType", "differs from the descriptor that points at it")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise LayoutError(desc.digest, "layers", "must be an array")
        config = Descriptor.parse(doc.get("config"), f"{desc.digest}: config")
        parsed = [Descriptor.parse(d, f"{desc.digest}: layers[{i}]") for i, d in enumerate(layers)]
        return Manifest(desc, config, parsed, doc)

    # -- writing (encrypt, build) --------------------------------------------------

    def write_blob(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store a blob from `chunks`; returns (digest, size). Atomic: temp file + rename."""
        h, size = hashlib.sha256(), 0
        tmpdir = os.path.join(self.path, "blobs", "sha256")
        os.makedirs(tmpdir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmpdir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
            digest = "sha256:" + h.hexdigest()
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.blob_path(digest))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return digest, size

    def write_json(self, doc: dict[str, Any], media_type: str) -> Descriptor:
        data = json.dumps(doc, separators=(",", ":")).encode()
        digest, size = self.write_blob([data])
        return Descriptor(media_type, digest, size)

    def tag(self, desc: Descriptor, ref: str) -> None:
        """Point `ref` at `desc` in index.json, replacing any image of that name."""
        index = self.index()
        keep = [m for m in index["manifests"] if (m.get("annotations") or {}).get(mt.REF_NAME) != ref]
        entry = Descriptor(desc.media_type, desc.digest, desc.size, {**desc.annotations, mt.REF_NAME: ref})
        index["manifests"] = [*keep, entry.to_json()]
        _atomic_write(os.path.join(self.path, "index.json"), json.dumps(index, separators=(",", ":")).encode())


def split_ref(arg: str) -> tuple[str, str | None]:
    """``PATH[:TAG]`` as skopeo's ``oci:`` transport reads it (the tag after the last colon)."""
    path, sep, tag = arg.rpartition(":")
    if sep and path and tag and "/" not in tag:
        return path, tag
    return arg, None


def _loads(data: bytes, where: str) -> Any:
    if len(data) > JSON_LIMIT:
        raise LayoutError(where, "", f"larger than {JSON_LIMIT} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LayoutError(where, "", f"not valid JSON ({exc.__class__.__name__})") from None


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
