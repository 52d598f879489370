"""Where wrapping keys live: KBS resource paths and the :class:`KeyStore` interface.

A key is named by a KBS resource URI, ``kbs://[<host>[:<port>]]/<repository>/<type>/<tag>``
(CoCo guest-components' resource URI; trustee serves it at
``/kbs/v0/resource/<repository>/<type>/<tag>``). ``kbs:///default/key/1``
means "the configured broker". The key-encryption key that wraps layer keys
is such a resource, and so is the private key of a JWE recipient.

:class:`KeyStore` is all the image code asks of a key source. Two kinds exist:

- :class:`FileKeyStore`: keys as files under ``<root>/<repository>/<type>/<tag>``,
  trustee's local-filesystem resource layout. This is the image *owner's*
  side (wrapping needs only the KEK) and the test fixture. Nothing is
  attested here: do not point an in-TEE unpack at it in production.
- :class:`KbsKeyStore`: the TEE's side. It attests to the KBS (RCAR, through
  :class:`inclavare.kbs.client.KbsClient` and an evidence provider) and GETs
  the resource, which the broker releases only to an enclave its policies
  accept; the resource travels as a JWE to the TEE's ephemeral key.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import KeyNotFound, KeyProviderError

if TYPE_CHECKING:
    from ..kbs.client import KbsClient

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_KEY_FILE = 64 << 10


@dataclass(frozen=True)
class ResourcePath:
    """``kbs://<authority>/<repository>/<type>/<tag>``, checked segment by segment."""

    repository: str
    type: str
    tag: str
    authority: str = ""

    @classmethod
    def parse(cls, uri: str, where: str = "kid") -> ResourcePath:
        if not uri.startswith("kbs://"):
            raise KeyProviderError(where, "", f"not a kbs:// resource URI: {uri[:80]!r}")
        authority, slash, path = uri[len("kbs://") :].partition("/")
        parts = path.split("/")
        if not slash or len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts):
            raise KeyProviderError(where, "", f"{uri[:80]!r} is not kbs://[host]/<repository>/<type>/<tag>")
        if authority and not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?", authority):
            raise KeyProviderError(where, "", f"bad broker address in {uri[:80]!r}")
        return cls(parts[0], parts[1], parts[2], authority)

    @property
    def path(self) -> str:
        """The broker-relative path, ``<repository>/<type>/<tag>``."""
        return f"{self.repository}/{self.type}/{self.tag}"

    def __str__(self) -> str:
        return f"kbs://{self.authority}/{self.path}"


class KeyStore(Protocol):
    """A source of key material by resource path."""

    def get(self, resource: ResourcePath) -> bytes:
        """The resource's bytes; :class:`KeyNotFound` when there is none."""
        ...


class FileKeyStore:
    """Keys as files under `root` (``<root>/<repository>/<type>/<tag>``); see the module notes."""

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise KeyProviderError(root, "", "key directory does not exist")
        self.root = root

    def get(self, resource: ResourcePath) -> bytes:
        # Segments are checked by ResourcePath (no "/", no leading "."), and
        # each component is opened without following symlinks.
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name, flags in (
                (resource.repository, os.O_DIRECTORY),
                (resource.type, os.O_DIRECTORY),
                (resource.tag, 0),
            ):
                child = _step(fd, name, flags, resource)
                os.close(fd)
                fd = child
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise KeyNotFound(str(resource), "", "not a regular file in the key store")
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read(MAX_KEY_FILE + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_KEY_FILE:
            raise KeyNotFound(str(resource), "", f"key file larger than {MAX_KEY_FILE} bytes")
        return data

    def put(self, resource: ResourcePath, data: bytes) -> None:
        """Store a key (mode 0600), as an owner provisioning the store would."""
        directory = os.path.join(self.root, resource.repository, resource.type)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, resource.tag)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


class KbsKeyStore:
    """Keys released by a KBS to this attested TEE; see the module notes."""

    def __init__(self, client: KbsClient) -> None:
        from urllib.parse import urlsplit

        self.client = client
        self._brokers = {urlsplit(u).netloc for u in client.urls}

    def get(self, resource: ResourcePath) -> bytes:
        from ..kbs.client import KbsClientError

        if resource.authority and resource.authority not in self._brokers:
            raise KeyProviderError(str(resource), "", f"names broker {resource.authority}, not the configured KBS")
        try:
            return self.client.get_resource(resource.path)
        except KbsClientError as exc:
            if exc.status == 404:
                raise KeyNotFound(str(resource), "", "the KBS has no such resource") from None
            raise


def _step(dirfd: int, name: str, flags: int, resource: ResourcePath) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | flags, dir_fd=dirfd)
    except OSError as exc:
        raise KeyNotFound(str(resource), "", f"no such key in the store ({exc.strerror})") from None
