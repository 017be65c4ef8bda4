"""Infrastructure as code over REST: plan and apply requests, their results, drift."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from edgeplane.model.common import Input, Output


class PlanRequest(Input):
    document: dict[str, Any] = Field(
        description="the file resolved for one environment (variables and overlays applied, "
        "references carrying their value); its `project`, when given, must be the request's"
    )
    source: dict[str, Any] | None = Field(
        None,
        description="the file as written (variables, environments, references without values), "
        "kept with the apply for `promote`",
    )
    environment: str | None = Field(None, max_length=63, description="the environment resolved")
    prune: bool = Field(False, description="delete the objects of the file's sections it lacks")


class ApplyRequest(PlanRequest):
    state: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="a saved plan's `state`: the apply is refused (409) if the live state moved",
    )
    lock_timeout_s: float = Field(
        0, ge=0, le=600, description="how long to wait for another apply of the project"
    )


class FieldChange(Output):
    path: str
    before: Any = None
    after: Any = None


class PlannedChange(Output):
    section: str
    kind: str
    key: str
    action: str = Field(description="create, update, replace or delete")
    fields: list[FieldChange]
    warnings: list[str]


class CostChange(Output):
    currency: str
    monthly_before: float
    monthly_after: float
    monthly_change: float
    by_service: dict[str, float]


class PlanResult(Output):
    project: str
    applied: bool
    revision: int = Field(description="the revision planned on, or the one the apply committed")
    state: str = Field(description="the live state's digest the plan was made on")
    summary: dict[str, int]
    changes: list[PlannedChange]
    warnings: list[str]
    unmanaged: dict[str, int] = Field(
        description="per section, the live objects the file leaves alone (not in it, no prune)"
    )
    cost: CostChange | None = None


class DriftedObject(Output):
    section: str
    kind: str
    key: str
    change: str = Field(description="changed, deleted or added since the apply")
    fields: list[FieldChange]
    changed_by: list[dict[str, Any]] = Field(description="the audit events since the apply")


class DriftReport(Output):
    project: str
    applied: dict[str, Any] | None = Field(description="the newest apply, none: never applied")
    drifted: list[DriftedObject]


class AppliedFile(Output):
    id: int
    project: str
    revision: int
    applied_at: str
    actor: str
    environment: str | None
    summary: dict[str, Any]
    document: dict[str, Any]
    source: dict[str, Any] | None
