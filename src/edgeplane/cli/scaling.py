"""``edgeplane scale group ...``: scaling groups, a load balancer's backends made and removed by
a provider driver on the metrics of the monitoring series.

Flags are adapters into ``ScalingGroupCreate`` (``edgeplane.model.scaling``): the API checks
the values and names the field at fault; the CLI only parses the shapes of its own flags
(``--step``, ``--schedule``, ``--capacity``) and names the flag when one is malformed.

- ``--target-rps/--target-cpu/--target-latency N``: a target tracking policy each.
- ``--step METRIC>VALUE=+N`` / ``METRIC<VALUE=-N``: steps, one step policy per metric.
- ``--schedule "CRON@DURATION=MIN"``: a floor of MIN instances from each time CRON names for
  DURATION (``90m``, ``2h``, ``1h30m`` or minutes), in ``--schedule-tz`` (default UTC).
- ``--command/--env/--cwd``: a local template; ``--template FILE``: a template from a YAML
  or JSON file (a cloud one, say), the three flags changing it.

On ``set`` only the options given change; a policy flag replaces the policies, ``--schedule``
the schedule, and ``--desired N`` is a manual scaling action.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc
from edgeplane.model.scaling import METRICS, ScalingGroupCreate

app = typer.Typer(help="Auto-scaling: scaling groups and their actions.")
group_app = typer.Typer(
    help="Scaling groups: a load balancer's backends started and stopped on its metrics."
)
app.add_typer(group_app, name="group")

SG_PATH = f"{rt.BASE}/scaling-groups"
TARGETS = {  # flag -> metric
    "--target-rps": "requests_per_second",
    "--target-cpu": "cpu_percent",
    "--target-latency": "upstream_latency_ms",
}
UNITS = {  # what a target of each metric is, in words
    "requests_per_second": "per instance",
    "cpu_percent": "% CPU per instance (mean)",
    "upstream_latency_ms": "ms (p95 of the load balancer's answers)",
}
_STEP = re.compile(
    r"^\s*(?P<metric>[a-z_]+)\s*(?P<op>[<>])\s*(?P<value>[-+]?(\d+\.?\d*|\.\d+))\s*"
    r"=\s*(?P<change>[-+]?\d+)\s*$"
)
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?$")


def default(field: str) -> str:
    """``(default 300)``: the model's default of a field, for the help."""
    return f"(default {output.fmt(ScalingGroupCreate.model_fields[field].default)})"


def _since(start: str, at: str) -> float:
    return (datetime.fromisoformat(at) - datetime.fromisoformat(start)).total_seconds()


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def steps_line(action: Doc) -> str:
    """``triggered +0.0s, provisioned +1.2s, ...``: each step after the action started."""
    start = action["started_at"]
    return ", ".join(f"{s['name']} +{_since(start, s['at']):.1f}s" for s in action["steps"])


def size_change(action: Doc) -> str:
    return f"{action['from_size']} → {action['to_size']}"


GROUP_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("LOAD BALANCER", "load_balancer"),
    ("DRIVER", "driver"),
    ("SERVING/DESIRED", lambda g: f"{g['size']}/{g['desired']}"),
    ("MIN-MAX", lambda g: f"{g['min_size']}-{g['max_size']}"),
    ("STATUS", "status"),
    ("POLICIES", lambda g: "; ".join(policy_words(p) for p in g["policies"]) or "-"),
]
INSTANCE_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("STATE", "state"),
    ("ADDRESS", lambda i: i["address"] or "-"),
    ("CPU %", lambda i: "-" if i.get("cpu_percent") is None else f"{i['cpu_percent']:.1f}"),
    ("SINCE", "created_at"),
    ("SERVING", "serving_at"),
]
ENDED_COLUMNS: list[Column] = [
    *INSTANCE_COLUMNS,
    ("ENDED", "ended_at"),
    ("DETAIL", lambda i: i["detail"] or "-"),
]
ACTION_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("STARTED", "started_at"),
    ("KIND", "kind"),
    ("TRIGGER", "trigger"),
    ("SIZE", size_change),
    ("STATUS", "status"),
    ("SECONDS", lambda a: _seconds(a.get("duration_s"))),
    ("STEPS", steps_line),
]

