"""Scaling groups: a load balancer's backends made and removed by a provider driver, on the
metrics of the monitoring series (``edgeplane.scaling``).

A group names its load balancer, its driver and the driver's template, its size bounds
(``min_size`` / ``max_size``, and ``desired`` as it stands), the policies it scales on (target
tracking and step), how it keeps from flapping (stabilisation windows, a cooldown, a
tolerance) and a schedule of known peaks (a floor raised from a cron time for a duration).
"""

from __future__ import annotations

import re
import shlex
import string
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from edgeplane.model.common import (
    Capacity,
    Float,
    Input,
    Int,
    MultilineText,
    Name,
    ObjectId,
    Output,
    Slug,
    Text,
    patch_model,
)

DRIVERS = ("local", "cloud")
Driver = Literal["local", "cloud"]
METRICS = ("requests_per_second", "cpu_percent", "upstream_latency_ms")
ScalingMetric = Literal["requests_per_second", "cpu_percent", "upstream_latency_ms"]
METRIC_UNITS = {
    "requests_per_second": "requests/s per instance",
    "cpu_percent": "% CPU per instance (mean)",
    "upstream_latency_ms": "ms, p95 of the load balancer's answers",
}
MAX_SIZE = 100
PLACEHOLDERS = ("port", "host", "name")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CRED_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]{0,127}|file:/[^\x00-\x1f\x7f]{1,1000})$")


def placeholders(text: str) -> set[str]:
    """The ``{name}`` placeholders of a template string; raises ValueError naming a bad one."""
    names = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{exc} (write a literal brace as {{{{ or }}}})") from None
    for _lit, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conv:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}}: use {known}")
        names.add(name)
    return names


def fill(text: str, **values: Any) -> str:
    return text.format(**{p: values.get(p, "") for p in PLACEHOLDERS})


class LocalTemplate(Input):
    """An origin process on the control plane's machine: ``command`` (split as a shell would,
    never run by one) with ``{port}`` (the port the driver chose for the instance), ``{host}``
    and ``{name}`` filled in, likewise in ``env``."""

    command: Text = Field(
        min_length=1, max_length=4000, examples=["edgeplane demo-origin --port {port}"]
    )
    env: dict[str, Text] = Field(default_factory=dict, max_length=100)
    cwd: Text | None = Field(None, max_length=1000, description="an absolute directory")
    host: Literal["127.0.0.1", "::1"] = "127.0.0.1"
    stop_grace_s: Float = Field(10.0, ge=0, le=600, description="SIGTERM, then SIGKILL after")

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise PydanticCustomError(
                "command", "cannot be split into words: {e}", {"e": str(exc)}
            ) from None
        if not argv:
            raise PydanticCustomError("command", "is empty")
        for word in argv:
            try:
                placeholders(word)
            except ValueError as exc:
                raise PydanticCustomError("placeholder", str(exc)) from None
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ENV_NAME.match(name):
                raise PydanticCustomError(
                    "env", "'{n}' is not an environment variable name", {"n": name}
                )
            try:
                placeholders(text)
            except ValueError as exc:
                raise PydanticCustomError(
                    "placeholder", "{n}: {e}", {"n": name, "e": str(exc)}
                ) from None
        return value

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise PydanticCustomError("cwd", "must be an absolute path")
        return value

    @model_validator(mode="after")
    def _port_placeholder(self) -> LocalTemplate:
        used = set().union(*(placeholders(w) for w in shlex.split(self.command)))
        used |= set().union(*(placeholders(v) for v in self.env.values()))
        if "port" not in used:
            raise PydanticCustomError(
                "port_placeholder",
                "the command (or env) must contain the {p} placeholder: each instance "
                "listens on a port of its own",
                {"p": "{port}"},
            )
        return self


