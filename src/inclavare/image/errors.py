"""Errors of the image tooling (unpack, encrypt, the key provider).

    InclavareError
    └── ImageError                 names the file (blob, layer, annotation) and field
        ├── LayoutError            the OCI layout, index, manifest or config is malformed
        ├── DigestMismatch         a blob's size or digest is not what its descriptor says
        ├── UnsafeArchive          a layer tries to escape the rootfs or holds a forbidden entry
        ├── KeyProviderError       the ocicrypt key provider protocol failed (either side)
        ├── KeyNotFound            a key store has no key under that resource path
        └── DecryptionError        a layer or a wrapped key did not authenticate

Messages are one line, ``<file>: <field>: <reason>``, in the style of
:class:`inclavare.errors.SpecError`; names taken from an image (tar entry
names, label keys) have their control characters escaped, so a hostile
image cannot break the line or forge another. Keys, layer keys and
plaintext never appear in them: callers pass names and digests, never key
material.
"""

from __future__ import annotations

from ..errors import InclavareError, one_line


class ImageError(InclavareError):
    """Base of the image errors; ``file`` and ``field`` locate the problem."""

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        self.reason = reason
        where = f"{file}: {field}: " if field else f"{file}: "
        super().__init__(one_line(where + reason))


class LayoutError(ImageError):
    """The image layout or one of its JSON documents is malformed."""


class DigestMismatch(ImageError):
    """A blob does not match the digest or size its descriptor promises."""


class UnsafeArchive(ImageError):
    """A layer entry would write outside the rootfs, or is not allowed here."""


class KeyProviderError(ImageError):
    """A key provider request or response is malformed, or the provider failed."""


class KeyNotFound(ImageError):
    """The key store holds nothing under the requested resource path."""


class DecryptionError(ImageError):
    """Authenticated decryption failed: wrong key, or tampered data."""