GroupId = Annotated[str, typer.Argument(metavar="ID", help="scaling group id")]
Lb = Annotated[str, typer.Option("--lb", help="the load balancer whose backends it makes")]
Dc = Annotated[str, typer.Option("--dc", help="the data center its instances count in")]
LbOpt = Annotated[str | None, typer.Option("--lb", help="the load balancer it scales")]
DcOpt = Annotated[str | None, typer.Option("--dc", help="the data center of its instances")]
Driver = Annotated[
    str | None,
    typer.Option("--driver", help="local (processes on this machine, the default) or cloud"),
]
Command = Annotated[
    str | None,
    typer.Option(
        "--command",
        help="local template: the command of an instance, with {port} (and {host}, {name}), "
        'e.g. "edgeplane demo-origin --port {port}"',
    ),
]
Env = Annotated[
    list[str] | None,
    typer.Option("--env", metavar="KEY=VALUE", help="local template: environment; repeatable"),
]
Cwd = Annotated[str | None, typer.Option("--cwd", help="local template: an absolute directory")]
TemplateFile = Annotated[
    Path | None,
    typer.Option(
        "--template",
        metavar="FILE",
        help="the driver's template from a YAML or JSON file (e.g. a cloud template)",
    ),
]
MinSize = Annotated[
    int | None, typer.Option("--min", help=f"fewest instances {default('min_size')}")
]
MaxSize = Annotated[int | None, typer.Option("--max", help=f"most instances {default('max_size')}")]
Desired = Annotated[
    int | None,
    typer.Option(
        "--desired", help="the size now (on create: to start at; on set: a manual action)"
    ),
]
TargetRps = Annotated[
    float | None,
    typer.Option("--target-rps", metavar="N", help="target tracking: requests/s per instance"),
]
TargetCpu = Annotated[
    float | None,
    typer.Option("--target-cpu", metavar="N", help="target tracking: mean CPU % per instance"),
]
TargetLatency = Annotated[
    float | None,
    typer.Option(
        "--target-latency", metavar="MS", help="target tracking: p95 upstream latency, ms"
    ),
]
Steps = Annotated[
    list[str] | None,
    typer.Option(
        "--step",
        metavar="METRIC>VALUE=+N",
        help=f"a step: METRIC>VALUE=+N or METRIC<VALUE=-N, METRIC one of {', '.join(METRICS)}; "
        "repeatable, grouped per metric into one step policy",
    ),
]
Tolerance = Annotated[
    float | None,
    typer.Option(
        "--tolerance", help=f"no change within this ratio of a target {default('tolerance')}"
    ),
]
MetricWindow = Annotated[
    float | None,
    typer.Option(
        "--metric-window", metavar="S", help=f"metrics averaged over {default('metric_window_s')}"
    ),
]
ScaleOutWindow = Annotated[
    float | None,
    typer.Option(
        "--scale-out-window",
        metavar="S",
        help=f"stabilisation before scaling out {default('scale_out_stabilization_s')}",
    ),
]
ScaleInWindow = Annotated[
    float | None,
    typer.Option(
        "--scale-in-window",
        metavar="S",
        help=f"stabilisation before scaling in {default('scale_in_stabilization_s')}",
    ),
]
Cooldown = Annotated[
    float | None,
    typer.Option(
        "--cooldown", metavar="S", help=f"after an action, before the next {default('cooldown_s')}"
    ),
]
HealthTimeout = Annotated[
    float | None,
    typer.Option(
        "--health-timeout",
        metavar="S",
        help=f"for an instance to become healthy {default('health_timeout_s')}",
    ),
]
Drain = Annotated[
    float | None,
    typer.Option(
        "--drain", metavar="S", help=f"draining before an instance goes {default('drain_s')}"
    ),
]
MaxFailures = Annotated[
    int | None,
    typer.Option(
        "--max-failures", help=f"failed launches in a row, then stop {default('max_failures')}"
    ),
]
CapacityOpt = Annotated[
    str | None,
    typer.Option(
        "--capacity",
        metavar="cpu=N,memory=GB,storage=GB",
        help="what one instance takes of the data center (default 1 of each)",
    ),
]
Schedule = Annotated[
    list[str] | None,
    typer.Option(
        "--schedule",
        metavar="CRON@DURATION=MIN",
        help="a floor of MIN instances for DURATION (90m, 2h, minutes) from each time CRON "
        'names, e.g. "0 9 * * 1-5@2h=3"; repeatable',
    ),
]
ScheduleTz = Annotated[
    str | None,
    typer.Option("--schedule-tz", metavar="TZ", help="the --schedule entries' time zone (UTC)"),
]
NoSchedule = Annotated[bool, typer.Option("--no-schedule", help="remove the schedule")]
NoPolicies = Annotated[
    bool, typer.Option("--no-policies", help="remove the policies (manual and schedule only)")
]