class CloudTemplate(Input):
    """A machine of a cloud, through Apache Libcloud's compute drivers (``provider``: a
    Libcloud provider name such as ``gce``, ``ec2``, ``azure_arm``, ``digital_ocean``;
    ``dummy`` is Libcloud's in-memory provider). Credentials are references, resolved by the
    control plane when it calls the cloud and never stored: ``env:NAME`` or ``file:/path``."""

    provider: Text = Field(min_length=1, max_length=64, examples=["gce"])
    credentials: dict[str, Text] = Field(
        default_factory=dict,
        max_length=20,
        description="the driver's secret arguments (key, secret, ...) as env:NAME or file:/path",
        examples=[{"key": "env:GCE_SERVICE_ACCOUNT", "secret": "file:/etc/edgeplane/gce.json"}],
    )
    options: dict[str, Text | Int | bool] = Field(
        default_factory=dict,
        max_length=20,
        description="the driver's other arguments (region, project, datacenter, ...)",
    )
    image: Text = Field(min_length=1, max_length=500)
    size: Text = Field(min_length=1, max_length=200)
    location: Text | None = Field(None, max_length=200)
    port: Int = Field(ge=1, le=65535, description="the port the instance serves on")
    address: Literal["public", "private"] = "public"
    user_data: MultilineText | None = Field(
        None, max_length=16384, description="a script or cloud-init file; {port}, {name} filled in"
    )

    @field_validator("credentials")
    @classmethod
    def _refs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, ref in value.items():
            if not _CRED_REF.match(ref):
                raise PydanticCustomError(
                    "credential_ref",
                    "{n}: a reference, env:NAME or file:/path (never the secret itself)",
                    {"n": name},
                )
        return value


class TargetTracking(Input):
    """Keep ``metric`` near ``target``: the size is ``ceil(size * value / target)``, unless
    the ratio is within the group's tolerance."""

    type: Literal["target_tracking"] = "target_tracking"
    metric: ScalingMetric
    target: Float = Field(gt=0, le=1_000_000)


class Step(Input):
    above: Float | None = Field(None, description="applies when the metric is above this")
    below: Float | None = Field(None, description="applies when the metric is below this")
    change: Int = Field(ge=-MAX_SIZE, le=MAX_SIZE, description="instances to add (or remove)")

    @model_validator(mode="after")
    def _one_bound(self) -> Step:
        if (self.above is None) == (self.below is None):
            raise PydanticCustomError("step", "give exactly one of above or below")
        if self.change == 0:
            raise PydanticCustomError("step", "change must not be 0")
        return self


class StepPolicy(Input):
    """Add or remove instances by how far the metric is past a bound: of the steps that
    apply, the one with the largest change (in its direction) wins."""

    type: Literal["step"] = "step"
    metric: ScalingMetric
    steps: list[Step] = Field(min_length=1, max_length=10)


Policy = Annotated[TargetTracking | StepPolicy, Field(discriminator="type")]


def _default_policy() -> TargetTracking | StepPolicy:
    return TargetTracking(metric="requests_per_second", target=50)


class ScheduledFloor(Input):
    """A known peak: from each time ``cron`` names (five fields, in ``timezone``) for
    ``duration_minutes``, the group holds at least ``min_size`` instances."""

    cron: Text = Field(min_length=1, max_length=200, examples=["0 9 * * 1-5"])
    duration_minutes: Int = Field(ge=1, le=7 * 24 * 60)
    min_size: Int = Field(ge=0, le=MAX_SIZE)
    timezone: Text = Field("UTC", max_length=64)
    name: Name | None = None


