"""A sealed directory: files encrypted at rest, readable only by one enclave identity.

Each file ``<name>`` is stored as ``<name>.sealed``, one :mod:`.sealing` blob
whose AAD is ``b"inclavare/sealed-dir/v1\\0" || name``: moving or renaming a
blob to another name makes it fail to unseal, so files cannot be swapped.
Writes are atomic (temporary file, fsync, rename) and 0600. The directory is
flat: names are single path components, and names starting with "." are
reserved for temporary files.

Runtimes expose it to a workload with :meth:`SealedDir.export_to` (decrypt
into a private tmpfs before start) and :meth:`SealedDir.import_from` (seal the
tmpfs contents back after exit), or file by file with read/write/list.

Not protected (see docs/enclave-identity.md): whole files can be deleted,
and an older sealed version of the same file can be put back (rollback);
nothing binds a blob to this directory rather than another sealed
directory of the same enclave.
"""

from __future__ import annotations

import builtins
import errno
import os
import stat

from ._files import write_atomic
from .errors import SealError
from .identity import EnclaveIdentity, Policy
from .sealing import HostSecret, seal, unseal

SUFFIX = ".sealed"
_AAD = b"inclavare/sealed-dir/v1\0"
_MAX_FILE = 1 << 30


class SealedDir:
    """Files of `path`, sealed to `identity` under `policy`."""

    def __init__(
        self, path: str, identity: EnclaveIdentity, policy: Policy, *, secret: HostSecret | None = None
    ) -> None:
        self.path = path
        self.identity = identity
        self.policy = policy
        self._secret = HostSecret.load_or_create() if secret is None else secret
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise SealError(path, "", f"cannot create sealed directory: {exc.strerror}") from None

    def list(self) -> list[str]:
        """Names of the sealed files, sorted."""
        try:
            entries = os.listdir(self.path)
        except OSError as exc:
            raise SealError(self.path, "", exc.strerror or "cannot list") from None
        names = [e[: -len(SUFFIX)] for e in entries if e.endswith(SUFFIX) and not e.startswith(".")]
        return sorted(n for n in names if n)

    def read(self, name: str) -> bytes:
        blob_path = self._blob_path(name)
        try:
            with open(blob_path, "rb") as f:
                blob = f.read(_MAX_FILE + 1)
        except OSError as exc:
            raise SealError(blob_path, "", exc.strerror or "cannot read") from None
        return unseal(self.identity, blob, _aad(name), policy=self.policy, secret=self._secret, source=blob_path)

    def read_all(self) -> dict[str, bytes]:
        return {name: self.read(name) for name in self.list()}

    def write(self, name: str, data: bytes) -> None:
        blob_path = self._blob_path(name)  # checks the name before it becomes AAD
        blob = seal(self.identity, self.policy, data, _aad(name), secret=self._secret)
        try:
            write_atomic(blob_path, blob, 0o600)
        except OSError as exc:
            raise SealError(blob_path, "", f"cannot write: {exc.strerror}") from None

    def remove(self, name: str) -> None:
        try:
            os.unlink(self._blob_path(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SealError(self._blob_path(name), "", f"cannot remove: {exc.strerror}") from None

    def export_to(self, dest: str) -> builtins.list[str]:
        """Write every file's plaintext into directory `dest` (0600); return the names."""
        contents = self.read_all()  # unseal everything first: fail before writing anything
        for name, data in contents.items():
            try:
                write_atomic(os.path.join(dest, name), data, 0o600)
            except OSError as exc:
                raise SealError(os.path.join(dest, name), "", f"cannot write: {exc.strerror}") from None
        return sorted(contents)

    def import_from(self, src: str) -> builtins.list[str]:
        """Seal every regular file directly in `src` (not hidden, not in subdirectories)."""
        names = []
        try:
            for entry in sorted(os.scandir(src), key=lambda e: e.name):
                if entry.name.startswith(".") or not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                    continue
                data = _read_regular(entry.path)
                if data is None:
                    continue  # replaced by a symlink or something else since the listing
                self.write(entry.name, data)
                names.append(entry.name)
        except OSError as exc:
            raise SealError(exc.filename or src, "", f"cannot import: {exc.strerror}") from None
        return names

    def _blob_path(self, name: str) -> str:
        check_name(name, self.path)
        return os.path.join(self.path, name + SUFFIX)


def _read_regular(path: str) -> bytes | None:
    """The content of `path` if it still is a regular file (never through a
    symlink swapped in after the directory was listed), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink now
            return None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read()


def check_name(name: str, where: str) -> None:
    try:
        size = len(os.fsencode(name))
    except UnicodeEncodeError:
        size = -1
    if not 0 < size <= 240 or name.startswith(".") or "/" in name or "\0" in name:
        raise SealError(where, "name", f"{name!r} is not a plain file name")


def _aad(name: str) -> bytes:
    return _AAD + os.fsencode(name)
