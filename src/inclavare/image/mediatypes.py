"""Layer media types and the ocicrypt annotation names.

A layer media type is a base type plus ``+`` suffixes (OCI image-spec
media-types.md and layer.md): ``application/vnd.oci.image.layer.v1.tar``,
optionally ``+gzip`` or ``+zstd``, and ocicrypt appends ``+encrypted``
(ocicrypt spec/spec.go: ``MediaTypeLayerEnc``, ``MediaTypeLayerGzipEnc``,
``MediaTypeLayerZstdEnc``). Docker's schema-2 layer types map onto the same
compressions. Non-distributable ("foreign") layers are accepted on read, as
image-spec still requires of consumers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LayoutError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
_DOCKER = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "",
}

# ocicrypt's annotations (ocicrypt encryption.go; keywrap/*/GetAnnotationID).
ANNOTATION_PREFIX = "org.opencontainers.image.enc."
KEYS_PREFIX = "org.opencontainers.image.enc.keys."
PROVIDER_PREFIX = "org.opencontainers.image.enc.keys.provider."
JWE_ANNOTATION = "org.opencontainers.image.enc.keys.jwe"
PUBOPTS_ANNOTATION = "org.opencontainers.image.enc.pubopts"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class LayerType:
    """What a layer media type says: its compression and whether it is encrypted."""

    compression: str  # "", "gzip" or "zstd"
    encrypted: bool

    def media_type(self) -> str:
        """The OCI media type for this combination (ocicrypt's names when encrypted)."""
        base = LAYER_TAR + (f"+{self.compression}" if self.compression else "")
        return base + ("+encrypted" if self.encrypted else "")


def parse_layer(media_type: str, where: str = "manifest") -> LayerType:
    """Classify a layer media type, or raise naming it."""
    if media_type in _DOCKER:
        return LayerType(_DOCKER[media_type], False)
    encrypted = media_type.endswith("+encrypted")
    rest = media_type.removesuffix("+encrypted")
    for base in (LAYER_TAR, _NONDIST):
        if rest == base:
            return LayerType("", encrypted)
        if rest.startswith(base + "+"):
            comp = rest[len(base) + 1 :]
            if comp in ("gzip", "zstd"):
                return LayerType(comp, encrypted)
    raise LayoutError(where, "layers[].mediaType", f"unsupported layer media type {media_type!r}")
