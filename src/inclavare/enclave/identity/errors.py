"""Errors of the enclave identity layer; all are :class:`~inclavare.errors.EnclaveError`.

    EnclaveError
    └── IdentityError              anything this package refuses
        ├── ManifestError          enclave manifest malformed, or the rootfs disagrees with it
        ├── SignatureError         signature file malformed, or it does not match
        ├── SigningServerError     the remote signing server failed or misbehaved
        ├── SealError              sealed blob malformed or cannot be unsealed
        └── HostKeyError           host secret / software-TEE key unusable

Every message is one line naming the file and the field (``enclave.manifest.toml:
isv_svn: must be an integer 0..65535``). Messages never carry key material or
plaintext: unsealing failures of any cryptographic kind are the single line
``cannot unseal: authentication failed`` so that the error is no oracle.
"""

from __future__ import annotations

from ...errors import EnclaveError, one_line


class IdentityError(EnclaveError):
    """Base of every error raised by :mod:`inclavare.enclave.identity`."""


class _Located(IdentityError):
    """An error with ``file: field: reason`` shape (like :class:`~inclavare.errors.SpecError`)."""

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        self.reason = reason
        where = f"{file}: {field}: " if field else f"{file}: "
        super().__init__(one_line(where + reason))


class ManifestError(_Located):
    """The manifest is malformed, or a trusted file / module differs from its pinned hash."""


class SignatureError(_Located):
    """The signature file is malformed, does not verify, or does not match the manifest."""


class SigningServerError(IdentityError):
    """The signing server could not be reached or answered something unusable."""


class SealError(_Located):
    """A sealed blob is malformed, or it cannot be unsealed by this enclave."""


class HostKeyError(_Located):
    """The per-host secret or the software-TEE key file is missing, unreadable or unsafe."""
