"""``edgeplane waf``: the project's web application firewall, its matches and exclusions.

The false-positive workflow: a 403 names a request id -> ``edgeplane waf matches
--request-id ID`` shows the rules that refused it -> ``edgeplane waf exclude --rule 942100
--path /api/search`` switches the rule off under that path (``--wait``: until the edge serves
it) -> the same request passes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeplane.cli import edge_nodes, output
from edgeplane.cli import options as o
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

app = typer.Typer(help="The WAF (ModSecurity + OWASP CRS): status, matches, exclusions.")

WAF_PATH = f"{rt.BASE}/cdn/waf"
MATCH_COLUMNS: list[Column] = [
    ("TIME", "at"),
    ("REQUEST ID", "request_id"),
    ("ACTION", "action"),
    ("SCORE", "anomaly_score"),
    ("HOST", "domain"),
    ("METHOD", "method"),
    ("URI", lambda m: _short(m["uri"], 60)),
    ("CLIENT", "client"),
    ("RULES", lambda m: " ".join(str(r["rule"]) for r in m["rules"])),
]
EXCLUSION_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("RULES", lambda e: " ".join(e["rules"])),
    ("PATH", lambda e: e.get("path") or "(everywhere)"),
    ("NOTE", "note"),
]


def _short(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _render_status(doc: Doc) -> None:
    top = doc.get("top_rules_24h") or {}
    output.details(
        {
            "project": doc["project"],
            "mode": doc["mode"],
            "paranoia_level": doc["paranoia_level"],
            "anomaly_threshold": doc["anomaly_threshold"],
            "exclusions": doc["exclusions"],
            "revision": doc["revision"],
            "matches (24 h)": doc["matches_24h"],
            "blocked (24 h)": doc["blocked_24h"],
            "top rules (24 h)": ", ".join(f"{k}: {v}" for k, v in top.items()) or "-",
        },
        title="WAF",
    )


def _render_matches(doc: Doc) -> None:
    items = doc["items"]
    output.table(items, MATCH_COLUMNS, title="WAF matches")
    if len(items) == 1:  # one request: its rules in full (the false-positive workflow)
        output.blank()
        rules = [{**r, "data": _short(r.get("data") or "", 100)} for r in items[0]["rules"]]
        output.table(
            rules,
            [("RULE", "rule"), ("SEVERITY", "severity"), ("MESSAGE", "message"), ("DATA", "data")],
            title=f"rules of {items[0]['request_id']}",
        )
    if doc.get("next_before"):
        output.note(f"more: --before {doc['next_before']}")


async def _then_wait(c: Client, doc: Any, wait: bool, timeout: float, show: bool) -> list[str]:
    if not wait:
        return []
    state = await c.request("GET", WAF_PATH)
    if state.get("revision") is None:
        return []
    return await edge_nodes.wait_applied(c, state["revision"], timeout, show=show)


Wait = Annotated[
    bool, typer.Option("--wait", help="until every online edge node serves the change")
]
Timeout = Annotated[float, typer.Option("--timeout", help="seconds to wait at most")]


@app.command("status")
def status(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The WAF's mode, paranoia level, threshold and the last 24 hours' matches."""
    rt.request(ctx, as_json, "GET", WAF_PATH, render=_render_status)


@app.command("set")
def set_waf(
    ctx: typer.Context,
    mode: Annotated[
        str | None, typer.Option("--mode", help="off, detect (log only) or block")
    ] = None,
    paranoia: Annotated[
        int | None, typer.Option("--paranoia", help="CRS paranoia level, 1-4")
    ] = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="inbound anomaly score that blocks")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 30.0,
    as_json: o.Json = False,
) -> None:
    """Change the WAF's mode, paranoia level or anomaly threshold."""
    body = rt.compact(mode=mode, paranoia_level=paranoia, anomaly_threshold=threshold)
    if not body:
        rt.fail("nothing to change: give --mode, --paranoia or --threshold", 2)

    async def run(c: Client) -> tuple[Any, list[str]]:
        doc = await c.request("PATCH", WAF_PATH, json=body)
        return doc, await _then_wait(c, doc, wait, timeout, not as_json)

    doc, problems = rt.call(ctx, run)
    rt.emit(doc, as_json, lambda d: output.details(rt.compact(**{**d, "exclusions": None})))
    if problems:
        rt.fail("; ".join(problems), 1)


@app.command("matches")
def matches(
    ctx: typer.Context,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="the request id a 403 named")
    ] = None,
    rule: Annotated[int | None, typer.Option("--rule", help="a rule id")] = None,
    host: Annotated[str | None, typer.Option("--host", help="the request's host")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601 time")] = None,
    limit: Annotated[int, typer.Option("--limit", help="page size (1-500)")] = 50,
    before: Annotated[
        int | None, typer.Option("--before", help="next_before of the previous page")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """Requests that matched WAF rules at the edge, newest first."""
    params = rt.compact(
        request_id=request_id, rule=rule, host=host, since=since, limit=limit, before=before
    )
    rt.request(ctx, as_json, "GET", f"{WAF_PATH}/matches", params=params, render=_render_matches)


@app.command("exclusions")
def exclusions(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The rules switched off for the project (everywhere or under a path)."""
    rt.listing(ctx, as_json, f"{WAF_PATH}/exclusions", EXCLUSION_COLUMNS, title="WAF exclusions")


@app.command("exclude")
def exclude(
    ctx: typer.Context,
    rule: Annotated[
        list[str],
        typer.Option("--rule", help="a rule id (942100) or range (942100-942199); repeatable"),
    ],
    path: Annotated[
        str | None, typer.Option("--path", help="only under this path prefix (/api/search)")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="why (for people)")] = None,
    wait: Wait = False,
    timeout: Timeout = 30.0,
    as_json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Switch rules off for the project, under a path prefix when given."""
    body = rt.compact(rules=list(rule), path=path, note=note)

    async def run(c: Client) -> tuple[Any, list[str]]:
        doc = await c.request("POST", f"{WAF_PATH}/exclusions", json=body)
        return doc, await _then_wait(c, doc, wait, timeout, not (as_json or quiet))

    doc, problems = rt.call(ctx, run)
    rt.emit(doc, as_json, lambda d: output.details(d, title="exclusion added"), quiet=quiet)
    if problems:
        rt.fail("; ".join(problems), 1)


@app.command("unexclude")
def unexclude(
    ctx: typer.Context,
    exclusion_id: Annotated[str, typer.Argument(help="the exclusion's id")],
    as_json: o.Json = False,
) -> None:
    """Remove an exclusion (its rules run again)."""
    rt.delete(ctx, as_json, f"{WAF_PATH}/exclusions/{exclusion_id}", "exclusion", exclusion_id)
