"""The broker's log lines: text for a terminal, or one JSON object per line for a collector.

``kbs serve --log-format json`` writes, per record::

    {"time": "2026-12-07T02:50:01.123Z", "level": "warning", "logger": "inclavare.kbs",
     "message": "attestation refused for session:3f2a... (tee software): no trusted host key: ...",
     "request_id": "9c1e0b7d4a6f2e81", "method": "POST", "route": "/kbs/v0/attest"}

``request_id``, ``method`` and ``route`` are there for records logged while
a ``/kbs/...`` request is being served (the id is also the response's
``X-Request-Id``). The route is the matched *template*
(``/kbs/v0/resource/{repository}/{type}/{tag}``), never the raw path, so
resource names stay out of the log as they stay out of ``/metrics``. What
the messages carry is what the text format carries: never resource bytes,
cookies, tokens or keys (tests/integration/test_kbs_serve_ops.py reads every
line of a served round trip). An exception's traceback is one ``exception``
member, so a record stays one line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

from .audit import rfc3339

# (request id, ASGI scope) of the request being served; anyio copies it into worker threads.
REQUEST: ContextVar[tuple[str, MutableMapping[str, Any]] | None] = ContextVar("inclavare_kbs_request", default=None)
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = REQUEST.get()
        if request is not None:
            request_id, scope = request
            doc["request_id"] = request_id
            doc["method"] = scope.get("method", "")
            route = getattr(scope.get("route"), "path", None)  # set once the router has matched
            if route is not None:
                doc["route"] = route
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"), default=str)


def configure(level: str, fmt: str) -> None:
    """Root logging for ``kbs serve``: ``fmt`` is ``text`` or ``json``, on stderr (journald takes it from there)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
