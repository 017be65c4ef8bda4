"""Projects, API tokens and audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from edgeplane.model import scopes as sc
from edgeplane.model.common import Input, Int, Name, Output, Slug, Text
from edgeplane.model.enums import Environment, Role

MAX_TTL_S = 5 * 366 * 86400  # a token lives at most about five years
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_s(text: str) -> int:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` (or plain seconds) -> seconds; ValueError
    with the reason otherwise."""
    raw = text.strip().lower()
    unit = DURATION_UNITS.get(raw[-1:]) if raw else None
    number = raw[:-1] if unit is not None else raw
    if not number.isdigit():
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 12h, 30d or 2w")
    return int(number) * (unit or 1)


MAX_GRACE_S = 7 * 86400  # the old secret of a rotated token works at most a week more


def _scope(text: str) -> str:
    try:
        return str(sc.parse(text))
    except ValueError as exc:
        raise PydanticCustomError("scope", str(exc)) from None


ScopeText = Annotated[
    str,
    AfterValidator(_scope),
    Field(
        description="KIND:ACTION, e.g. dns_records:write, load_balancers:read, cdn:purge, *:read",
        examples=["dns_records:write"],
        json_schema_extra={"enum": sc.every_scope()},
    ),
]
Scopes = Annotated[
    list[ScopeText] | None,
    Field(
        max_length=64,
        description="what the token may touch beyond its roles (none: its roles alone); "
        "a call needs both its role and a scope",
    ),
]


class Expiry(Input):
    """``expires_at`` or ``ttl_s`` (seconds from now): when a token stops working."""

    expires_at: datetime | None = Field(None, description="when the token stops working")
    ttl_s: Int | None = Field(
        None, ge=60, le=MAX_TTL_S, description="seconds from now until the token stops working"
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> Expiry:
        if self.expires_at is not None and self.ttl_s is not None:
            raise _field_error("ttl_s", "expiry", "give expires_at or ttl_s, not both")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise _field_error("expires_at", "expiry", "needs a time zone (e.g. Z)")
        return self


class ProjectCreate(Input):
    id: Slug
    name: Name | None = None


class Project(Output):
    id: str
    name: str
    created_at: datetime
    environments: list[Environment] = Field(default_factory=lambda: list(Environment))


class TokenCreate(Expiry):
    """An API token needs ``roles`` (one project at least); an edge or a metrics token has
    none."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["roles"], "properties": {"scope": {"const": "api"}}},
                {
                    "required": ["scope"],
                    "properties": {"scope": {"enum": ["edge", "metrics"]}},
                    "not": {"anyOf": [{"required": ["roles"]}, {"required": ["scopes"]}]},
                },
            ]
        }
    )

    name: Name
    roles: dict[Slug, Role] = Field(
        default_factory=dict,
        min_length=1,
        description='project -> role, e.g. {"default": "editor"}; required for an api token',
    )
    scope: Literal["api", "edge", "metrics"] = Field(
        "api",
        description="api: the REST API by roles; edge: the edge protocol only (no roles); "
        "metrics: scraping /metrics of the control plane only (no roles)",
    )
    scopes: Scopes = None

    @model_validator(mode="after")
    def _roles_by_scope(self) -> TokenCreate:
        given = "roles" in self.model_fields_set
        if self.scope != "api" and given:
            raise _roles_error(
                f"{self.scope}_roles", f"an {self.scope} token has no roles; leave roles out"
            )
        if self.scope == "api" and not given:
            raise _roles_error("missing", "is required: give at least one project role")
        if self.scope != "api" and self.scopes is not None:
            raise _field_error(
                "scopes", "scopes", f"an {self.scope} token has no scopes; leave scopes out"
            )
        return self


def _roles_error(kind: str, message: str) -> ValidationError:
    return _field_error("roles", kind, message)


def _field_error(field: str, kind: str, message: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "TokenCreate",
        [InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=None)],
    )


class Token(Output):
    id: str
    name: str
    prefix: str = Field(description="the first characters of the secret, to recognise it")
    roles: dict[str, Role]
    scope: Literal["api", "edge", "metrics"] = "api"
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    scopes: list[str] | None = Field(None, description="none: the roles alone decide")
    expires_at: datetime | None = None
    rotated_at: datetime | None = None
    previous_valid_until: datetime | None = Field(
        None, description="the secret before the last rotation works until then"
    )
    service_account: str | None = Field(None, description="the service account owning it")


class TokenRotate(Input):
    grace_s: Int = Field(
        0,
        ge=0,
        le=MAX_GRACE_S,
        description="seconds during which the old secret still works (0: it stops at once)",
    )


class TokenIssued(Token):
    token: str = Field(description="the secret; shown once, stored only as a hash")


class AuditEvent(Output):
    id: int
    revision: int
    at: datetime
    actor: str
    project: str | None
    action: str
    kind: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class ServiceAccountCreate(Input):
    """A non-human principal (a CI job, a deploy bot) that owns tokens: its roles and scopes
    bound every token it owns; disabling it stops them all."""

    id: Slug
    description: Text = Field("", max_length=500)
    roles: dict[Slug, Role] = Field(
        min_length=1, description='project -> role, e.g. {"default": "editor"}'
    )
    scopes: Scopes = None


class ServiceAccount(Output):
    id: str
    description: str
    roles: dict[str, Role]
    scopes: list[str] | None
    created_at: datetime
    created_by: str
    disabled_at: datetime | None = None
    tokens: int = Field(0, description="tokens it owns, not revoked")


class ServiceAccountTokenCreate(Expiry):
    name: Name
    scopes: Scopes = Field(
        None, description="narrower than the account's (none: the account's scopes alone)"
    )