class ScalingGroupCreate(Input):
    id: ObjectId | None = None
    name: Name | None = None
    load_balancer: ObjectId = Field(description="the load balancer whose backends it makes")
    driver: Text = Field("local", description="local (processes on this machine) or cloud")
    template: dict[str, Any] = Field(description="the driver's template (see the docs)")
    data_center: ObjectId = Field(description="where its instances are, counted in its capacity")
    instance_capacity: Capacity = Field(
        default_factory=lambda: Capacity(cpu=1, memory=1, storage=1),
        description="what one instance takes of the data center",
    )
    service_type: Slug | None = Field(
        "web",
        description="the service each instance offers in the inventory (what route_request "
        "looks for: web, api, ...); null: none",
    )
    min_size: Int = Field(1, ge=0, le=MAX_SIZE)
    max_size: Int = Field(4, ge=1, le=MAX_SIZE)
    desired: Int | None = Field(None, ge=0, le=MAX_SIZE, description="the size to start at")
    policies: list[Policy] = Field(
        default_factory=lambda: [_default_policy()],
        max_length=10,
    )
    tolerance: Float = Field(0.1, ge=0, le=1, description="no change within this ratio of a target")
    metric_window_s: Float = Field(30, ge=5, le=3600, description="metrics averaged over")
    scale_out_stabilization_s: Float = Field(0, ge=0, le=3600)
    scale_in_stabilization_s: Float = Field(300, ge=0, le=86400)
    cooldown_s: Float = Field(30, ge=0, le=3600, description="after an action, before the next")
    health_timeout_s: Float = Field(120, ge=5, le=3600, description="to become healthy")
    drain_s: Float = Field(10, ge=0, le=3600, description="draining before an instance goes")
    max_failures: Int = Field(3, ge=1, le=100, description="failed launches in a row, then stop")
    schedule: list[ScheduledFloor] = Field(default_factory=list, max_length=20)

    @field_validator("driver")
    @classmethod
    def _driver(cls, value: str) -> str:
        if value not in DRIVERS:
            raise PydanticCustomError(
                "driver", "unknown driver '{v}': one of {d}", {"v": value, "d": ", ".join(DRIVERS)}
            )
        return value


ScalingGroupPatch = patch_model(ScalingGroupCreate)

InstanceStateName = Literal[
    "provisioning",  # the driver was asked
    "starting",  # running, not yet in the load balancer
    "registered",  # in the load balancer, waiting for the edge's checks
    "serving",  # healthy by the edge's checks
    "draining",  # no new requests; in-flight ones finish
    "deleting",  # out of the load balancer, the driver removing it
    "deleted",
    "failed",  # never became healthy, or exited; removed
]


class ScalingInstance(Output):
    id: str
    group: str
    server: str  # the inventory server it appears as
    address: str  # host:port, the load balancer's backend
    state: InstanceStateName
    detail: str = ""
    driver_ref: str = ""
    cpu_percent: float | None = None
    created_at: datetime
    serving_at: datetime | None = None
    ended_at: datetime | None = None


class ActionStep(Output):
    name: str  # triggered, provisioned, registered, healthy, drained, deregistered, deleted, done
    at: datetime
    detail: str = ""


class ScalingAction(Output):
    id: int
    group: str
    kind: Literal["scale_out", "scale_in", "replace"]
    trigger: str  # what started it: a metric and its value, the schedule, a change of size
    metric: str | None = None
    value: float | None = None
    from_size: int
    to_size: int
    instances: list[str]
    steps: list[ActionStep]
    status: Literal["running", "succeeded", "failed"]
    detail: str = ""
    started_at: datetime
    finished_at: datetime | None = None
    duration_s: float | None = None


class ScalingGroup(Output):
    id: str
    project: str
    name: str
    load_balancer: str
    driver: str
    template: dict[str, Any]
    data_center: str
    instance_capacity: Capacity
    service_type: str | None = "web"
    min_size: int
    max_size: int
    desired: int
    policies: list[TargetTracking | StepPolicy]
    tolerance: float
    metric_window_s: float
    scale_out_stabilization_s: float
    scale_in_stabilization_s: float
    cooldown_s: float
    health_timeout_s: float
    drain_s: float
    max_failures: int
    schedule: list[ScheduledFloor]
    # live
    status: Literal["steady", "scaling_out", "scaling_in", "stopped", "deleting"] = "steady"
    status_detail: str = ""
    size: int = 0  # instances serving
    floor: int = 0  # the minimum now (min_size, or a scheduled one)
    failures: int = 0  # failed launches in a row
    metrics: dict[str, float] = Field(default_factory=dict)  # each policy's metric, now
    instances: list[ScalingInstance] = Field(default_factory=list)
    last_action: ScalingAction | None = None
    created_at: datetime
    updated_at: datetime
