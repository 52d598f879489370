"""``inclavare image unpack``: an OCI image layout (encrypted or not) into a rune bundle.

Order of work, so that nothing is written for an image that will be refused:

1. resolve the manifest (image-layout.md ``index.json``, ``ref.name``), read
   the config; every JSON blob is digest-checked;
2. classify every layer (mediatypes.py) and, for ``+encrypted`` ones, get the
   private options through the key providers (ocicrypt protocol; for
   inclavare's provider, from the KBS after attestation) and parse the
   public options (``org.opencontainers.image.enc.pubopts``);
3. pre-pass over every blob: size and digest against the descriptor and,
   when encrypted, the HMAC over the ciphertext (encrypt-then-MAC: nothing
   is decrypted before it authenticates);
4. apply the layers lowest first: decrypt, decompress (gzip, zstd or none),
   check the tar against ``rootfs.diff_ids[i]`` (config.md), extract safely
   (extract.py); blob digest and MAC are checked again at the end of the stream;
5. write config.json (bundle.py): without ``enclave_settings``, the image's
   enclave settings are left out and reported in ``Result.report.skipped``.

Any failure in 4-5 removes what this call created.

The bundle directory is made (or left) mode 0700, as umoci does: unpacked as
root, the rootfs holds the image's setuid binaries, file capabilities and
device nodes with the image's owners and modes, which other users of the
machine must not be able to reach. The rootfs keeps the image's own mode
(the container's processes resolve every path through it). Decompression
is bounded: ``max_bytes`` of tar stream over all layers (a gzip/zstd bomb
stops there), and tar extension headers are capped in extract.py.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

from . import mediatypes as mt
from .bundle import runtime_config
from .errors import DecryptionError, DigestMismatch, ImageError, LayoutError, UnsafeArchive
from .extract import LayerApplier, Report
from .layercrypt import LayerDecryptor, PrivateOptions, PublicOptions, mac_of
from .layout import CHUNK, Descriptor, Layout, VerifiedReader
from .providers import Unwrapper


@dataclass(frozen=True)
class _Plan:
    index: int
    desc: Descriptor
    compression: str
    diff_id: str
    private: PrivateOptions | None = None
    public: PublicOptions | None = None


@dataclass(frozen=True)
class Result:
    manifest: str  # digest of the manifest unpacked
    layers: int
    decrypted: int
    report: Report


MAX_BYTES = 64 << 30  # uncompressed tar bytes over all layers; --max-size


def unpack(
    layout_path: str,
    ref: str | None,
    bundle: str,
    unwrapper: Unwrapper | None = None,
    rootless: bool | None = None,
    max_bytes: int = MAX_BYTES,
    enclave_settings: bool = False,
    privileged_xattrs: bool = False,
) -> Result:
    """Unpack `ref` from the layout at `layout_path` into the bundle directory `bundle`.

    `enclave_settings` copies the image's ``enclave.*`` labels and ``ENCLAVE_*``
    variables into config.json (bundle.py); `privileged_xattrs` applies its
    ``trusted.*`` and ``security.*`` xattrs (extract.py). Both are off by default.
    """
    layout = Layout(layout_path)
    manifest = layout.manifest(layout.resolve(ref))
    config = layout.read_json(manifest.config)
    plans = _plan(manifest.layers, config, manifest.config.digest, unwrapper)
    checked: list[int] = []  # the pre-passed blobs, applied from the very files that were checked
    try:
        for plan in plans:
            checked.append(_prepass(layout, plan))
        rootless = os.geteuid() != 0 if rootless is None else rootless
        opts = _Options(rootless, _Budget(max_bytes), enclave_settings, privileged_xattrs)
        applier = _apply_all(bundle, plans, checked, opts, config, manifest.config.digest)
    finally:
        for fd in checked:
            os.close(fd)
    decrypted = sum(1 for p in plans if p.private is not None)
    return Result(manifest.descriptor.digest, len(plans), decrypted, applier.report)


@dataclass(frozen=True)
class _Options:
    rootless: bool
    budget: _Budget
    enclave_settings: bool
    privileged_xattrs: bool


def _apply_all(bundle: str, plans: list[_Plan], checked: list[int], opts: _Options,
               config: dict[str, Any], config_digest: str) -> LayerApplier:  # fmt: skip
    rootfs, config_path = os.path.join(bundle, "rootfs"), os.path.join(bundle, "config.json")
    for path in (rootfs, config_path):
        if os.path.lexists(path):
            raise LayoutError(path, "", "already exists; unpack into a new bundle directory")
    made_bundle = not os.path.exists(bundle)
    os.makedirs(bundle, mode=0o700, exist_ok=True)
    os.chmod(bundle, 0o700)
    os.mkdir(rootfs, 0o755)
    applier = LayerApplier(rootfs, opts.rootless, opts.privileged_xattrs)
    try:
        for plan, fd in zip(plans, checked, strict=True):
            _apply(fd, plan, applier, opts.budget)
        spec = runtime_config(config, applier.root, opts.rootless, config_digest, opts.enclave_settings,
                              applier.report.skipped)  # fmt: skip
        tmp = config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(spec, f, indent=1)
        os.replace(tmp, config_path)
    except BaseException:
        applier.close()
        shutil.rmtree(bundle if made_bundle else rootfs, ignore_errors=True)
        for leftover in (config_path, config_path + ".tmp"):
            if not made_bundle and os.path.lexists(leftover):
                os.unlink(leftover)
        raise
    applier.close()
    return applier


def _plan(layers: list[Descriptor], config: dict[str, Any], where: str, unwrapper: Unwrapper | None) -> list[_Plan]:
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers) or not all(isinstance(d, str) for d in diff_ids):
        raise LayoutError(where, "rootfs.diff_ids", f"must list one digest per layer ({len(layers)})")
    plans = []
    for i, desc in enumerate(layers):
        kind = mt.parse_layer(desc.media_type, f"layers[{i}]")
        if not kind.encrypted:
            plans.append(_Plan(i, desc, kind.compression, diff_ids[i]))
            continue
        if unwrapper is None:
            raise DecryptionError(
                desc.digest,
                "mediaType",
                "layer is encrypted: name a key provider (--keyprovider-config, --decryption-key)",
            )
        pubopts = desc.annotations.get(mt.PUBOPTS_ANNOTATION)
        if pubopts is None:
            raise DecryptionError(desc.digest, f"annotations.{mt.PUBOPTS_ANNOTATION}", "missing on an encrypted layer")
        public = PublicOptions.from_annotation(pubopts, desc.digest)
        plans.append(_Plan(i, desc, kind.compression, diff_ids[i], unwrapper.private_options(desc), public))
    return plans


def _prepass(layout: Layout, plan: _Plan) -> int:
    """Check the blob; return a descriptor of the same open file for :func:`_apply`
    (opening it by path again would read whatever is at the path by then)."""
    mac = mac_of(plan.private) if plan.private is not None else None
    with layout.open_blob(plan.desc, [mac] if mac is not None else []) as reader:
        reader.drain()
        fd = os.dup(reader.fileno())
    if mac is not None and plan.public is not None and not hmac.compare_digest(mac.digest(), plan.public.hmac):
        os.close(fd)
        raise DecryptionError(
            plan.desc.digest, "hmac", "layer ciphertext does not authenticate under the unwrapped key"
        )
    return fd


def _apply(fd: int, plan: _Plan, applier: LayerApplier, budget: _Budget) -> None:
    where = f"layer {plan.index} ({plan.desc.digest})"
    os.lseek(fd, 0, os.SEEK_SET)
    with VerifiedReader(os.dup(fd), plan.desc) as reader:
        plain = _Plain(reader, plan)
        tar = _Hashing(_decompress(plain, plan.compression), plan.diff_id, where, budget)
        applier.apply(tar, where)
        tar.drain()
        reader.drain()
        plain.check()
        tar.check()


class _Plain:
    """The layer blob as it was before encryption: decrypts on the fly; the MAC is checked at EOF.

    The private options' ``digest`` is not checked: it names the blob handed
    to ocicrypt, and containers/image compresses uncompressed layers *before*
    encrypting them while passing the source digest (so a skopeo-encrypted
    ``tar`` layer decrypts to a gzip blob whose digest differs). Plaintext
    integrity rests on the MAC and on ``rootfs.diff_ids``.
    """

    def __init__(self, reader: VerifiedReader, plan: _Plan) -> None:
        self._reader = reader
        self._dec = (
            LayerDecryptor(plan.private, plan.public, plan.desc.digest) if plan.private and plan.public else None
        )

    def read(self, n: int = -1) -> bytes:
        data = self._reader.read(n)
        return self._dec.update(data) if self._dec is not None else data

    def check(self) -> None:
        if self._dec is not None:
            self._dec.verify()


class _Budget:
    """Uncompressed bytes left for the whole unpack."""

    def __init__(self, max_bytes: int) -> None:
        self.max = self.left = max_bytes

    def spend(self, n: int, where: str) -> None:
        self.left -= n
        if self.left < 0:
            raise UnsafeArchive(where, "", f"layers decompress to more than {self.max} bytes (--max-size)")


class _Hashing:
    """The uncompressed tar stream, hashed for the ``rootfs.diff_ids`` check."""

    def __init__(self, src: Any, diff_id: str, where: str, budget: _Budget) -> None:
        self._budget = budget
        self._src = src
        self._want = diff_id
        self._where = where
        alg = diff_id.split(":", 1)[0]
        if alg not in ("sha256", "sha512"):
            raise LayoutError(where, "rootfs.diff_ids", f"unsupported digest {diff_id[:80]!r}")
        self._hash = hashlib.new(alg)

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._src.read(CHUNK if n is None or n < 0 else n)
        except ImageError:
            raise
        except Exception as exc:  # gzip (OSError, zlib.error, EOFError) and zstandard.ZstdError share no base
            raise LayoutError(self._where, "", f"cannot decompress ({exc.__class__.__name__}: {exc})") from None
        self._budget.spend(len(data), self._where)
        self._hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def check(self) -> None:
        if f"{self._want.split(':', 1)[0]}:{self._hash.hexdigest()}" != self._want:
            raise DigestMismatch(
                self._where, "rootfs.diff_ids", "uncompressed layer does not match the config's diff_id"
            )


def _decompress(src: Any, compression: str) -> Any:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=src, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
    return src
