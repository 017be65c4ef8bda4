"""``ScalingService``: scaling groups, their manual actions, history and instances."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from edgeplane.model.common import Page
from edgeplane.model.scaling import (
    CloudTemplate,
    LocalTemplate,
    ScalingAction,
    ScalingGroup,
    ScalingInstance,
    ScheduledFloor,
    StepPolicy,
    TargetTracking,
)
from edgeplane.sdk.service import ProjectService

BASE = "/api/v1/infrastructure/scaling-groups"


def _plain(value: Any) -> Any:
    """A request value: models whole (a policy keeps its ``type``), lists of them likewise."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class ScalingService(ProjectService):
    """Scaling groups, embedded or against a control plane (``EDGEPLANE_URL``), in
    ``project_id`` given here (default: the client's project, else ``default``).

    A group's instances are made by its driver from its template (``LocalTemplate``,
    ``CloudTemplate``) and follow its policies (``TargetTracking``, ``StepPolicy``) and
    schedule (``ScheduledFloor``); the models are in ``edgeplane.model.scaling``.
    """

    def _path(self, group_id: str, tail: str = "") -> str:
        return f"{BASE}/{quote(group_id, safe='')}{tail}"

    async def create_group(
        self,
        load_balancer: str,
        data_center: str,
        template: LocalTemplate | CloudTemplate | dict[str, Any],
        *,
        group_id: str | None = None,
        driver: str | None = None,
        policies: Sequence[TargetTracking | StepPolicy | dict[str, Any]] | None = None,
        schedule: Sequence[ScheduledFloor | dict[str, Any]] | None = None,
        **options: Any,
    ) -> ScalingGroup:
        """A group backing ``load_balancer``: its instances start at once (``min_size``, or
        ``desired``). ``driver`` defaults to the template's (cloud for a ``CloudTemplate``);
        without ``policies`` the API's default applies (requests_per_second target 50).
        Options: name, min_size, max_size, desired, tolerance, metric_window_s,
        scale_out_stabilization_s, scale_in_stabilization_s, cooldown_s, health_timeout_s,
        drain_s, max_failures, instance_capacity."""
        if driver is None and isinstance(template, CloudTemplate):
            driver = "cloud"
        body: dict[str, Any] = {
            "load_balancer": load_balancer,
            "data_center": data_center,
            "template": _plain(template),
            **{k: _plain(v) for k, v in options.items()},
        }
        extra = {"id": group_id, "driver": driver, "policies": policies, "schedule": schedule}
        body |= {k: _plain(v) for k, v in extra.items() if v is not None}
        return ScalingGroup.model_validate(await self._call("POST", BASE, body=body))

    async def get_group(self, group_id: str) -> ScalingGroup:
        """The group, its instances, its metrics now and its last action."""
        return ScalingGroup.model_validate(await self._call("GET", self._path(group_id)))

    async def list_groups(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[ScalingGroup]:
        doc = await self._call("GET", BASE, cursor=cursor, limit=limit)
        return Page[ScalingGroup].model_validate(doc)

    async def update_group(self, group_id: str, **fields: Any) -> ScalingGroup:
        """A merge patch: the fields given change (``policies`` and ``schedule`` are replaced
        whole, the template merged unless the driver changes); ``desired`` is a manual
        scaling action."""
        body = {k: _plain(v) for k, v in fields.items()}
        doc = await self._call("PATCH", self._path(group_id), body=body)
        return ScalingGroup.model_validate(doc)

    async def set_desired(self, group_id: str, n: int) -> ScalingGroup:
        """Set the size now (within the bounds): a manual scaling action."""
        return await self.update_group(group_id, desired=n)

    async def resume(self, group_id: str) -> ScalingGroup:
        """A group that stopped after failed launches tries again (``Conflict`` if it did
        not stop)."""
        doc = await self._call("POST", self._path(group_id, "/resume"))
        return ScalingGroup.model_validate(doc)

    async def delete_group(self, group_id: str) -> ScalingGroup | None:
        """Delete a group: None when it went at once (it had no instances), else the group,
        ``deleting`` while it drains and removes its instances."""
        doc = await self._call("DELETE", self._path(group_id))
        return None if doc is None else ScalingGroup.model_validate(doc)

    async def actions(
        self, group_id: str, limit: int | None = None, *, cursor: str | None = None
    ) -> Page[ScalingAction]:
        """The group's scaling actions with their steps and timings, newest first."""
        doc = await self._call("GET", self._path(group_id, "/actions"), cursor=cursor, limit=limit)
        return Page[ScalingAction].model_validate(doc)

    async def instances(self, group_id: str, ended: bool = False) -> list[ScalingInstance]:
        """The group's live instances, oldest first (with ``ended``, those deleted or failed
        too)."""
        doc = await self._call("GET", self._path(group_id, "/instances"), ended=ended)
        return TypeAdapter(list[ScalingInstance]).validate_python(doc)
