"""Errors of the carriers, the signing server and the node installer.

    EnclaveError                    (inclavare.errors)
    └── CarrierError                a bundle a carrier cannot turn into an enclave, or a carrier
        │                           that cannot run here (``config.json: process.args[0]: ...``)
        └── CarrierConfigError      /etc/inclavare-containers/config.toml, a token or key file
                                    (``config.toml: signature.ca_cert: ...``)
    InclavareError
    ├── SigningServiceError         the signing server cannot start (its key, TLS, token file)
    └── InstallError                `inclavare node install|uninstall` cannot do what it was asked

Signing itself fails with the identity layer's errors (``SigningServerError``
when the server refuses or misbehaves, ``SignatureError``, ``ManifestError``),
which already name the server or the file. Every message is one line; none
carries a token, a key or a signature.
"""

from __future__ import annotations

from ..errors import EnclaveError, InclavareError, one_line


class CarrierError(EnclaveError):
    """``file: field: reason`` about the bundle (or ``carrier NAME: reason``)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(one_line(f"{where}: {reason}"))


class CarrierConfigError(CarrierError):
    """The carrier configuration file (or a file it names) is unusable."""

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file = file
        self.field = field
        super().__init__(f"{file}: {field}" if field else file, reason)


class SigningServiceError(InclavareError):
    """The signing server's own configuration: key, certificates, token file, audit log."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(one_line(f"{where}: {reason}"))


class InstallError(InclavareError):
    """A node install or uninstall step failed (names the file)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(one_line(f"{where}: {reason}"))
