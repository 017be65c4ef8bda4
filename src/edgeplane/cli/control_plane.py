"""``edgeplane control-plane``: the replicas of the control plane and its background jobs."""

from __future__ import annotations

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Doc

app = typer.Typer(help="The control plane's replicas: which one runs the background jobs.")
PATH = "/api/v1/control-plane"


def _lag(doc: Doc) -> str:
    lag = doc.get("lag_s")
    return "-" if lag is None else f"{lag:.1f} s"


@app.command("status")
def status(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The replica holding the runner lease, and the answering replica's jobs."""

    def render(doc: Doc) -> None:
        leader = doc.get("leader")
        if leader is None:
            output.note("no replica has taken the runner lease yet")
        else:
            output.details(
                {
                    "leader": leader["holder"] + ("" if leader["live"] else " (lease expired)"),
                    "url": leader["url"] or "-",
                    "version": leader["version"] or "-",
                    "epoch": leader["epoch"],
                    "since": leader["since"],
                    "lease until": leader["expires_at"],
                },
                title="background jobs",
            )
        output.details(
            {"replica": doc["replica"] or "-", "runs the jobs": "yes" if doc["leading"] else "no"},
            title="the replica that answered",
        )
        if doc["leading"]:
            output.table(
                doc["jobs"],
                [("JOB", "name"), ("EVERY", lambda d: f"{d['interval_s']:g} s"), ("LATE", _lag)],
                title="jobs",
            )

    rt.request(ctx, as_json, "GET", PATH, scoped=False, render=render)