# Flags -> the model's fields --------------------------------------------------------------


def parse_step(text: str) -> tuple[str, Doc]:
    """``cpu_percent>80=+1`` -> (metric, step)."""
    m = _STEP.match(text)
    if m is None or m["metric"] not in METRICS:
        raise typer.BadParameter(
            f"{text!r} is not METRIC>VALUE=+N or METRIC<VALUE=-N with METRIC one of "
            f"{', '.join(METRICS)}",
            param_hint="--step",
        )
    bound = "above" if m["op"] == ">" else "below"
    return m["metric"], {bound: rt.parse_scalar(m["value"]), "change": int(m["change"])}


def policies(
    rps: float | None, cpu: float | None, latency: float | None, steps: list[str] | None
) -> list[Doc] | None:
    """The policies the flags give (targets first, then a step policy per metric in the
    order the metrics first appear), or None when no policy flag was given."""
    out: list[Doc] = [
        {"type": "target_tracking", "metric": TARGETS[flag], "target": value}
        for flag, value in (
            ("--target-rps", rps),
            ("--target-cpu", cpu),
            ("--target-latency", latency),
        )
        if value is not None
    ]
    per_metric: dict[str, list[Doc]] = {}
    for text in steps or ():
        metric, step = parse_step(text)
        per_metric.setdefault(metric, []).append(step)
    out += [{"type": "step", "metric": m, "steps": s} for m, s in per_metric.items()]
    return out or None


