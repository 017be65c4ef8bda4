"""``edgeplane dr status|events|failover|failback|drill|drills``: a DR config's live side.

``drill`` starts a drill and follows it step by step (on stderr), then prints the report:
each step with its time, the measured RTO and RPO against the targets, PASS / FAIL; it exits
1 when the drill failed (or could not complete). ``--no-wait`` prints the running drill and
returns (``edgeplane dr drills CONFIG`` and ``--json`` of a drill's id follow it); embedded
(no ``EDGEPLANE_URL``), the drill runs inside the command, which therefore waits anyway.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.operations import DR_PATH, DrId, dr_app
from edgeplane.cli.output import Column, Doc

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

POLL_S = 0.5
EVENT_COLUMNS: list[Column] = [
    ("AT", "at"),
    ("KIND", "kind"),
    ("ACTOR", "actor"),
    ("EPISODE", "episode"),
    ("MESSAGE", "message"),
]
DRILL_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("STARTED", "started_at"),
    ("TRIGGER", "trigger"),
    ("STATUS", "status"),
    ("RTO s", lambda d: _measure(d["rto_s"], d["rto_target_s"])),
    ("RPO s", lambda d: _measure(d["rpo_s"], d["rpo_target_s"])),
    ("MESSAGE", "message"),
]
STEP_COLUMNS: list[Column] = [
    ("STEP", "step"),
    ("STARTED", "started_at"),
    ("SECONDS", "seconds"),
    ("OK", lambda s: {True: "ok", False: "FAIL", None: "-"}[s.get("ok")]),
    ("DETAIL", lambda s: step_summary(s)),
]

Reason = Annotated[str | None, typer.Option("--reason", help="why (kept in the timeline)")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do it without asking")]


def _measure(value: float | None, target: float) -> str:
    shown = "?" if value is None else f"{value:.2f}"
    return f"{shown} / {target:g}"


def _path(dr_id: str, tail: str = "") -> str:
    return f"{DR_PATH}/{dr_id}{tail}"


# Status and timeline ----------------------------------------------------------------------


def render_status(doc: Doc) -> None:
    health = doc["primary_health"]
    drill = doc.get("last_drill")
    shown = {
        "id": doc["id"],
        "name": doc["name"],
        "status": doc["status"],
        "serving": f"{doc['active']} ({doc['active_dc']})",
        "since": doc["since"],
        "primary": f"{doc['primary_dc']}: {health['state']}"
        + (f" since {output.fmt(health['since'])}" if health.get("since") else "")
        + (f" ({health['reason']})" if health.get("reason") else ""),
        "backup": doc["backup_dc"],
        "failover / failback": f"{doc['failover_mode']} / {doc['failback_mode']}",
        "RTO / RPO min": f"{output.fmt(doc['rto'])} / {output.fmt(doc['rpo'])}",
        "manual hold": doc["manual"],
        "awaiting revision": doc.get("awaiting_revision"),
        "last drill": (
            f"{drill['id']} {drill['status']} ({drill['started_at'][:19]})" if drill else None
        ),
        "next drill due": doc.get("next_drill_due"),
    }
    style = {"normal": "green", "drill": "cyan"}.get(doc["status"], "yellow")
    output.line(f"{doc['id']}: {doc['status']}, traffic on the {doc['active']}", style)
    output.details(shown)
    if doc.get("episode_events"):
        output.blank()
        output.line(f"episode {doc['episode']}")
        output.table(doc["episode_events"], EVENT_COLUMNS[:3] + EVENT_COLUMNS[4:])


@dr_app.command("status")
def status(ctx: typer.Context, dr_id: DrId, as_json: o.Json = False) -> None:
    """Which data center serves, the primary's health, the open episode and the last drill."""
    rt.request(ctx, as_json, "GET", _path(dr_id, "/status"), render=render_status)


