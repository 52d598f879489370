"""Errors of the enclave layer, below :mod:`inclavare.errors`.

    PalError                      (inclavare.errors) a PAL library problem
    ├── PalLoadError              dlopen failed or the file is missing
    ├── PalSymbolMissing          a symbol the PAL's API version requires is not exported
    ├── PalVersionUnsupported     pal_get_version() is not 1, 2 or 3
    └── PalCallFailed             a PAL call returned an error code
    EnclaveError                  (inclavare.errors) configuration or runtime problems
    ├── EnclaveConfigError        a bad annotation / ENCLAVE_* variable (names it)
    ├── EnclaveUnavailable        the host lacks what the enclave type needs (no SGX device)
    ├── EnclaveRuntimeNotFound    enclave.runtime.path names no PAL file and no registered runtime
    ├── EnclaveNotSupported       this runtime does not offer the call (kill, local_report)
    ├── EnclaveStateError         a call out of order (create_process before init, after destroy)
    └── AgentProtocolError        a malformed frame or message on the agent socket

Every message is one line and starts with what failed, e.g.
``enclave runtime liberpal-x.so: pal_init failed: -22 (Invalid argument)``.
Python enclave runtimes raise the ``Enclave*`` classes too, so the
init-runelet handles C and Python runtimes alike.
"""

from __future__ import annotations

from ..errors import EnclaveError, PalError

# The two roots are re-exported: the runtimes raise them from here.
__all__ = [
    "AgentProtocolError",
    "EnclaveConfigError",
    "EnclaveError",
    "EnclaveNotSupported",
    "EnclaveRuntimeNotFound",
    "EnclaveStateError",
    "EnclaveUnavailable",
    "PalCallFailed",
    "PalError",
    "PalLoadError",
    "PalSymbolMissing",
    "PalVersionUnsupported",
]


class PalLoadError(PalError):
    """The PAL file is missing or dlopen(3) refused it."""


class PalSymbolMissing(PalError):
    def __init__(self, library: str, symbol: str, version: int) -> None:
        self.symbol = symbol
        self.version = version
        super().__init__(f"enclave runtime {library}: missing symbol {symbol}, required by pal api version {version}")


class PalVersionUnsupported(PalError):
    def __init__(self, library: str, version: int) -> None:
        self.version = version
        super().__init__(f"enclave runtime {library}: unsupported pal api version {version} (supported: 1 to 3)")


class PalCallFailed(PalError):
    """A PAL entry point returned failure; ``ret`` is its (negative errno) code."""

    def __init__(self, library: str, call: str, ret: int, text: str) -> None:
        self.call = call
        self.ret = ret
        super().__init__(f"enclave runtime {library}: {call} failed: {text}")


class EnclaveConfigError(EnclaveError):
    """An enclave setting is invalid; ``source`` is the annotation or env variable."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class EnclaveUnavailable(EnclaveError):
    """This host cannot run the requested enclave type."""


class EnclaveRuntimeNotFound(EnclaveError):
    """No PAL file and no registered Python runtime under that name."""


class EnclaveNotSupported(EnclaveError):
    """The runtime does not implement this optional call (check ``probe()`` first)."""


class EnclaveStateError(EnclaveError):
    """A runtime call made out of order."""


class AgentProtocolError(EnclaveError):
    """The peer on the agent socket sent something that is not the protocol."""