def minutes(text: str) -> int:
    """``90m``, ``2h``, ``1h30m`` or a number of minutes."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    m = _DURATION.match(value)
    if m is None or not (m["h"] or m["m"]):
        raise ValueError(value)
    return int(m["h"] or 0) * 60 + int(m["m"] or 0)


def parse_schedule(text: str, timezone: str | None) -> Doc:
    """``0 9 * * 1-5@2h=3`` -> a scheduled floor (split on the last '@')."""
    cron, sep, rest = text.rpartition("@")
    duration, eq, size = rest.partition("=")
    try:
        if not sep or not eq or not cron.strip():
            raise ValueError(text)
        entry: Doc = {
            "cron": cron.strip(),
            "duration_minutes": minutes(duration),
            "min_size": int(size.strip()),
        }
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not CRON@DURATION=MIN, DURATION as 90m, 2h or minutes "
            '(e.g. "0 9 * * 1-5@2h=3")',
            param_hint="--schedule",
        ) from None
    if timezone is not None:
        entry["timezone"] = timezone
    return entry


def capacity(text: str | None) -> Doc | None:
    """``cpu=1,memory=2`` -> the capacity of one instance."""
    if text is None:
        return None
    out: Doc = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        number = rt.parse_scalar(value)
        if not sep or not key.strip() or isinstance(number, str | bool):
            raise typer.BadParameter(
                f"{item!r} is not NAME=NUMBER (cpu=1,memory=1,storage=1)", param_hint="--capacity"
            )
        out[key.strip()] = number
    return out


def template(
    file: Path | None, command: str | None, env: list[str] | None, cwd: str | None
) -> Doc | None:
    """The template from ``--template FILE``, with ``--command/--env/--cwd`` set in it."""
    doc: Doc = rt.read_mapping(file, "command or provider", option="--template") if file else {}
    doc |= rt.compact(command=command, cwd=cwd)
    if env:
        doc["env"] = {**(doc.get("env") or {}), **rt.pairs(env, "--env")}
    return doc or None


def group_fields(
    *,
    name: str | None = None,
    lb: str | None = None,
    dc: str | None = None,
    driver: str | None = None,
    template_doc: Doc | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    desired: int | None = None,
    policy_docs: list[Doc] | None = None,
    tolerance: float | None = None,
    metric_window: float | None = None,
    scale_out_window: float | None = None,
    scale_in_window: float | None = None,
    cooldown: float | None = None,
    health_timeout: float | None = None,
    drain: float | None = None,
    max_failures: int | None = None,
    capacity_doc: Doc | None = None,
    schedule: list[str] | None = None,
    schedule_tz: str | None = None,
) -> Doc:
    """The fields of ``ScalingGroupCreate`` the options give."""
    if schedule_tz is not None and not schedule:
        raise typer.BadParameter(
            "applies to the --schedule entries given with it", param_hint="--schedule-tz"
        )
    return rt.compact(
        name=name,
        load_balancer=lb,
        data_center=dc,
        driver=driver,
        template=template_doc,
        min_size=min_size,
        max_size=max_size,
        desired=desired,
        policies=policy_docs,
        tolerance=tolerance,
        metric_window_s=metric_window,
        scale_out_stabilization_s=scale_out_window,
        scale_in_stabilization_s=scale_in_window,
        cooldown_s=cooldown,
        health_timeout_s=health_timeout,
        drain_s=drain,
        max_failures=max_failures,
        instance_capacity=capacity_doc,
        schedule=[parse_schedule(s, schedule_tz) for s in schedule] if schedule else None,
    )


# Rendering --------------------------------------------------------------------------------


def policy_words(policy: Doc) -> str:
    """``requests_per_second target 50 per instance``; ``cpu_percent steps: above 80 +1``."""
    metric = policy["metric"]
    if policy["type"] == "target_tracking":
        return f"{metric} target {output.fmt(policy['target'])} {UNITS.get(metric, '')}".strip()
    steps = ", ".join(
        f"{'above' if s.get('above') is not None else 'below'} "
        f"{output.fmt(s['above'] if s.get('above') is not None else s['below'])} "
        f"{s['change']:+d}"
        for s in policy["steps"]
    )
    return f"{metric} steps: {steps}"


def schedule_words(entry: Doc) -> str:
    hours, mins = divmod(int(entry["duration_minutes"]), 60)
    duration = (f"{hours}h" if hours else "") + (f"{mins}m" if mins or not hours else "")
    label = f"{entry['name']}: " if entry.get("name") else ""
    return (
        f"{label}at least {entry['min_size']} from '{entry['cron']}' for {duration} "
        f"({entry.get('timezone') or 'UTC'})"
    )


def template_words(doc: Doc) -> str:
    t = doc["template"]
    if doc["driver"] == "local":
        return f"local: {t.get('command')}"
    where = f" in {t['location']}" if t.get("location") else ""
    return f"{doc['driver']}: {t.get('provider')} {t.get('size')} {t.get('image')}{where}"


def action_line(action: Doc) -> str:
    took = action.get("duration_s")
    seconds = f", {took:.1f} s" if isinstance(took, int | float) else ""
    detail = f": {action['detail']}" if action.get("detail") else ""
    return (
        f"last action {action['id']}: {action['kind']} {size_change(action)} "
        f"({action['trigger']}), {action['status']}{seconds}{detail}"
    )


def render_group(doc: Doc) -> None:
    status = doc["status"] + (f": {doc['status_detail']}" if doc.get("status_detail") else "")
    metrics = doc.get("metrics") or {}
    shown = {
        "id": doc["id"],
        "name": doc["name"],
        "status": status,
        "size": f"{doc['size']} serving / {doc['desired']} desired",
        "floor": f"{doc['floor']}" + (" (scheduled)" if doc["floor"] > doc["min_size"] else ""),
        "bounds": f"min {doc['min_size']}, max {doc['max_size']}",
        "driver": template_words(doc),
        "load balancer": doc["load_balancer"],
        "data center": doc["data_center"],
        "instance capacity": doc["instance_capacity"],
        "policies": "; ".join(policy_words(p) for p in doc["policies"]) or "none (manual)",
        "schedule": "; ".join(schedule_words(e) for e in doc["schedule"]) or None,
        "metrics now": ", ".join(f"{k} {output.fmt(round(v, 2))}" for k, v in metrics.items())
        or "-",
        "stabilisation": (
            f"scale out {output.fmt(doc['scale_out_stabilization_s'])} s, "
            f"scale in {output.fmt(doc['scale_in_stabilization_s'])} s, "
            f"tolerance {output.fmt(doc['tolerance'])}"
        ),
        "cooldown": f"{output.fmt(doc['cooldown_s'])} s",
        "timings": (
            f"metrics over {output.fmt(doc['metric_window_s'])} s, healthy within "
            f"{output.fmt(doc['health_timeout_s'])} s, drain {output.fmt(doc['drain_s'])} s"
        ),
        "failures": f"{doc['failures']} of {doc['max_failures']} in a row",
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }
    style = {"steady": "green", "stopped": "red", "deleting": "yellow"}.get(doc["status"], "cyan")
    output.line(f"{doc['id']}: {status}", style)
    output.details(shown)
    if doc.get("instances"):
        output.blank()
        output.table(doc["instances"], INSTANCE_COLUMNS)
    else:
        output.note("no instances")
    if doc.get("last_action"):
        output.blank()
        output.line(action_line(doc["last_action"]))


def _path(group_id: str, tail: str = "") -> str:
    return f"{SG_PATH}/{quote(group_id, safe='')}{tail}"


# Commands ---------------------------------------------------------------------------------


@group_app.command("list")
def group_list(
    ctx: typer.Context,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """List scaling groups."""
    params = rt.compact(limit=limit, cursor=cursor)
    rt.listing(
        ctx,
        as_json,
        SG_PATH,
        GROUP_COLUMNS,
        title="scaling groups",
        params=params,
        all_pages=all_pages,
    )


@group_app.command("create")
def group_create(
    ctx: typer.Context,
    group_id: GroupId,
    lb: Lb,
    dc: Dc,
    name: o.Name = None,
    driver: Driver = None,
    command: Command = None,
    env: Env = None,
    cwd: Cwd = None,
    template_file: TemplateFile = None,
    min_size: MinSize = None,
    max_size: MaxSize = None,
    desired: Desired = None,
    target_rps: TargetRps = None,
    target_cpu: TargetCpu = None,
    target_latency: TargetLatency = None,
    step: Steps = None,
    tolerance: Tolerance = None,
    metric_window: MetricWindow = None,
    scale_out_window: ScaleOutWindow = None,
    scale_in_window: ScaleInWindow = None,
    cooldown: Cooldown = None,
    health_timeout: HealthTimeout = None,
    drain: Drain = None,
    max_failures: MaxFailures = None,
    capacity_text: CapacityOpt = None,
    schedule: Schedule = None,
    schedule_tz: ScheduleTz = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Create a scaling group: its instances start at once (--min, or --desired), then follow
    the policies (without a policy flag: requests_per_second target 50 per instance)."""
    template_doc = template(template_file, command, env, cwd)
    if template_doc is None:
        raise typer.BadParameter(
            "give --command (a local template) or --template FILE", param_hint="--command"
        )
    body = {"id": group_id} | group_fields(
        name=name, lb=lb, dc=dc, driver=driver, template_doc=template_doc, min_size=min_size,
        max_size=max_size, desired=desired,
        policy_docs=policies(target_rps, target_cpu, target_latency, step),
        tolerance=tolerance, metric_window=metric_window, scale_out_window=scale_out_window,
        scale_in_window=scale_in_window, cooldown=cooldown, health_timeout=health_timeout,
        drain=drain, max_failures=max_failures, capacity_doc=capacity(capacity_text),
        schedule=schedule, schedule_tz=schedule_tz,
    )  # fmt: skip
    rt.request(ctx, as_json, "POST", SG_PATH, body=body, render=render_group, quiet=quiet)