@dr_app.command("events")
def events(
    ctx: typer.Context,
    dr_id: DrId,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """The timeline of failovers, failbacks and drills, newest first."""
    params = rt.compact(limit=limit, cursor=cursor)
    rt.listing(
        ctx,
        as_json,
        _path(dr_id, "/events"),
        EVENT_COLUMNS,
        title="events",
        params=params,
        all_pages=all_pages,
    )


# Failover and failback --------------------------------------------------------------------


def _confirm(yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        rt.fail(f"{what}: confirm with --yes (no terminal to ask on)")
    if not typer.confirm(f"{what}?", default=False):
        rt.fail("cancelled: nothing was changed")


def _switch(
    ctx: typer.Context, dr_id: str, action: str, reason: str, yes: bool, as_json: bool
) -> None:
    side = "backup" if action == "failover" else "primary"
    _confirm(yes or as_json, f"Move the traffic of DR config {dr_id!r} to its {side} data center")
    rt.request(
        ctx,
        as_json,
        "POST",
        _path(dr_id, f"/{action}"),
        body={"reason": reason},
        render=render_status,
    )


@dr_app.command("failover")
def failover(
    ctx: typer.Context,
    dr_id: DrId,
    reason: Annotated[str, typer.Option("--reason", help="why (kept in the timeline)")],
    yes: Yes = False,
    as_json: o.Json = False,
) -> None:
    """Move traffic to the backup data center: confirms a pending failover, or forces one
    (a forced failover is not failed back automatically)."""
    _switch(ctx, dr_id, "failover", reason, yes, as_json)


@dr_app.command("failback")
def failback(
    ctx: typer.Context,
    dr_id: DrId,
    reason: Reason = None,
    yes: Yes = False,
    as_json: o.Json = False,
) -> None:
    """Move traffic back to the primary data center: confirms a pending failback, or forces
    one."""
    _switch(ctx, dr_id, "failback", reason or "failback from the command line", yes, as_json)


# Drills -----------------------------------------------------------------------------------


def step_summary(step: Doc) -> str:
    """One line of what a drill's step found."""
    d = step.get("detail") or {}
    if d.get("skipped"):
        return f"skipped: {d['skipped']}"
    if d.get("stopped"):
        return f"stopped: {d['stopped']}"
    if d.get("error") and step.get("ok") is False:
        return str(d["error"])
    name = step["step"]
    if name == "alert_assessment":
        return (
            f"primary {d['primary']['state']}, backup {d['backup']['state']}, "
            f"{d['open_alerts']} open alert(s), {len(d['live_nodes'])} live node(s)"
        )
    if name == "notification":
        sent = d.get("channels") or []
        if not sent:
            return str(d.get("note") or "no channel")
        return ", ".join(f"{c['channel']} {'ok' if c['ok'] else c['error']}" for c in sent)
    if name == "impact_analysis":
        fits = "fits" if d["capacity"]["fits"] else "does NOT fit"
        return (
            f"{len(d['load_balancers'])} load balancer(s), {len(d['domains'])} domain(s), "
            f"{d['live_nodes']} live node(s); backup capacity {fits}"
        )
    if name == "recovery_initiation":
        return (
            f"revision {d.get('revision')}: {len(d.get('drained') or [])} drained, "
            f"{len(d.get('promoted') or [])} promoted"
        )
    if name == "service_restoration":
        if d.get("error"):
            return str(d["error"])
        return f"served by the backup on {len(d.get('nodes') or [])} node(s), RTO {d['rto_s']} s"
    if name == "verification":
        health = "backup healthy" if d.get("backup_health_ok") else "backup NOT healthy"
        rpo = d.get("rpo_s")
        return f"{health}; RPO {'unknown' if rpo is None else f'{rpo:.1f} s'}: {d.get('rpo')}"
    if name == "documentation":
        return str(d.get("summary") or "")
    return output.fmt(d)


def render_drill(doc: Doc) -> None:
    style = {"passed": "green", "running": "cyan"}.get(doc["status"], "red")
    output.line(f"drill {doc['id']} of {doc['dr_id']}: {doc['status'].upper()}", style)
    output.table(doc["steps"], STEP_COLUMNS)
    output.blank()
    rows = [
        {
            "measure": m,
            "measured": doc[f"{k}_s"],
            "target": doc[f"{k}_target_s"],
            "result": doc[f"{k}_ok"],
        }
        for m, k in (("RTO", "rto"), ("RPO", "rpo"))
    ]
    output.table(
        rows,
        [
            ("MEASURE", "measure"),
            ("MEASURED s", lambda r: "?" if r["measured"] is None else f"{r['measured']:.2f}"),
            ("TARGET s", "target"),
            ("RESULT", lambda r: {True: "PASS", False: "FAIL", None: "-"}[r["result"]]),
        ],
    )
    if doc.get("message"):
        output.line(doc["message"], style)


class StepPrinter:
    """Prints each step of a drill once, as it ends (on stderr)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown: set[str] = set()

    def update(self, doc: Doc) -> None:
        if not self.enabled:
            return
        for s in doc["steps"]:
            if s.get("ended_at") and s["step"] not in self.shown:
                self.shown.add(s["step"])
                mark = {True: "ok", False: "FAIL", None: "-"}[s.get("ok")]
                seconds = s.get("seconds")
                took = f" ({seconds:.2f} s)" if isinstance(seconds, int | float) else ""
                output.stderr.print(f"  {s['step']}: {mark}{took}: {step_summary(s)}", markup=False)


@dr_app.command("drill")
def drill(
    ctx: typer.Context,
    dr_id: DrId,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="start it and return (follow: dr drills)")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to follow it")] = 900.0,
    as_json: o.Json = False,
) -> None:
    """Run a drill: the primary drained, spec 004's recovery steps, RTO and RPO measured
    against the targets, the primary restored. Exits 1 when the drill failed."""

    async def run(c: Client) -> Doc:
        doc: Doc = await c.request("POST", _path(dr_id, "/drills"))
        wait = not no_wait or not c.remote
        if no_wait and not c.remote and not as_json:
            output.note("embedded: the drill runs in this process, which waits for it")
        if not wait:
            return doc
        if not as_json:
            output.stderr.print(f"drill {doc['id']} of {dr_id}:", markup=False)
        printer = StepPrinter(not as_json)
        deadline = time.monotonic() + timeout
        while True:
            printer.update(doc)
            if doc["status"] not in ("queued", "running") or time.monotonic() >= deadline:
                return doc
            await asyncio.sleep(POLL_S)
            doc = await c.request("GET", _path(dr_id, f"/drills/{doc['id']}"))

    doc = rt.call(ctx, run)
    rt.emit(doc, as_json, render_drill)
    if doc["status"] in ("failed", "error"):
        raise typer.Exit(1)


@dr_app.command("drills")
def drills(
    ctx: typer.Context,
    dr_id: DrId,
    drill_id: Annotated[
        str | None, typer.Argument(metavar="[DRILL]", help="a drill's id: its report")
    ] = None,
    limit: o.Limit = None,
    cursor: o.Cursor = None,
    all_pages: o.All = False,
    as_json: o.Json = False,
) -> None:
    """The config's drills, newest first; with a drill id, its report."""
    if drill_id is not None:
        rt.request(ctx, as_json, "GET", _path(dr_id, f"/drills/{drill_id}"), render=render_drill)
        return
    params = rt.compact(limit=limit, cursor=cursor)
    rt.listing(
        ctx,
        as_json,
        _path(dr_id, "/drills"),
        DRILL_COLUMNS,
        title="drills",
        params=params,
        all_pages=all_pages,
    )


__all__ = ["dr_app"]
