"""``edgeplane security``: security scores of the project's domains, its compliance policy
and report, and the edge nodes' exposed surface (docs/security-score.md)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

API = "/api/v1/security"
app = typer.Typer(help="Security scores, compliance policies and the edge nodes' surface.")
compliance_app = typer.Typer(help="The project's compliance policy and its report.")
app.add_typer(compliance_app, name="compliance")

SCORE_COLUMNS: list[Column] = [
    ("DOMAIN", "domain"),
    ("SCORE", lambda s: f"{s['score']:g}"),
    ("GRADE", "grade"),
    ("BEFORE", lambda s: "" if s["previous_score"] is None else f"{s['previous_score']:g}"),
    ("BEST 7d", lambda s: "" if s["best_score"] is None else f"{s['best_score']:g}"),
    ("NOT PASSED", lambda s: ", ".join(s["failing"])),
    ("EVALUATED", "evaluated_at"),
]
CHECK_COLUMNS: list[Column] = [
    ("CHECK", "id"),
    ("RESULT", "result"),
    ("POINTS", lambda c: f"{c['points']:g}/{c['weight']:g}"),
    ("NODE", "node"),
    ("ADVICE", "advice"),
]
HISTORY_COLUMNS: list[Column] = [
    ("AT", "at"),
    ("SCORE", lambda p: f"{p['score']:g}"),
    ("GRADE", "grade"),
    ("NOT PASSED", lambda p: ", ".join(p["failing"])),
]
POLICY_COLUMNS: list[Column] = [
    ("REQUIREMENT", "id"),
    ("VALUE", "value"),
    ("WHAT IT ASKS", "description"),
]
REPORT_COLUMNS: list[Column] = [
    ("DOMAIN", "domain"),
    ("REQUIREMENT", "id"),
    ("VALUE", "value"),
    ("STATUS", "status"),
    ("SINCE", "since"),
    ("EVIDENCE", "evidence"),
]
SURFACE_COLUMNS: list[Column] = [
    ("NODE", "name"),
    ("ADDRESS", "address"),
    ("PORT", "port"),
    ("ROLE", "role"),
    ("VERDICT", "verdict"),
    ("SEVERITY", "severity"),
    ("DETAIL", "detail"),
]


def _domain_path(domain: str) -> str:
    return f"{API}/scores/{quote(domain, safe='')}"


@app.command("score")
def score(
    ctx: typer.Context,
    domain: Annotated[str | None, typer.Argument(help="a domain: its checks")] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="probe the domain now (a few seconds)")
    ] = False,
    as_json: o.Json = False,
) -> None:
    """Each domain's score and grade; with DOMAIN, every check with its points and advice."""
    if domain is None:
        if refresh:
            rt.fail("--refresh needs a DOMAIN", 2)
        rt.listing(ctx, as_json, f"{API}/scores", SCORE_COLUMNS, title="security scores")
        return
    method, path = ("POST", f"{_domain_path(domain)}/evaluate") if refresh else (
        "GET", _domain_path(domain))  # fmt: skip

    def render(doc: Doc) -> None:
        head = f"{doc['domain']}: {doc['score']:g} ({doc['grade']})"
        if doc.get("capped"):
            head += f", capped: {doc['capped']}"
        if doc.get("previous_score") is not None:
            head += f"; before {doc['previous_score']:g}"
        output.line(head)
        output.table(doc["checks"], CHECK_COLUMNS, title="checks")
        output.note(f"evaluated {output.fmt(doc['evaluated_at'])} on {', '.join(doc['nodes'])}")

    doc = rt.call(ctx, lambda c: c.request(method, path))
    rt.emit(doc, as_json, render)


@app.command("history")
def history(
    ctx: typer.Context,
    domain: str,
    limit: Annotated[int, typer.Option("--limit", help="evaluations, newest first")] = 50,
    as_json: o.Json = False,
) -> None:
    """A domain's evaluations over time, newest first."""
    doc = rt.call(ctx, lambda c: c.request("GET", _domain_path(domain), params={"limit": limit}))
    rt.emit(doc["history"], as_json, lambda h: output.table(h, HISTORY_COLUMNS, title="scores"))


