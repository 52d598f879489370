"""ASGI middleware for ``/kbs/...`` requests: rate limiting first, then metrics.

As trustee's ``prometheus_metrics_middleware``, only KBS protocol paths are
counted (``/metrics`` and ``/healthz`` would skew the data) and limited.
The route label is the matched route's *template*
(``/kbs/v0/resource/{repository}/{type}/{tag}``), never the raw path. A
limiter whose state is in the database (``rate_limit.shared``) is asked
from a worker thread, and a database it cannot reach answers 503 like any
other storage failure. Each request gets an id, answered as ``X-Request-Id``
and put on every log line written while it is served (:mod:`..logs`).
"""

from __future__ import annotations

import secrets
import time
from http.cookies import CookieError, SimpleCookie

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import KbsError, RateLimited
from ..logs import REQUEST
from ..metrics import KbsMetrics
from ..protocol.session import COOKIE_NAME, session_key
from ..ratelimit import RateLimiter, SharedLimiter
from .problems import for_error


def client_address(scope: Scope, trust_forwarded_for: bool) -> str:
    if trust_forwarded_for:
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                return value.decode("latin-1").split(",")[0].strip()[:64]
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def session_cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar = SimpleCookie(value.decode("latin-1"))
            except CookieError:
                return None
            morsel = jar.get(COOKIE_NAME)
            return morsel.value if morsel is not None else None
    return None


class KbsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: KbsMetrics,
        limiter: RateLimiter | SharedLimiter | None,
        trust_forwarded_for: bool,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.trust_forwarded_for = trust_forwarded_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/kbs/"):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        seen = {"status": 500, "bytes": 0}
        request_id = secrets.token_hex(8)
        context = REQUEST.set((request_id, scope))

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        self.metrics.active.inc()
        limited: _Limited | None = None
        try:
            try:
                limited = await self._limited(scope)
            except KbsError as exc:  # the shared limiter's database is unreachable: 503, as any storage failure
                await for_error(exc)(scope, receive, counting_send)
                return
            if limited is not None:
                self.metrics.rate_limited.labels(limited.detail_key).inc()
                await for_error(limited.error)(scope, receive, counting_send)
            else:
                await self.app(scope, receive, counting_send)
        finally:
            REQUEST.reset(context)
            self.metrics.active.dec()
            route = scope.get("route")
            template = getattr(route, "path", "unmatched" if limited is None else "rate-limited")
            self.metrics.observe(
                template,
                scope["method"],
                seen["status"],
                time.perf_counter() - start,
                _content_length(scope),
                seen["bytes"],
            )

    async def _limited(self, scope: Scope) -> _Limited | None:
        if self.limiter is None:
            return None
        cookie = session_cookie(scope)
        key = session_key(cookie) if cookie is not None else None
        address = client_address(scope, self.trust_forwarded_for)
        if self.limiter.blocking:
            hit = await run_in_threadpool(self.limiter.check, address, key)
        else:
            hit = self.limiter.check(address, key)
        if hit is None:
            return None
        which, wait = hit
        return _Limited(which, RateLimited(wait, which))


class _Limited:
    def __init__(self, detail_key: str, error: RateLimited) -> None:
        self.detail_key = detail_key
        self.error = error


def _content_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
