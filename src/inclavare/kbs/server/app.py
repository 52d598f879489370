"""The starlette application: routes only. Every decision is the service's (:mod:`inclavare.kbs.service`).

    POST   /kbs/v0/auth                                    Request -> Challenge + Set-Cookie kbs-session-id
    POST   /kbs/v0/attest                                  Attestation -> {"token": JWT}
    GET    /kbs/v0/resource/<repository>/<type>/<tag>      cookie or Bearer -> JWE   (Idempotency-Key optional)
    POST   /kbs/v0/resource/<repository>/<type>/<tag>      admin: set (body = the resource bytes)
    DELETE /kbs/v0/resource/<repository>/<type>/<tag>      admin: delete
    GET    /kbs/v0/resources                               admin: list paths in the admin's scopes
    GET|POST /kbs/v0/attestation-policy                    admin
    GET|POST|DELETE /kbs/v0/resource-policy                admin (DELETE takes ?scope=)
    GET|POST /kbs/v0/reference-value[/<name>]              admin; DELETE /<name>[?value=]; POST /<name>/expire
    GET|POST /kbs/v0/collateral[?kind=]                    admin: list, add (body = a collateral file)
    DELETE /kbs/v0/collateral/<id>                         admin
    GET    /kbs/v0/audit?since=&limit=                     admin
    GET    /metrics   /healthz

Service calls block (database, crypto, Rego), so they run in the worker
thread pool — except the three RCAR calls on SQLite in WAL mode
(:class:`InlineCalls`; a GET only where a built-in resource policy governs
the path: a tenant's own Rego runs in the pool, in its lane, so a slow one
cannot stall the loop every tenant shares; the attestation policy is the
operator's). Those block for little but their commit's wait
for the disk (storage/sqlite.py, group commit), and handing the whole call
to a thread cost more than the call (the loop and the pool contending for
the GIL: docs/kbs.md, "Throughput"). So they run on the event loop with
:data:`~inclavare.kbs.storage.sqlite.DEFERRED_SYNC` set, and the waits
for the disk they hand back run once per loop step, on the loop while the
disk is fast, else in one thread (:mod:`.inline`); the response is sent
after them, so an answer still never carries a write that could vanish.
The audit line and the counters of such a call are written before that
wait (after its commit): if the fsync then fails, the peer gets a 503 and
the log shows an outcome it never received. PostgreSQL calls wait on the
network: they stay in the pool, as do the admin API's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..admin import Admin
from ..errors import KbsError, PayloadTooLarge
from ..protocol.session import COOKIE_NAME
from ..ratelimit import RateLimiter, SharedLimiter, TokenBuckets
from ..service import KbsService
from .inline import InlineCalls, call
from .middleware import KbsMiddleware, client_address
from .problems import http_error, internal_error, kbs_error

PREFIX = "/kbs/v0"


class Endpoints:
    def __init__(self, service: KbsService, tls: bool) -> None:
        self.s = service
        self.tls = tls
        self.limit = service.deps.config.http.max_body
        self.trust_xff = service.deps.config.rate_limit.trust_forwarded_for
        self.inline = InlineCalls(bool(getattr(service.deps.storage, "defers_sync", False)))

    async def body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            raise PayloadTooLarge(f"body of {declared} bytes is over http.max_body ({self.limit})")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.limit:
                raise PayloadTooLarge(f"body is over http.max_body ({self.limit})")
            chunks.append(chunk)
        return b"".join(chunks)

    def source(self, request: Request) -> str:
        return client_address(request.scope, self.trust_xff)

    async def admin(self, request: Request) -> Admin:
        return await call(self.s.admin.authenticate, request.headers.get("authorization"))

    # -- RCAR ------------------------------------------------------------------
    async def auth(self, request: Request) -> Response:
        cookie, session, challenge = await self.inline(self.s.rcar.auth, await self.body(request))
        response = JSONResponse(challenge.to_json())
        expires = datetime.fromtimestamp(session.expires_at, UTC)
        response.set_cookie(
            COOKIE_NAME, cookie, expires=expires, path=PREFIX, httponly=True, secure=self.tls, samesite="strict"
        )
        return response

    async def attest(self, request: Request) -> Response:
        raw = await self.body(request)
        token, _ = await self.inline(self.s.rcar.attest, raw, request.cookies.get(COOKIE_NAME), self.source(request))
        return JSONResponse({"token": token})

    # -- resources ---------------------------------------------------------------
    async def resource(self, request: Request) -> Response:
        p = request.path_params
        parts = (p["repository"], p["type"], p["tag"])
        if request.method == "GET":
            inline = self.inline.enabled and self.s.resources.inline_ok(*parts)
            jwe = await (self.inline if inline else call)(
                self.s.resources.get,
                *parts,
                cookie=request.cookies.get(COOKIE_NAME),
                authorization=request.headers.get("authorization"),
                request_key=request.headers.get("idempotency-key"),
                source=self.source(request),
            )
            return JSONResponse(jwe)
        admin = await self.admin(request)
        if request.method == "DELETE":
            return JSONResponse(
                {"deleted": await call(self.s.admin.delete_resource, admin, parts, self.source(request))}
            )
        path = await call(self.s.admin.set_resource, admin, parts, await self.body(request), self.source(request))
        return JSONResponse({"path": path})

    async def resources(self, request: Request) -> Response:
        return JSONResponse(await call(self.s.admin.list_resources, await self.admin(request)))

    # -- policies -----------------------------------------------------------------
    async def attestation_policy(self, request: Request) -> Response:
        admin = await self.admin(request)
        if request.method == "GET":
            return JSONResponse(await call(self.s.admin.attestation_policies, admin))
        policy_id = await call(
            self.s.admin.set_attestation_policy, admin, await self.body(request), self.source(request)
        )
        return JSONResponse({"policy_id": policy_id})

    async def resource_policy(self, request: Request) -> Response:
        admin = await self.admin(request)
        if request.method == "GET":
            return JSONResponse(await call(self.s.admin.resource_policies, admin))
        if request.method == "DELETE":
            scope = request.query_params.get("scope", "*")
            return JSONResponse(
                {"deleted": await call(self.s.admin.delete_resource_policy, admin, scope, self.source(request))}
            )
        scope = await call(self.s.admin.set_resource_policy, admin, await self.body(request), self.source(request))
        return JSONResponse({"scope": scope})

    # -- reference values and audit ------------------------------------------------
    async def reference_values(self, request: Request) -> Response:
        admin = await self.admin(request)
        if request.method == "GET":
            return JSONResponse(await call(self.s.admin.list_reference_values, admin, None))
        return JSONResponse(
            await call(self.s.admin.add_reference_values, admin, await self.body(request), self.source(request))
        )

    async def reference_value(self, request: Request) -> Response:
        admin = await self.admin(request)
        name = request.path_params["name"]
        if request.method == "GET":
            return JSONResponse(await call(self.s.admin.list_reference_values, admin, name))
        value = request.query_params.get("value")
        count = await call(self.s.admin.delete_reference_values, admin, name, value, self.source(request))
        return JSONResponse({"deleted": count})

    async def expire(self, request: Request) -> Response:
        admin = await self.admin(request)
        name = request.path_params["name"]
        count = await call(
            self.s.admin.expire_reference_values, admin, name, await self.body(request), self.source(request)
        )
        return JSONResponse({"expired": count})

    async def collateral(self, request: Request) -> Response:
        admin = await self.admin(request)
        kind = request.query_params.get("kind")
        if request.method == "GET":
            return JSONResponse(await call(self.s.admin.list_collateral, admin, kind))
        if request.method == "DELETE":
            item = request.path_params.get("id", "")
            gone = await call(self.s.admin.delete_collateral, admin, item, self.source(request))
            return JSONResponse({"deleted": gone})
        body = await self.body(request)
        return JSONResponse(await call(self.s.admin.add_collateral, admin, body, kind, self.source(request)))

    async def audit(self, request: Request) -> Response:
        admin = await self.admin(request)
        since, limit = _int(request.query_params.get("since"), 0), _int(request.query_params.get("limit"), 100)
        return JSONResponse(await call(self.s.admin.audit_log, admin, since, limit))

    # -- operations -----------------------------------------------------------------
    async def metrics(self, request: Request) -> Response:
        data, media_type = self.s.deps.metrics.render()
        return Response(data, media_type=media_type)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")


def create_app(service: KbsService, *, tls: bool = False) -> Starlette:
    e = Endpoints(service, tls)
    routes = [
        Route(f"{PREFIX}/auth", e.auth, methods=["POST"]),
        Route(f"{PREFIX}/attest", e.attest, methods=["POST"]),
        Route(f"{PREFIX}/resource/{{repository}}/{{type}}/{{tag}}", e.resource, methods=["GET", "POST", "DELETE"]),
        Route(f"{PREFIX}/resources", e.resources, methods=["GET"]),
        Route(f"{PREFIX}/attestation-policy", e.attestation_policy, methods=["GET", "POST"]),
        Route(f"{PREFIX}/resource-policy", e.resource_policy, methods=["GET", "POST", "DELETE"]),
        Route(f"{PREFIX}/reference-value", e.reference_values, methods=["GET", "POST"]),
        Route(f"{PREFIX}/reference-value/{{name}}", e.reference_value, methods=["GET", "DELETE"]),
        Route(f"{PREFIX}/reference-value/{{name}}/expire", e.expire, methods=["POST"]),
        Route(f"{PREFIX}/collateral", e.collateral, methods=["GET", "POST"]),
        Route(f"{PREFIX}/collateral/{{id}}", e.collateral, methods=["DELETE"]),
        Route(f"{PREFIX}/audit", e.audit, methods=["GET"]),
        Route("/metrics", e.metrics, methods=["GET"]),
        Route("/healthz", e.healthz, methods=["GET"]),
    ]
    conf = service.deps.config.rate_limit
    return Starlette(
        routes=routes,
        middleware=[Middleware(KbsMiddleware, service.deps.metrics, _limiter(service), conf.trust_forwarded_for)],
        exception_handlers={KbsError: kbs_error, HTTPException: http_error, Exception: internal_error},
    )


def _limiter(service: KbsService) -> RateLimiter | SharedLimiter | None:
    conf = service.deps.config.rate_limit
    if not conf.enabled:
        return None
    if conf.shared:
        a, s = conf.per_address, conf.per_session
        return SharedLimiter(service.deps.storage, (a.rate, a.burst), (s.rate, s.burst))
    return RateLimiter(
        TokenBuckets(conf.per_address.rate, conf.per_address.burst, conf.max_clients),
        TokenBuckets(conf.per_session.rate, conf.per_session.burst, conf.max_clients),
    )


def _int(text: str | None, default: int) -> int:
    return int(text) if text is not None and text.isdigit() else default
