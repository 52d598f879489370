"""``inclavare image encrypt``: ocicrypt-compatible encryption of an OCI image's layers.

What ocicrypt's ``EncryptLayer`` (encryption.go) produces, so skopeo,
containerd's imgcrypt and CoCo's image-rs can decrypt it:

- each layer is encrypted with a fresh key (layercrypt.py); its media type
  gets ``+encrypted`` (ocicrypt spec/spec.go), its blob is the ciphertext;
- the private options are wrapped once per key scheme: for each
  ``provider:<name>:<params>`` by that key provider (ocicrypt protocol,
  annotation ``org.opencontainers.image.enc.keys.provider.<name>``), for
  each ``jwe:<public key>`` as a JWE (``org.opencontainers.image.enc.keys.jwe``;
  several recipients are comma-separated, as ocicrypt's preWrapKeys joins them);
- ``org.opencontainers.image.enc.pubopts`` carries the public options;
- the config is unchanged (its ``diff_ids`` still name the plain tars);
  other ``org.opencontainers.image.enc.*`` annotations are dropped.

The result is a new manifest tagged in the destination layout (which may be
the source layout).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

from . import mediatypes as mt
from .errors import KeyProviderError, LayoutError
from .keywrap import jwe_wrap
from .layercrypt import LayerEncryptor, new_private_options
from .layout import CHUNK, Descriptor, Layout, VerifiedReader
from .providers import ProviderCommand, wrap_with


def encrypt(
    src_path: str,
    src_ref: str | None,
    dst_path: str,
    dst_ref: str,
    providers: dict[str, ProviderCommand],
    parameters: dict[str, list[bytes]],
    jwe_public_keys: list[bytes],
) -> Descriptor:
    """Encrypt every layer of `src_ref`; returns the new manifest's descriptor."""
    if not parameters and not jwe_public_keys:
        raise KeyProviderError("command line", "--encryption-key", "at least one key is needed")
    for name in parameters:
        if name not in providers:
            raise KeyProviderError("key provider config", f"key-providers.{name}", "no such cmd provider configured")
    src = Layout(src_path)
    manifest = src.manifest(src.resolve(src_ref))
    if manifest.descriptor.media_type != mt.MANIFEST:
        raise LayoutError(manifest.descriptor.digest, "mediaType", "only OCI image manifests are encrypted here")
    dst = Layout.create(dst_path)
    _copy(src, dst, manifest.config)
    layers = [
        _encrypt_layer(src, dst, d, i, providers, parameters, jwe_public_keys) for i, d in enumerate(manifest.layers)
    ]
    doc = dict(manifest.doc)
    doc["layers"] = [d.to_json() for d in layers]
    desc = dst.write_json(doc, mt.MANIFEST)
    dst.tag(desc, dst_ref)
    return desc


def _encrypt_layer(
    src: Layout,
    dst: Layout,
    desc: Descriptor,
    index: int,
    providers: dict[str, ProviderCommand],
    parameters: dict[str, list[bytes]],
    jwe_public_keys: list[bytes],
) -> Descriptor:
    kind = mt.parse_layer(desc.media_type, f"layers[{index}]")
    if kind.encrypted:
        raise LayoutError(desc.digest, "mediaType", "layer is already encrypted")
    opts = new_private_options(desc.digest)
    encryptor = LayerEncryptor(opts)
    with src.open_blob(desc) as reader:
        digest, size = dst.write_blob(_chunks(reader, encryptor))
    public = encryptor.finalize()
    optsdata = opts.to_json()
    annotations = {k: v for k, v in desc.annotations.items() if not k.startswith(mt.ANNOTATION_PREFIX)}
    for name, params in parameters.items():
        wrapped = wrap_with(providers[name], params, optsdata)
        annotations[mt.PROVIDER_PREFIX + name] = base64.b64encode(wrapped).decode()
    if jwe_public_keys:
        parts = [
            base64.b64encode(jwe_wrap(optsdata, pem, f"jwe recipient {i}")).decode()
            for i, pem in enumerate(jwe_public_keys)
        ]
        annotations[mt.JWE_ANNOTATION] = ",".join(parts)
    annotations[mt.PUBOPTS_ANNOTATION] = public.annotation()
    media_type = mt.LayerType(kind.compression, True).media_type()
    return Descriptor(media_type, digest, size, annotations, {k: v for k, v in desc.extra.items() if k != "urls"})


def _chunks(reader: VerifiedReader, encryptor: LayerEncryptor) -> Iterator[bytes]:
    while data := reader.read(CHUNK):
        yield encryptor.update(data)
    reader.drain()  # raises if the source blob is not what its descriptor says


def _copy(src: Layout, dst: Layout, desc: Descriptor) -> None:
    with src.open_blob(desc) as reader:
        digest, _ = dst.write_blob(iter(lambda: reader.read(CHUNK), b""))
        reader.drain()
    if digest != desc.digest:
        raise LayoutError(desc.digest, "digest", "copied blob changed digest")
