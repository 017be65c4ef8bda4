"""Projects, API tokens and audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from edgeplane.model.common import Input, Name, Output, Slug
from edgeplane.model.enums import Environment, Role


class ProjectCreate(Input):
    id: Slug
    name: Name | None = None


class Project(Output):
    id: str
    name: str
    created_at: datetime
    environments: list[Environment] = Field(default_factory=lambda: list(Environment))


class TokenCreate(Input):
    """An API token needs ``roles`` (one project at least); an edge or a metrics token has
    none."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["roles"], "properties": {"scope": {"const": "api"}}},
                {
                    "required": ["scope"],
                    "properties": {"scope": {"enum": ["edge", "metrics"]}},
                    "not": {"required": ["roles"]},
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

    @model_validator(mode="after")
    def _roles_by_scope(self) -> TokenCreate:
        given = "roles" in self.model_fields_set
        if self.scope != "api" and given:
            raise _roles_error(
                f"{self.scope}_roles", f"an {self.scope} token has no roles; leave roles out"
            )
        if self.scope == "api" and not given:
            raise _roles_error("missing", "is required: give at least one project role")
        return self


def _roles_error(kind: str, message: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "TokenCreate",
        [InitErrorDetails(type=PydanticCustomError(kind, message), loc=("roles",), input=None)],
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
