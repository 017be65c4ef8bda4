"""RFC 7807 problem documents for every error, never a stack trace.

Every answer of 400 or more is ``application/problem+json`` with a ``type`` under
``https://edgeplane.dev/problems/``: errors of the product (``EdgeplaneError``), bodies that do
not parse (``malformed-body``, 400) or are not JSON (``unsupported-media-type``, 415), request
validation (``invalid-input``, 422), unknown paths (``not-found``) and methods
(``method-not-allowed``, 405, with ``Allow``), conflicts met in the database (``conflict``), a
database that cannot be reached or written now (``database-unavailable``, 503, with
``Retry-After``: a PostgreSQL failover under way, say) and anything unexpected (``internal``,
500, details in the server log only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgeplane.errors import EdgeplaneError
from edgeplane.store.db import unavailable

log = logging.getLogger("edgeplane.api")
PROBLEM = "application/problem+json"
PROBLEMS = "https://edgeplane.dev/problems/"
_REFUSES = "__edgeplane_refuses__"
DATABASE_RETRY_AFTER_S = 2
F = TypeVar("F", bound=Callable[..., Any])

# Problems of the HTTP layer itself (routing, body parsing), by status: (slug, title).
HTTP_PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("malformed-body", "Malformed request body"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-input", "Invalid input"),
    429: ("too-many-requests", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def problem_response(doc: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(doc, status_code=int(doc["status"]), media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def http_problem(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    slug, title = HTTP_PROBLEMS.get(status, ("http-error", "HTTP error"))
    return {"type": PROBLEMS + slug, "title": title, "status": status, "detail": detail, **extra}


def refuses(endpoint: F) -> F:
    """Mark a route's endpoint as one that only refuses (405) the methods it matches, so that
    ``allowed_methods`` does not count them."""
    setattr(endpoint, _REFUSES, True)
    return endpoint


def _route_table(app: FastAPI) -> list[Any]:
    """The app's routes, in the order they are matched, with included routers flattened.

    FastAPI 0.120+ keeps an included router as one ``_IncludedRouter`` entry of ``app.routes``
    and matches through it: ``iter_route_contexts`` yields its routes with their full paths."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten is not None else list(app.routes)


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods that some route of the app would answer at the request's path.

    A method is allowed when the first route that matches the path and the method (the one
    routing would choose) is not a route that only refuses. Starlette's own 405 names the
    methods of the first route matching the path only, and FastAPI makes one route per method
    and path."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path.removeprefix(root) or "/"  # as routing matches it
    matching = [
        route
        for route in _route_table(app)
        if (regex := getattr(route, "path_regex", None)) is not None and regex.match(path)
    ]
    candidates = set().union(*(getattr(route, "methods", None) or () for route in matching))
    allowed = []
    for method in sorted(candidates):
        chosen = next(r for r in matching if method in (getattr(r, "methods", None) or ()))
        if not getattr(getattr(chosen, "endpoint", None), _REFUSES, False):
            allowed.append(method)
    return allowed


def _not_json(body: Any) -> bool:
    return isinstance(body, bytes | bytearray)


def install(app: FastAPI) -> None:
    @app.exception_handler(EdgeplaneError)
    async def _edgeplane(_: Request, exc: EdgeplaneError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.status == 429 and "retry_after" in exc.extra:
            headers = {"Retry-After": str(exc.extra["retry_after"])}
        return problem_response(exc.problem(), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _not_json(exc.body):
            # FastAPI hands the raw bytes on when the content type is not JSON.
            kind = request.headers.get("content-type") or "none"
            return problem_response(
                http_problem(
                    415,
                    f"the body must be JSON (Content-Type: application/json), not {kind}",
                    field="body",
                )
            )
        errors = []
        malformed = None
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                ctx = err.get("ctx") or {}
                malformed = f"the body is not valid JSON: {ctx.get('error', 'parse error')}"
                break
            field = _field(err.get("loc", ()))
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "missing":
                msg = "is required"
            elif err.get("type") == "extra_forbidden":
                msg = "is not a known field"
            errors.append({"field": field, "reason": msg})
        if malformed is not None:
            return problem_response(
                {
                    "type": "https://edgeplane.dev/problems/malformed-body",
                    "title": "Malformed request body",
                    "status": 400,
                    "detail": malformed,
                    "field": "body",
                }
            )
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return problem_response(
            {
                "type": "https://edgeplane.dev/problems/invalid-input",
                "title": "Invalid input",
                "status": 422,
                "detail": detail,
                "field": errors[0]["field"] if errors else "body",
                "errors": errors,
            }
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        extra: dict[str, Any] = {}
        if status == 404 and detail == "Not Found":
            detail = f"no such path: {request.url.path}"
        elif status == 405:
            allow = allowed_methods(app, request)
            headers["Allow"] = ", ".join(allow)
            detail = f"{request.method} is not allowed here; allowed: {', '.join(allow)}"
        elif status == 400 and "parsing the body" in detail:
            # FastAPI's answer to a body that cannot even be decoded (not UTF-8, ...).
            detail = "the body is not valid JSON: it is not UTF-8 text"
            extra["field"] = "body"
        return problem_response(http_problem(status, detail, **extra), headers or None)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # The services check ids and references before writing; a constraint can still fail
        # when a concurrent request changed the same objects in between.
        log.warning("constraint violated on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            {
                "type": "https://edgeplane.dev/problems/conflict",
                "title": "Conflict",
                "status": 409,
                "detail": "the request conflicts with a change made at the same time "
                "(an object was created or deleted meanwhile); read the state and retry",
            }
        )

    # Registered for the errors themselves (not left to ``Exception``'s handler, which answers
    # and then re-raises the error to the server, which logs a second trace).
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not unavailable(exc):
            return _internal(request, exc)
        # One line: the driver's message names hosts and ports, never a password or the
        # statement's parameters.
        cause = getattr(exc, "orig", None) or exc
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, reason)
        return problem_response(
            {
                "type": PROBLEMS + "database-unavailable",
                "title": "Database unavailable",
                "status": 503,
                "detail": "the database cannot be reached or does not take writes now (a "
                "failover may be under way); retry in a few seconds",
            },
            {"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)


def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unexpected error on %s %s",
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return problem_response(
        {
            "type": "https://edgeplane.dev/problems/internal",
            "title": "Internal error",
            "status": 500,
            "detail": "an unexpected error happened; the server log has the details",
        }
    )
