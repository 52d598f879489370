"""Errors of the enclave pool manager and its client.

    InclavareError                  (inclavare.errors)
    └── EpmError                    `inclavare epm serve` cannot start: its configuration
        │                           (``epm.toml: grpc.uid: ...``), its socket, root or database
        ├── CacheError              a request the pools refuse; carries the gRPC status it maps to
        └── EpmUnavailable          the client: epm is not there, or did not answer in time

Requests fail with a gRPC status and one line (the original answered
InvalidArgument for an unknown pool and Internal for everything else; here
a missing entry is NOT_FOUND and a full cache RESOURCE_EXHAUSTED, so a
client can tell a miss from a fault). This module imports nothing but
:mod:`inclavare.errors`: the carrier's client (:mod:`.client`) uses it.
"""

from __future__ import annotations

from ..errors import InclavareError, one_line

INVALID_ARGUMENT = "INVALID_ARGUMENT"
NOT_FOUND = "NOT_FOUND"
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
INTERNAL = "INTERNAL"


class EpmError(InclavareError):
    """``where: reason``: a configuration file and key, the socket, the root directory."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(one_line(f"{where}: {reason}"))


class CacheError(EpmError):
    """A pool refused a request; `code` names the grpc.StatusCode it is answered with."""

    def __init__(self, code: str, where: str, reason: str) -> None:
        self.code = code
        super().__init__(where, reason)


class EpmUnavailable(EpmError):
    """The client could not reach epm, or the call failed (the carrier then builds without caches)."""
