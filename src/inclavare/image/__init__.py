"""Container images for confidential containers: unpack, encrypt, and the key provider.

- :mod:`.layout`      OCI image layouts, descriptors, digest-verified blobs
- :mod:`.mediatypes`  layer media types and ocicrypt's annotation names
- :mod:`.layercrypt`  ocicrypt's AES_256_CTR_HMAC_SHA256 layer cipher and options
- :mod:`.keystore`    KBS resource paths and the KeyStore interface
- :mod:`.keywrap`     inclavare's key packet (A256GCM under a KBS key) and JWE recipients
- :mod:`.protocol`    ocicrypt's key provider protocol messages
- :mod:`.provider`    inclavare's key provider (``inclavare-keyprovider``)
- :mod:`.providers`   calling ``cmd`` key providers the way ocicrypt does
- :mod:`.rootfs`      in-root path resolution on directory fds
- :mod:`.tarstream`   a strict reader of layer tars (ustar, GNU, pax)
- :mod:`.extract`     applying layer tars safely, with OCI whiteouts
- :mod:`.bundle`      config.json from the image config (image-spec conversion.md)
- :mod:`.unpack`      layout -> rune bundle, decrypting through key providers
- :mod:`.encrypt`     ocicrypt-compatible layer encryption
- :mod:`.build`       packing layers into an image (samples, tests)

Design and formats: docs/encrypted-images.md.
"""

from __future__ import annotations

from .encrypt import encrypt
from .errors import (
    DecryptionError,
    DigestMismatch,
    ImageError,
    KeyNotFound,
    KeyProviderError,
    LayoutError,
    UnsafeArchive,
)
from .keystore import FileKeyStore, KbsKeyStore, KeyStore, ResourcePath
from .provider import KeyProvider
from .providers import ProviderCommand, Unwrapper, load_config
from .unpack import unpack

__all__ = [
    "DecryptionError",
    "DigestMismatch",
    "FileKeyStore",
    "ImageError",
    "KbsKeyStore",
    "KeyNotFound",
    "KeyProvider",
    "KeyProviderError",
    "KeyStore",
    "LayoutError",
    "ProviderCommand",
    "ResourcePath",
    "UnsafeArchive",
    "Unwrapper",
    "encrypt",
    "load_config",
    "unpack",
]
