"""Errors of containerd-shim-rune-v2, below :mod:`inclavare.errors`.

    InclavareError                 (inclavare.errors)
    └── ShimError                  an RPC's failure, with the gRPC code containerd maps it by
        ├── NotFound               no such container or process (errdefs.ErrNotFound)
        ├── AlreadyExists          a container or exec id in use (errdefs.ErrAlreadyExists)
        ├── FailedPrecondition     not in this state: start a stopped task (errdefs.ErrFailedPrecondition)
        ├── InvalidArgument        a malformed request: bad options, an unknown stdio scheme
        ├── Unimplemented          an RPC the shim does not offer (Checkpoint)
        ├── RuntimeFailed          rune exited non-zero; the message is its last error line
        └── TtrpcProtocolError     a malformed ttrpc frame: the connection is dropped

containerd turns the code back into its errdefs class (errdefs.FromGRPC) and
shows the message, so every message is one line that says what failed:
``OCI runtime create failed: config.json: process.args: must be a non-empty array``.
The codes are grpc-go's (google.golang.org/grpc/codes), which ttrpc reuses.
"""

from __future__ import annotations

from ..errors import InclavareError, one_line

# google.golang.org/grpc/codes
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS = 0, 1, 2, 3, 4, 5, 6
PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE = 7, 8, 9, 10, 11
UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 12, 13, 14


class ShimError(InclavareError):
    """A failure an RPC reports to containerd: ``code`` is the gRPC status code."""

    code = UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class NotFound(ShimError):
    code = NOT_FOUND


class AlreadyExists(ShimError):
    code = ALREADY_EXISTS


class FailedPrecondition(ShimError):
    code = FAILED_PRECONDITION


class InvalidArgument(ShimError):
    code = INVALID_ARGUMENT


class Unimplemented(ShimError):
    code = UNIMPLEMENTED


class RuntimeFailed(ShimError):
    """rune failed; the message is "<what> failed: <rune's last error line>" as the runc shim words it."""


class TtrpcProtocolError(ShimError):
    """The peer sent what is not ttrpc: a frame cut short, a connection closed mid-frame."""

    code = INTERNAL
