"""Turning pydantic's validation errors into InvalidInput that names each field."""

from __future__ import annotations

from pydantic import ValidationError

from edgeplane.errors import InvalidInput


def invalid_from_pydantic(exc: ValidationError, prefix: str = "") -> InvalidInput:
    errors = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        if prefix:
            loc.insert(0, prefix)
        field = ".".join(loc)
        # "Value error, " is how pydantic prefixes the message of our own validators' errors.
        errors.append({"field": field, "reason": err["msg"].removeprefix("Value error, ")})
    first = errors[0]
    message = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
    return InvalidInput(message, field=first["field"], errors=errors)
