"""The exception tree.

Every error a user can cause is an ``EdgeplaneError``; each carries a user-safe ``message``, an
HTTP ``status`` and, for input errors, the ``field`` at fault. The API turns them into RFC 7807
problem documents; the CLI prints the message; the SDK raises them as they are.

    EdgeplaneError
    ├── InvalidInput          422  a field's value is wrong (field + reason)
    ├── NotFound              404  an object does not exist
    ├── Conflict              409  the request clashes with the state (duplicate id, in use)
    │   └── CapacityExceeded  409  an allocation would exceed the capacity available
    ├── Unauthenticated       401  no or unknown token
    ├── Forbidden             403  the token's role does not allow the action
    ├── PayloadTooLarge       413  a body is larger than its limit (an upload)
    ├── TooManyRequests       429  too many failed sign-ins: wait and retry
    ├── UpstreamFailed        502  a service Edgeplane depends on refused or failed (an ACME CA)
    └── RemoteError           the control plane answered with an error the SDK does not know
"""

from __future__ import annotations

from typing import Any


class EdgeplaneError(Exception):
    status = 500
    type_slug = "internal"
    title = "Internal error"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": f"https://edgeplane.dev/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.message,
        }
        if self.field is not None:
            doc["field"] = self.field
        doc.update(self.extra)
        return doc


class InvalidInput(EdgeplaneError):
    status = 422
    type_slug = "invalid-input"
    title = "Invalid input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        if errors is None:
            errors = [{"field": field or "", "reason": message}]
        super().__init__(message, field=field, errors=errors)
        self.errors = errors

    @classmethod
    def at(cls, field: str, reason: str) -> InvalidInput:
        return cls(f"{field}: {reason}", field=field)


class NotFound(EdgeplaneError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(EdgeplaneError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class CapacityExceeded(Conflict):
    type_slug = "capacity-exceeded"
    title = "Capacity exceeded"


class Unauthenticated(EdgeplaneError):
    status = 401
    type_slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(EdgeplaneError):
    status = 403
    type_slug = "forbidden"
    title = "Forbidden"


class TooManyRequests(EdgeplaneError):
    status = 429
    type_slug = "too-many-requests"
    title = "Too many requests"


class PayloadTooLarge(EdgeplaneError):
    status = 413
    type_slug = "payload-too-large"
    title = "Payload too large"


class UpstreamFailed(EdgeplaneError):
    """A service Edgeplane asked on the user's behalf failed (the ACME CA): ``reason`` says
    how (``unreachable``, ``rejected``, ``invalid``, ``timeout``, ...)."""

    status = 502
    type_slug = "upstream-failed"
    title = "Upstream service failed"


class RemoteError(EdgeplaneError):
    type_slug = "remote"
    title = "Control plane error"

    def __init__(self, message: str, *, status: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status = status


_BY_SLUG: dict[str, type[EdgeplaneError]] = {
    c.type_slug: c
    for c in (
        InvalidInput,
        NotFound,
        Conflict,
        CapacityExceeded,
        Unauthenticated,
        Forbidden,
        PayloadTooLarge,
        UpstreamFailed,
    )
}


def from_problem(doc: dict[str, Any], status: int) -> EdgeplaneError:
    """Rebuild the error a control plane reported, so remote and embedded raise alike."""
    slug = str(doc.get("type", "")).rsplit("/", 1)[-1]
    message = str(doc.get("detail") or doc.get("title") or f"HTTP {status}")
    field = doc.get("field")
    cls = _BY_SLUG.get(slug)
    if cls is InvalidInput:
        errors = doc.get("errors")
        return InvalidInput(
            message, field=field, errors=errors if isinstance(errors, list) else None
        )
    if cls is not None:
        return cls(message, field=field)
    return RemoteError(message, status=status, field=field)
