"""The provider driver interface: what a scaling group needs of whatever makes its instances
(an origin process on this machine, a cloud machine).

A driver is small and stateless towards the control plane: it creates an instance from the
group's template, deletes one, lists the group's instances and tells one's state. Everything
the scaling flow decides (how many, which to drain, when an instance is healthy) lives in the
database and in ``edgeplane.scaling``; a driver only does what it is told, idempotently (a
delete of an instance that is gone succeeds; a create with a name that exists returns it).

Instances are named by the control plane (``InstanceSpec.name``, DNS-safe, unique within the
group); the driver keeps whatever handle it needs (a pid, a cloud node id) as ``ref``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

# pending: asked for, not running yet (a cloud machine booting)
# running: its process / machine runs (whether it serves is the edge's health checks' call)
# exited: it stopped on its own (``detail`` says how: an exit status, a cloud error state)
# missing: the driver knows nothing of it (deleted, or lost with its machine)
InstanceState = Literal["pending", "running", "exited", "missing"]


class DriverError(Exception):
    """A driver could not do what it was asked; the message is for people and holds no
    secret (credentials are never part of it)."""


@dataclass(frozen=True)
class InstanceSpec:
    group: str  # "<project>/<group id>": the instances of one group, whatever the project
    name: str  # unique in the group, DNS-safe: [a-z0-9-], at most 63 characters
    template: Mapping[str, Any]  # the group's template, validated for this driver


@dataclass(frozen=True)
class Instance:
    name: str
    ref: str  # the driver's handle: a pid, a cloud node id
    host: str  # where the edge reaches it
    port: int
    state: InstanceState
    detail: str = ""  # why it exited, the cloud's state name; the last lines of its output
    started_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Driver(Protocol):
    """One provider. ``kind`` is the name a group's ``driver`` field gives."""

    kind: str

    def create(self, spec: InstanceSpec) -> Instance:
        """Start an instance; returns once the provider accepted it (state ``pending`` or
        ``running``). Raises ``DriverError`` when it cannot (bad template, quota, refusal)."""
        ...

    def delete(self, group: str, name: str, grace_s: float = 10.0) -> None:
        """Stop and remove an instance: asked to stop, then forced after ``grace_s``.
        Succeeds when it is already gone."""
        ...

    def list(self, group: str) -> list[Instance]:
        """The group's instances the provider knows, in any state but ``missing``."""
        ...

    def get(self, group: str, name: str) -> Instance:
        """One instance's state now (``missing`` when the provider knows nothing of it)."""
        ...

    def cpu_percent(self, group: str, name: str) -> float | None:
        """The instance's CPU use since the previous call (percent of one core), or None when
        the provider cannot tell (clouds: the instance reports its own metrics)."""
        ...

    def memory_percent(self, group: str, name: str) -> float | None:
        """The instance's resident memory in percent of its machine's, or None."""
        ...