@group_app.command("show")
def group_show(ctx: typer.Context, group_id: GroupId, as_json: o.Json = False) -> None:
    """A group: its status, size and bounds, policies, metrics now, instances and last
    action."""
    rt.request(ctx, as_json, "GET", _path(group_id), render=render_group)


@group_app.command("set")
def group_set(
    ctx: typer.Context,
    group_id: GroupId,
    lb: LbOpt = None,
    dc: DcOpt = None,
    name: o.Name = None,
    driver: Driver = None,
    command: Command = None,
    env: Env = None,
    cwd: Cwd = None,
    template_file: TemplateFile = None,
    min_size: MinSize = None,
    max_size: MaxSize = None,
    desired: Desired = None,
    target_rps: TargetRps = None,
    target_cpu: TargetCpu = None,
    target_latency: TargetLatency = None,
    step: Steps = None,
    no_policies: NoPolicies = False,
    tolerance: Tolerance = None,
    metric_window: MetricWindow = None,
    scale_out_window: ScaleOutWindow = None,
    scale_in_window: ScaleInWindow = None,
    cooldown: Cooldown = None,
    health_timeout: HealthTimeout = None,
    drain: Drain = None,
    max_failures: MaxFailures = None,
    capacity_text: CapacityOpt = None,
    schedule: Schedule = None,
    schedule_tz: ScheduleTz = None,
    no_schedule: NoSchedule = False,
    as_json: o.Json = False,
) -> None:
    """Change a group; only the options given change. A policy flag replaces the policies,
    --schedule the schedule; --desired N sets the size now (a manual scaling action)."""
    policy_docs = policies(target_rps, target_cpu, target_latency, step)
    if no_policies and policy_docs:
        raise typer.BadParameter("give it alone, or the new policies", param_hint="--no-policies")
    if no_schedule and schedule:
        raise typer.BadParameter("give it alone, or the new schedule", param_hint="--no-schedule")
    fields = group_fields(
        name=name, lb=lb, dc=dc, driver=driver,
        template_doc=template(template_file, command, env, cwd), min_size=min_size,
        max_size=max_size, desired=desired, policy_docs=policy_docs, tolerance=tolerance,
        metric_window=metric_window, scale_out_window=scale_out_window,
        scale_in_window=scale_in_window, cooldown=cooldown, health_timeout=health_timeout,
        drain=drain, max_failures=max_failures, capacity_doc=capacity(capacity_text),
        schedule=schedule, schedule_tz=schedule_tz,
    )  # fmt: skip
    if no_policies:
        fields["policies"] = []
    if no_schedule:
        fields["schedule"] = []
    rt.update(ctx, as_json, _path(group_id), fields, render=render_group)


