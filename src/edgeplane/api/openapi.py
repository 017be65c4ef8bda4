"""The OpenAPI document, told truthfully: the error answers of every operation.

FastAPI documents the success answers of each route and a 422 of its own shape. What the API
really answers on errors is an RFC 7807 problem document (``edgeplane.api.problems``), so the
generated document is completed here, once, for every operation:

- ``400`` (a body that is not JSON), ``415`` (a body of another content type) and ``422`` for
  operations that take a JSON body; ``422`` for those that take parameters;
- ``401`` and ``403`` for operations that need a bearer token;
- ``404`` for operations with a path parameter (the object may not exist) or scoped to a
  project (``?project=`` may name one that does not exist);
- ``409`` for operations that write (a duplicate, an object in use, capacity, or a change
  made at the same time);
- what a route declares itself in ``responses`` (413, 502, 503, ...), with the problem schema.

String path and query parameters without a pattern of their own get ``Text``'s (no control
characters), which ``edgeplane.api.deps.check_parameters`` enforces for every operation.

Two things pydantic writes are put in JSON Schema's terms (``_json_schema``): bounds of a
number that is optional (``Int | None = Field(ge=1)``) come out under pydantic's own names
(``ge``, ``le``, ``gt``, ``lt``), which validators ignore, and the keys of a map with a rule of
their own (``dict[Text, ...]``) come out as ``patternProperties``, which lets any other key
through: they become ``propertyNames``.

Every error answer is ``application/problem+json`` with the one ``Problem`` schema, and
FastAPI's ``HTTPValidationError`` is gone.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from edgeplane.api.problems import PROBLEM
from edgeplane.model.common import TEXT_PATTERN

PROBLEM_REF = "#/components/schemas/Problem"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 7807 problem document: what went wrong, and the field at fault.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "pattern": "^https://edgeplane\\.dev/problems/[a-z0-9-]+$",
            "description": "the kind of problem, e.g. https://edgeplane.dev/problems/not-found",
        },
        "title": {"type": "string", "description": "the kind of problem, for people"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what went wrong in this request"},
        "field": {
            "type": "string",
            "description": "the input field at fault, dotted (capacity.cpu, records.0.ttl); "
            "'body' for the body as a whole",
        },
        "errors": {
            "type": "array",
            "description": "invalid input: every field at fault, with the reason",
            "items": {"$ref": "#/components/schemas/ProblemFieldError"},
        },
        "reason": {
            "type": "string",
            "description": "upstream failures: how the upstream service failed",
        },
    },
}

PROBLEM_FIELD_ERROR: dict[str, Any] = {
    "title": "ProblemFieldError",
    "type": "object",
    "required": ["field", "reason"],
    "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
    "additionalProperties": False,
}

DESCRIPTIONS = {
    "400": "Malformed request body (not JSON, or not UTF-8)",
    "401": "No token, or an unknown or revoked one",
    "403": "The token's role does not allow this",
    "404": "Not found (the object, or the project named by ?project=)",
    "405": "Method not allowed",
    "409": "Conflict with the current state (duplicate, in use, capacity, a concurrent change)",
    "413": "The body is larger than the limit",
    "415": "The body is not JSON (Content-Type: application/json)",
    "422": "Invalid input: each field at fault with the reason",
    "502": "An upstream service Edgeplane asked failed",
    "503": "Unavailable",
}

WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
HTTP_METHODS = frozenset({"get", "head", "options", "trace", *WRITE_METHODS})


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}}


def _error_statuses(operation: dict[str, Any], method: str) -> set[str]:
    parameters = operation.get("parameters", [])
    statuses: set[str] = set()
    if "requestBody" in operation:
        json_body = "application/json" in operation["requestBody"].get("content", {})
        statuses.update({"400", "415", "422"} if json_body else {"422"})
    if parameters:
        statuses.add("422")
    if operation.get("security"):
        statuses.update({"401", "403"})
        if method in WRITE_METHODS:
            statuses.add("409")
    if any(p.get("in") == "path" for p in parameters) or any(
        p.get("in") == "query" and p.get("name") == "project" for p in parameters
    ):
        statuses.add("404")
    return statuses


def _text_parameter(schema: dict[str, Any]) -> None:
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string" and not {"pattern", "enum", "format"} & set(branch):
            branch["pattern"] = TEXT_PATTERN


# pydantic's names of numeric bounds -> JSON Schema's.
_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _json_schema(node: Any) -> None:
    """Put what pydantic leaves in its own terms in JSON Schema's, everywhere under ``node``
    (in place): see the module docstring."""
    if isinstance(node, list):
        for item in node:
            _json_schema(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") in ("integer", "number"):
        for name, keyword in _BOUNDS.items():
            if isinstance(node.get(name), int | float) and not isinstance(node[name], bool):
                node.setdefault(keyword, node.pop(name))
    keys = node.get("patternProperties")
    if (
        isinstance(keys, dict)
        and len(keys) == 1
        and "additionalProperties" not in node
        and "properties" not in node
    ):
        ((pattern, values),) = keys.items()
        del node["patternProperties"]
        node["propertyNames"] = {"pattern": pattern}
        node["additionalProperties"] = values
    for key, value in node.items():
        if key not in ("properties", "patternProperties") or not isinstance(value, dict):
            _json_schema(value)
        else:  # names of properties, not schema keywords
            for sub in value.values():
                _json_schema(sub)


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers of every operation to ``document`` (in place) and return it."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _json_schema(document)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ProblemFieldError"] = PROBLEM_FIELD_ERROR
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for parameter in operation.get("parameters", []):
                _text_parameter(parameter.get("schema", {}))
            responses: dict[str, Any] = operation.setdefault("responses", {})
            declared = {s for s in responses if s.isdigit() and int(s) >= 400}
            for status in sorted(_error_statuses(operation, method) | declared):
                description = responses.get(status, {}).get("description")
                if status == "422" or not description:
                    description = DESCRIPTIONS.get(status, "Error")
                responses[status] = _problem_response(description)
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at ``app.openapi_url`` (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            app.openapi_schema = complete(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
