"""RFC 7807 problem documents for every error, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgeplane.errors import EdgeplaneError

log = logging.getLogger("edgeplane.api")
PROBLEM = "application/problem+json"


def problem_response(doc: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(doc, status_code=int(doc["status"]), media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(EdgeplaneError)
    async def _edgeplane(_: Request, exc: EdgeplaneError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc.problem(), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed"}
        return problem_response(
            {
                "type": "about:blank",
                "title": titles.get(exc.status_code, "HTTP error"),
                "status": exc.status_code,
                "detail": str(exc.detail),
            }
        )

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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(
            {
                "type": "https://edgeplane.dev/problems/internal",
                "title": "Internal error",
                "status": 500,
                "detail": "an unexpected error happened; the server log has the details",
            }
        )
