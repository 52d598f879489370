"""The carrier library's log lines, in the shim's log as the shim writes its own.

The carrier logs with :mod:`logging` (``inclavare.carrier``): what it
signed — the enclave's measurement and signer, which docs/kubernetes.md
tells operators to read from the shim's log — and a warning when it signs
with the node's own key. The shim configures no :mod:`logging`: its
:class:`~inclavare.log.Logger` writes logrus lines to stderr, the log fifo
containerd copies into its own log (daemon.py). Left alone, Python's
last-resort handler would drop the info lines and write the warnings
without time or level. Imported on the first Create, with the carrier.
"""

from __future__ import annotations

import logging
import threading

from ..log import Logger

CARRIER_LOGGER = "inclavare.carrier"
_lock = threading.Lock()  # Creates run in parallel threads: one handler, added once


class ShimLogHandler(logging.Handler):
    """Writes each record as one logrus line (inclavare.log.Logger) to stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.out = Logger(None, "text", debug=True)  # every level: the logger's own level filters

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            level = "error"
        elif record.levelno >= logging.WARNING:
            level = "warning"
        else:
            level = "info" if record.levelno >= logging.INFO else "debug"
        self.out.log(level, self.format(record))


def log_to_shim() -> None:
    """Route the carrier's logger to the shim's log at level info (containerd's shims' default)."""
    logger = logging.getLogger(CARRIER_LOGGER)
    with _lock:
        if any(isinstance(h, ShimLogHandler) for h in logger.handlers):
            return
        logger.addHandler(ShimLogHandler())
        logger.setLevel(logging.INFO)
        # still propagated: the shim's root logger has no handler, and with this one
        # found Python no longer falls back to its last-resort handler
