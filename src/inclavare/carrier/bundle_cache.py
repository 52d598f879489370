"""Bundle caches: the signed enclave of an image kept in epm, so the next pod skips the build.

The original Occlum carrier kept three levels in epm (src/inclavare/epm),
each entry's parent the level below, and so do the carriers here, in the
pools ``bundle-cache.<carrier>.cache<N>``:

    cache0  ID = the rootfs content digest: SHA-256 over every file the
            manifest pins (path and SHA-256 of its bytes, in path order);
            data: that list (what the image was, for `inclavare epm list`)
    cache1  ID = SHA-256(cache0 ID, the manifest template, the runtime that
            runs it: carrier name, inclavare version, measurement domain);
            data: the expanded manifest (``enclave.toml``)
    cache2  ID = SHA-256(cache1 ID, the signer's MRSIGNER);
            data: the signature (``enclave.toml.sig``)

The original's IDs had two faults, both fixed here. cache1 was meant to hash
the LibOS, the runtime that runs the enclave, but hashed the Occlum
configuration file twice instead, so an enclave built for one LibOS was
served after the LibOS changed; here the runtime's identity is part of the
ID. And cache0 was the ``IMAGE_DIGEST`` the pod set in its environment,
"" when it set none, so every image without it shared one cache0; here the
ID is computed from the content itself.

Nothing loaded from epm is trusted: before a cached manifest and signature
reach the bundle, the manifest must be the one this container's template
expands to (same runtime, argv, environment, memory, broker pin, files) and
the signature must verify against the rootfs (``verify_parsed``: every
pinned file re-hashed, the measurement recomputed, the signer the one
configured). An entry that fails is removed, with a warning, and the
enclave is built as without caches. So is it when epm is down or the entry
is missing, with one debug line. A partial hit (a manifest cached, but not
for this signer) skips the generation and only signs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile

from .. import __version__
from ..enclave.identity import dump_manifest, parse_manifest, sigfile
from ..enclave.identity.errors import IdentityError
from ..enclave.identity.identity import EnclaveIdentity
from ..enclave.identity.manifest import Manifest
from ..enclave.identity.measure import DOMAIN
from ..enclave.identity.rootfs import RootfsError, sha256_in_root
from ..enclave.identity.signing import verify_parsed
from ..epm.errors import EpmError

log = logging.getLogger("inclavare.carrier")
MANIFEST_NAME = "enclave.toml"
SIGNATURE_NAME = "enclave.toml.sig"
_ID = b"inclavare/bundle-cache/v1\0"
_MAX = 1 << 20
Key = tuple[str, str, str]


@dataclasses.dataclass(frozen=True)
class Keys:
    cache0: Key
    cache1: Key
    cache2: Key
    files: tuple[tuple[str, str], ...]  # (path, sha256 hex): cache0's data


def pool(carrier: str, level: int) -> str:
    return f"bundle-cache.{carrier}.cache{level}"


def keys_for(carrier: str, template: Manifest, rootfs: str, signer: bytes) -> Keys:
    """The three IDs for `template` over `rootfs`, signed by MRSIGNER `signer` (RootfsError: a file is unreadable)."""
    paths = sorted({t.path for t in template.trusted_files} | ({template.wasm.module} if template.wasm else set()))
    files = tuple((p, sha256_in_root(rootfs, p).hex()) for p in paths)
    id0 = _digest(b"cache0", *(f"{p}\0{h}" for p, h in files))
    runtime = f"{carrier}\0inclavare {__version__}\0{DOMAIN.decode('ascii', 'replace')}"
    id1 = _digest(b"cache1", id0, hashlib.sha256(dump_manifest(template).encode()).hexdigest(), runtime)
    id2 = _digest(b"cache2", id1, signer.hex())
    return Keys((pool(carrier, 0), "", id0), (pool(carrier, 1), "", id1), (pool(carrier, 2), "", id2), files)


def _digest(level: bytes, *parts: str) -> str:
    h = hashlib.sha256(_ID + level)
    for part in parts:  # length-prefixed: no two part lists hash alike
        data = part.encode()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


class BundleCaches:
    """The caches at epm's `socket`; every method turns epm's failures into a miss (one debug line)."""

    def __init__(self, socket: str) -> None:
        from ..epm.client import EpmClient

        self.socket = socket
        self._client = EpmClient(socket)
        self.down = False  # epm failed once: not asked again for this container (one debug line)
        self.refused = False  # an entry failed verification: nothing cached is used for this container
        self._work = tempfile.mkdtemp(prefix="inclavare-carrier-")  # 0700: epm copies from and to here only

    def close(self) -> None:
        self._client.close()
        shutil.rmtree(self._work, ignore_errors=True)

    def manifest(self, keys: Keys, template: Manifest) -> Manifest | None:
        """cache1: the expanded manifest of `template`, if cached (checked against the template only)."""
        text = self._load(keys.cache1, MANIFEST_NAME)
        if text is None:
            return None
        try:
            manifest = parse_manifest(text.decode(), "/" + MANIFEST_NAME)
        except (IdentityError, UnicodeDecodeError) as exc:
            self._bad(keys.cache1, str(exc))
            return None
        if not _expands(template, manifest):
            self._bad(keys.cache1, "it is not the manifest this container's template expands to")
            return None
        return manifest

    def signature(self, keys: Keys, manifest: Manifest, rootfs: str, signer: bytes,
                  sig_path: str) -> tuple[sigfile.SignatureFile, EnclaveIdentity] | None:  # fmt: skip
        """cache2: the signature of `manifest` by `signer`, if cached and it verifies against `rootfs`."""
        raw = self._load(keys.cache2, SIGNATURE_NAME)
        if raw is None:
            return None
        try:
            sig = sigfile.decode(raw, sig_path)
            identity = verify_parsed(manifest, sig, rootfs, sig_path, expected_signer=signer)
        except IdentityError as exc:
            self._bad(keys.cache2, str(exc))
            return None
        return sig, identity

    def save(self, keys: Keys, text: str | None, sig: bytes) -> None:
        """Save the levels that missed: cache0 and cache1 when `text` is given, then cache2."""
        if self.down:
            return
        try:
            if text is not None:
                doc = json.dumps({"files": dict(keys.files)}, indent=1).encode()
                self._client.save(keys.cache0, self._stage("cache0", "files.json", doc))
                self._client.save(keys.cache1, self._stage("cache1", MANIFEST_NAME, text.encode()), keys.cache0)
            self._client.save(keys.cache2, self._stage("cache2", SIGNATURE_NAME, sig), keys.cache1)
        except EpmError as exc:
            log.debug("bundle cache: not saved: %s", exc)

    def _load(self, key: Key, name: str) -> bytes | None:
        if self.down:
            return None
        target = tempfile.mkdtemp(dir=self._work)
        try:
            if not self._client.load(key, target):
                log.debug("bundle cache: %s/%s: miss", key[0], key[2])
                return None
            with open(os.path.join(target, name), "rb") as f:
                return f.read(_MAX)
        except EpmError as exc:
            self.down = True
            log.debug("bundle cache: %s", exc)
            return None
        except OSError as exc:
            log.debug("bundle cache: %s/%s: %s", key[0], key[2], exc.strerror)
            return None
        finally:
            shutil.rmtree(target, ignore_errors=True)

    def _stage(self, level: str, name: str, data: bytes) -> str:
        directory = tempfile.mkdtemp(prefix=level, dir=self._work)
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
        return directory

    def _bad(self, key: Key, reason: str) -> None:
        self.refused = True
        log.warning("bundle cache: %s/%s refused and removed: %s", key[0], key[2], reason)
        try:
            self._client.delete(key)
        except EpmError as exc:
            log.debug("bundle cache: %s", exc)


def open_caches(socket: str) -> BundleCaches | None:
    """The bundle caches at `socket` ("" -> none); None (one debug line) if no client can be made."""
    if not socket:
        return None
    try:
        return BundleCaches(socket)
    except (ImportError, OSError, EpmError) as exc:
        log.debug("bundle cache: epm at %s unusable: %s", socket, exc)
        return None


def _expands(template: Manifest, manifest: Manifest) -> bool:
    """True if `manifest` is `template` with its hashes pinned (the pins themselves are verify's to check)."""
    base = parse_manifest(dump_manifest(template), manifest.file)  # normalised as the cached one was
    if [t.path for t in base.trusted_files] != [t.path for t in manifest.trusted_files]:
        return False
    if any(
        b.sha256 is not None and b.sha256 != m.sha256
        for b, m in zip(base.trusted_files, manifest.trusted_files, strict=True)
    ):
        return False
    if (base.wasm is None) != (manifest.wasm is None):
        return False
    wasm = manifest.wasm
    if base.wasm is not None and wasm is not None:
        if base.wasm.module_sha256 is not None and base.wasm.module_sha256 != wasm.module_sha256:
            return False
        wasm = dataclasses.replace(wasm, module_sha256=base.wasm.module_sha256)
    return dataclasses.replace(manifest, trusted_files=base.trusted_files, wasm=wasm) == base


__all__ = ["BundleCaches", "Keys", "RootfsError", "keys_for", "open_caches", "pool"]
