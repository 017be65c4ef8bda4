"""Projects, API tokens and audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

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
    name: Name
    roles: dict[Slug, Role] = Field(
        default_factory=dict, description='project -> role, e.g. {"default": "editor"}'
    )
    scope: Literal["api", "edge"] = Field(
        "api", description="api: the REST API by roles; edge: the edge protocol only (no roles)"
    )


class Token(Output):
    id: str
    name: str
    prefix: str = Field(description="the first characters of the secret, to recognise it")
    roles: dict[str, Role]
    scope: Literal["api", "edge"] = "api"
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