@group_app.command("history")
def group_history(
    ctx: typer.Context,
    group_id: GroupId,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """The group's scaling actions, newest first, with their steps (seconds after the
    action started)."""
    params = rt.compact(limit=limit, cursor=cursor)
    rt.listing(
        ctx,
        as_json,
        _path(group_id, "/actions"),
        ACTION_COLUMNS,
        title="actions",
        params=params,
        all_pages=all_pages,
    )


@group_app.command("instances")
def group_instances(
    ctx: typer.Context,
    group_id: GroupId,
    ended: Annotated[
        bool, typer.Option("--ended", help="the deleted and failed instances too")
    ] = False,
    as_json: o.Json = False,
) -> None:
    """The group's instances, oldest first."""
    columns = ENDED_COLUMNS if ended else INSTANCE_COLUMNS
    params = {"ended": "true"} if ended else None
    rt.listing(
        ctx, as_json, _path(group_id, "/instances"), columns, title="instances", params=params
    )


@group_app.command("resume")
def group_resume(ctx: typer.Context, group_id: GroupId, as_json: o.Json = False) -> None:
    """A group that stopped after failed launches tries again."""
    rt.request(ctx, as_json, "POST", _path(group_id, "/resume"), render=render_group)


@group_app.command("delete")
def group_delete(ctx: typer.Context, group_id: GroupId, as_json: o.Json = False) -> None:
    """Delete a group: it drains and removes its instances, then goes (the load balancer
    stays, with the backends that were not the group's)."""
    doc: Any = rt.call(ctx, lambda c: c.request("DELETE", _path(group_id)))
    if doc is None:  # 204: it had no instances
        rt.emit(
            {"id": group_id, "deleted": True},
            as_json,
            lambda _: output.line(f"deleted scaling group {group_id}"),
        )
        return
    count = len(doc.get("instances") or [])

    def draining(_: Doc) -> None:
        output.line(
            f"scaling group {group_id} is deleting: it drains and removes its {count} "
            "instance(s), then goes (edgeplane scale group show " + group_id + ")",
            "yellow",
        )

    rt.emit(doc, as_json, draining)


__all__ = ["app"]
