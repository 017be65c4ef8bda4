"""Disaster recovery that runs: a DR config's live state, its timeline, and its drills.

A DR config (``edgeplane.model.operations.DRConfig``) names a primary and a backup data
center. Its **state** says which side takes the traffic of the load balancers whose backends
are servers of those data centers (``active``) and where it is in its cycle (``status``:
``normal``, ``failover_pending``, ``failed_over``, ``failback_pending``, ``drill``). Each
failover and its failback is an **episode** of **events** (detected, pending, confirmed,
forced, switched, served, recovered, failback_pending, failback, cancelled; a drill's
episode: drill, switched, served, restored). A
**drill** takes the primary out on purpose, follows spec 004's recovery procedure step by
step and measures the real RTO and RPO against the config's targets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from edgeplane.model.common import Input, Name, Output

Side = Literal["primary", "backup"]
Status = Literal["normal", "failover_pending", "failed_over", "failback_pending", "drill"]
Health = Literal["up", "down", "unknown"]
DrillStatus = Literal["queued", "running", "passed", "failed", "error"]
STEPS: tuple[str, ...] = (
    "alert_assessment",
    "notification",
    "impact_analysis",
    "recovery_initiation",
    "service_restoration",
    "verification",
    "documentation",
)
"""Spec 004's system recovery procedure, the steps of every drill in order."""


class SwitchRequest(Input):
    """``POST .../failover`` and ``.../failback``: why (kept in the timeline and the audit)."""

    reason: Name = Field(description="why, for the timeline and the audit")


class PrimaryHealth(Output):
    """The primary data center's health as the monitor last saw it."""

    state: Health
    since: datetime | None = None  # when it became so
    reason: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class DREvent(Output):
    id: int
    dr_id: str
    episode: str | None
    kind: str
    at: datetime
    actor: str
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)


class DrillStep(Output):
    step: str  # one of STEPS
    started_at: datetime | None = None
    ended_at: datetime | None = None
    seconds: float | None = None
    ok: bool | None = None  # None: not reached (the drill stopped before)
    detail: dict[str, Any] = Field(default_factory=dict)


class Drill(Output):
    id: str
    project: str
    dr_id: str
    trigger: Literal["manual", "schedule"] | str
    actor: str
    status: DrillStatus | str
    started_at: datetime
    finished_at: datetime | None = None
    steps: list[DrillStep] = Field(default_factory=list)
    rto_target_s: float
    rpo_target_s: float
    rto_s: float | None = None  # recovery initiation -> traffic served by the backup
    rpo_s: float | None = None  # the data the backup side lacks (None: unknown)
    rto_ok: bool | None = None
    rpo_ok: bool | None = None
    message: str = ""
    report: dict[str, Any] = Field(default_factory=dict)


class DRStatus(Output):
    """Where a DR config stands: which side serves, the primary's health, the open episode
    and the last drill."""

    id: str
    project: str
    name: str
    primary_dc: str
    backup_dc: str
    active: Side
    active_dc: str
    status: Status | str
    since: datetime | None = None
    failover_mode: str
    failback_mode: str
    rto: float  # minutes
    rpo: float  # minutes
    primary_health: PrimaryHealth
    manual: bool = False  # the open failover was forced: no automatic failback
    episode: str | None = None
    episode_events: list[DREvent] = Field(default_factory=list)  # oldest first
    awaiting_revision: int | None = None  # switched, not yet applied by every live node
    last_drill: Drill | None = None
    next_drill_due: datetime | None = None
