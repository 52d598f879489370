"""Errors -> RFC 7807 problem documents (``application/problem+json``).

``{"type": "<prefix><Problem>", "title", "status", "detail"}``: ``type`` and
``detail`` are what trustee's ``ErrorInformation`` carries (kbs-types), so
its clients read ours; ``title`` and ``status`` are RFC 7807 §3.1 members.
The detail is :attr:`~inclavare.kbs.errors.KbsError.public_detail` — for
attestation failures one fixed sentence — and the full reason goes to the
server log. Unexpected exceptions become a bare 500.
"""

from __future__ import annotations

import json
import logging
import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ERROR_TYPE_PREFIX, AttestationFailed, KbsError, RateLimited

log = logging.getLogger("inclavare.kbs")
MEDIA_TYPE = "application/problem+json"
_HTTP_PROBLEMS = {404: ("InvalidRequestPath", "Not found"), 405: ("MethodNotAllowed", "Method not allowed")}


def problem_response(
    status: int, problem: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"type": ERROR_TYPE_PREFIX + problem, "title": title, "status": status, "detail": detail}
    return Response(json.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def for_error(exc: KbsError) -> Response:
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if exc.status >= 500:
        log.warning("%s: %s", exc.problem, exc)
    elif not isinstance(exc, AttestationFailed):  # refused attestations are logged, with their subject, by the service
        log.info("%s (%d): %s", exc.problem, exc.status, exc)
    return problem_response(exc.status, exc.problem, exc.title, exc.public_detail, headers)


async def kbs_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KbsError)
    return for_error(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    problem, title = _HTTP_PROBLEMS.get(exc.status_code, ("HttpError", "HTTP error"))
    detail = (
        f"{request.method} {request.url.path[:200]} is not a KBS endpoint"
        if exc.status_code == 404
        else str(exc.detail)
    )
    return problem_response(exc.status_code, problem, title, detail, dict(exc.headers or {}))


async def internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s: %s", request.method, request.url.path[:200], type(exc).__name__)
    return problem_response(500, "InternalError", "Internal error", "internal error")
