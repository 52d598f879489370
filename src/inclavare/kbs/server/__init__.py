"""The HTTP face of the broker: a starlette app (routes only) served by uvicorn.

- :mod:`.app`         routes -> service calls
- :mod:`.problems`    errors -> RFC 7807 problem documents
- :mod:`.middleware`  per-client rate limiting and Prometheus metrics for ``/kbs/...``
- :mod:`.serve`       uvicorn, TLS optional, a pre-bound socket and a ready file
"""

from __future__ import annotations

from .app import create_app
from .serve import serve

__all__ = ["create_app", "serve"]