@compliance_app.command("show")
def compliance_show(
    ctx: typer.Context,
    catalogue: Annotated[
        bool, typer.Option("--catalogue", help="list every requirement there is")
    ] = False,
    as_json: o.Json = False,
) -> None:
    """The project's requirements (``--catalogue``: the ones to choose from)."""

    def render(doc: Doc) -> None:
        described = {r["id"]: r for r in doc["catalogue"]}
        if catalogue:
            rows = [
                {**r, "value": r["value"] if r["values"] is None else "|".join(r["values"])}
                for r in doc["catalogue"]
            ]
            output.table(rows, POLICY_COLUMNS, title="requirements")
            return
        rows = [
            {**r, "description": described[r["id"]]["description"]} for r in doc["requirements"]
        ]
        output.table(rows, POLICY_COLUMNS, title="requirements (edgeplane security compliance "
                     "set ...)")  # fmt: skip

    rt.emit(rt.call(ctx, lambda c: c.request("GET", f"{API}/compliance")), as_json, render)


def _requirement(text: str) -> dict[str, Any]:
    rid, sep, value = text.partition("=")
    if not rid.strip():
        raise typer.BadParameter(f"{text!r}: give ID or ID=VALUE", param_hint="REQUIREMENT")
    if not sep:
        return {"id": rid.strip()}
    return {"id": rid.strip(), "value": rt.parse_scalar(value)}


@compliance_app.command("set")
def compliance_set(
    ctx: typer.Context,
    requirements: Annotated[
        list[str] | None,
        typer.Argument(
            help="ID or ID=VALUE, e.g. https_only hsts_min_age=15768000 tls_min_version=1.2 "
            "(edgeplane security compliance show --catalogue)"
        ),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="no requirement at all")] = False,
    as_json: o.Json = False,
) -> None:
    """Replace the project's policy with these requirements."""
    if not requirements and not clear:
        rt.fail("give the requirements (or --clear for none)", 2)
    if requirements and clear:
        rt.fail("--clear takes no requirements", 2)
    body = {"requirements": [_requirement(r) for r in requirements or []]}

    def render(doc: Doc) -> None:
        output.table(doc["requirements"], POLICY_COLUMNS[:2], title="requirements")

    doc = rt.call(ctx, lambda c: c.request("PUT", f"{API}/compliance", json=body))
    rt.emit(doc, as_json, render)


@compliance_app.command("report")
def compliance_report(
    ctx: typer.Context,
    failing: Annotated[bool, typer.Option("--failing", help="only what fails")] = False,
    as_json: o.Json = False,
) -> None:
    """Each domain against each requirement: status, since when, and what was seen."""

    def render(doc: Doc) -> None:
        rows = [
            {**r, "domain": d["domain"]}
            for d in doc["domains"]
            for r in d["requirements"]
            if not failing or r["status"] == "fail"
        ]
        output.table(rows, REPORT_COLUMNS, title="results")
        verdict = "compliant" if doc["compliant"] else f"{doc['failing']} failing"
        output.note(f"{len(doc['domains'])} domain(s), {verdict}")

    doc = rt.call(ctx, lambda c: c.request("GET", f"{API}/compliance/report"))
    rt.emit(doc, as_json, render)


@app.command("scan")
def scan(
    ctx: typer.Context,
    now: Annotated[bool, typer.Option("--now", help="scan the live nodes now")] = False,
    every: Annotated[
        bool, typer.Option("--all", help="every port found, not only what matters")
    ] = False,
    as_json: o.Json = False,
) -> None:
    """What answers on each edge node's address, against what it should expose."""

    def render(doc: list[Doc]) -> None:
        rows = [
            {**f, "name": n["name"], "address": n["address"]}
            for n in doc
            for f in n["findings"]
            if every or f["verdict"] != "expected"
        ]
        output.table(rows, SURFACE_COLUMNS, title="findings")
        for n in doc:
            when = output.fmt(n["scanned_at"]) if n["scanned_at"] else "not scanned yet"
            extra = f", error: {n['error']}" if n.get("error") else ""
            output.note(
                f"{n['name']}: {n['unexpected']} unexpected, open {n['open_ports']} "
                f"({n['ports_scanned']} ports, {when}{extra})"
            )

    method, path = ("POST", f"{API}/nodes/scan") if now else ("GET", f"{API}/nodes")
    doc = rt.call(ctx, lambda c: c.request(method, path), scoped=False)
    rt.emit(doc, as_json, render)
