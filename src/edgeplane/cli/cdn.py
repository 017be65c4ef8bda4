"""``edgeplane cdn``: the project's CDN config, cache rules, purges and analytics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from edgeplane.cli import edge_nodes, output
from edgeplane.cli import options as o
from edgeplane.cli import origin_tls as ot
from edgeplane.cli import runtime as rt
from edgeplane.cli.cdn_security import attack_app, security_app, security_summary
from edgeplane.cli.output import Column, Doc

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

app = typer.Typer(help="The CDN: origins, cache rules, security at the edge, purges, analytics.")
rule_app = typer.Typer(help="Cache rules, tried in order (the first match wins).")
app.add_typer(rule_app, name="rule")
app.add_typer(security_app, name="security")
app.add_typer(attack_app, name="under-attack")

CDN_PATH = f"{rt.BASE}/cdn"
RULE_COLUMNS: list[Column] = [
    ("#", "position"),
    ("ID", "id"),
    ("PATTERN", "pattern"),
    ("TTL s", lambda r: "bypass" if r["bypass"] else r["ttl"]),
    ("QUERY", lambda r: r["cache_key"]["query"]),
    ("KEY", lambda r: _key_extras(r["cache_key"])),
    ("ORIGIN CC", "origin_cache_control"),
    ("STALE", lambda r: _stale(r)),
]
NODE_COLUMNS: list[Column] = [
    ("NODE", "node"),
    ("DONE", lambda n: n["completed_at"] is not None),
    ("PURGED", "purged_count"),
    ("LATENCY ms", "latency_ms"),
    ("ERROR", "error"),
]
TRAFFIC_COLUMNS: list[Column] = [
    ("DOMAIN", "domain"),
    ("REQUESTS", "requests"),
    ("HITS", "hits"),
    ("MISSES", "misses"),
    ("HIT RATIO", lambda d: _ratio(d["hit_ratio"])),
    ("BYTES OUT", "bytes_out"),
    ("STATUSES", "statuses"),
    ("P50 ms", "upstream_ms.p50"),
    ("P95 ms", "upstream_ms.p95"),
    ("P99 ms", "upstream_ms.p99"),
]


def _key_extras(key: Doc) -> str:
    parts = [] if key.get("host", True) else ["no host"]
    parts += [f"header {h}" for h in key.get("headers") or ()]
    parts += [f"cookie {c}" for c in key.get("cookies") or ()]
    return ", ".join(parts) or "-"


def _stale(rule: Doc) -> str:
    flags = (
        ("if-error", rule["stale_if_error"]),
        ("while-revalidate", rule["stale_while_revalidate"]),
    )
    parts = [name for name, on in flags if on]
    return ", ".join(parts) or "-"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _rules_table(rules: list[Doc]) -> None:
    output.table([{**r, "position": i} for i, r in enumerate(rules)], RULE_COLUMNS, title="rules")


def render_deployment(doc: Doc) -> None:
    origins = [o.get("url") or f"load balancer {o['load_balancer']}" for o in doc["origins"]]
    output.details(
        {
            "project": doc["project"],
            "domains": doc["domains"],
            "origins": origins,
            "security": security_summary(doc["security"]),
            "revision": doc["revision"],
            "created_at": doc["created_at"],
            "updated_at": doc["updated_at"],
        }
    )
    output.blank()
    _rules_table(doc["cache_rules"])


# Config -----------------------------------------------------------------------------------


@app.command("show")
def show(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Show the project's CDN config and its cache rules."""
    rt.request(ctx, as_json, "GET", CDN_PATH, render=render_deployment)


def _parse_rule(text: str) -> Doc:
    pattern, sep, ttl = text.rpartition(":")
    if not sep or not pattern:
        raise typer.BadParameter(
            f"{text!r} is not PATTERN:TTL (or PATTERN:bypass)", param_hint="--rule"
        )
    if ttl.strip().lower() == "bypass":
        return {"pattern": pattern, "bypass": True}
    if not ttl.strip().isdigit():
        raise typer.BadParameter(f"{text!r}: TTL must be seconds or 'bypass'", param_hint="--rule")
    return {"pattern": pattern, "ttl": int(ttl)}


def _parse_rate(text: str) -> Doc:
    rate, _, burst = text.partition(":")
    try:
        return {"rate": int(rate), "burst": int(burst or 0)}
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not RATE[:BURST]", param_hint="--rate-limit"
        ) from None


HEADER_FIELDS = {
    "x-frame-options": "x_frame_options",
    "x-content-type-options": "x_content_type_options",
    "referrer-policy": "referrer_policy",
    "permissions-policy": "permissions_policy",
    "content-security-policy": "content_security_policy",
}


def _parse_headers(texts: list[str], keep_leaking: bool | None) -> Doc:
    """``NAME=set:VALUE``, ``NAME=keep[:VALUE]`` or ``NAME=remove`` -> the headers policy."""
    policy: Doc = {}
    for text in texts:
        name, _, rule = text.partition("=")
        action, _, value = rule.partition(":")
        field = HEADER_FIELDS.get(name.strip().lower())
        if field is None or action not in ("set", "keep", "remove"):
            raise typer.BadParameter(
                f"{text!r} is not NAME=set:VALUE, NAME=keep[:VALUE] or NAME=remove with NAME "
                f"one of {', '.join(HEADER_FIELDS)}",
                param_hint="--header",
            )
        policy[field] = {"action": action, **({"value": value} if value else {})}
    if keep_leaking is not None:
        policy["remove_leaking"] = not keep_leaking
    return policy


@app.command("configure")
def configure(
    ctx: typer.Context,
    origin: Annotated[
        list[str] | None,
        typer.Option("--origin", help="origin URL http(s)://host[:port]; repeatable"),
    ] = None,
    lb: Annotated[str | None, typer.Option("--lb", help="a load balancer of the project")] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule", help="PATTERN:TTL or PATTERN:bypass, e.g. /static/*:86400; in order"
        ),
    ] = None,
    force_https: Annotated[
        bool | None, typer.Option("--force-https/--no-force-https", help="redirect HTTP to HTTPS")
    ] = None,
    hsts: Annotated[int | None, typer.Option("--hsts", help="HSTS max-age, seconds")] = None,
    rate_limit: Annotated[
        str | None, typer.Option("--rate-limit", help="RATE[:BURST] requests/s per client")
    ] = None,
    allow: Annotated[
        list[str] | None, typer.Option("--allow", help="allowed CIDR; repeatable")
    ] = None,
    deny: Annotated[
        list[str] | None, typer.Option("--deny", help="denied CIDR; repeatable")
    ] = None,
    client_cert: ot.ClientCert = None,
    verify: ot.Verify = None,
    origin_ca: ot.OriginCa = None,
    pin: ot.Pins = None,
    origin_name: ot.OriginName = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            help="security header policy: NAME=set:VALUE, NAME=keep[:VALUE] or NAME=remove "
            "(x-frame-options, x-content-type-options, referrer-policy, permissions-policy, "
            "content-security-policy); repeatable",
        ),
    ] = None,
    keep_leaking: Annotated[
        bool | None,
        typer.Option(
            "--keep-leaking-headers/--remove-leaking-headers",
            help="X-Powered-By, X-AspNet-Version, X-AspNetMvc-Version (removed by default)",
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="the whole config from YAML or JSON")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="until every online edge node serves the new config")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait at most")] = 30.0,
    as_json: o.Json = False,
) -> None:
    """Replace the project's CDN config (origins, cache rules, security; the TLS options of
    private origins apply to every --origin)."""
    tls = ot.tls_doc(client_cert, verify, origin_ca, pin, origin_name)
    if file is not None:
        if any(v for v in (origin, lb, rule, rate_limit, allow, deny, tls, header)) or (
            force_https is not None or hsts is not None or keep_leaking is not None
        ):
            rt.fail("give either --file or the options, not both", 2)
        body = rt.read_mapping(file, "origins, cache_rules", hint_mapping=False)
    else:
        origins: list[Doc] = [{"url": u} | ({"tls": tls} if tls else {}) for u in origin or ()]
        if lb:
            origins.append({"load_balancer": lb})
        security = rt.compact(
            force_https=force_https,
            hsts_max_age=hsts,
            rate_limit=_parse_rate(rate_limit) if rate_limit else None,
            ip_allow=allow or None,
            ip_deny=deny or None,
            headers=_parse_headers(header or [], keep_leaking) or None,
        )
        body = {"origins": origins, "cache_rules": [_parse_rule(r) for r in rule or ()]}
        if security:
            body["security"] = security

    async def run(c: Client) -> tuple[Any, list[str]]:
        doc = await c.request("POST", CDN_PATH, json=body)
        revision = doc["cdn_deployment"]["revision"]
        if not wait or revision is None:
            return doc, []
        return doc, await edge_nodes.wait_applied(c, revision, timeout, show=not as_json)

    doc, problems = rt.call(ctx, run)
    rt.emit(doc, as_json, lambda d: render_deployment(d["cdn_deployment"]))
    if problems:
        rt.fail("; ".join(problems), 1)


@app.command("health")
def origin_health(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Per URL origin: what each edge node's checks last saw (origins whose TLS settings
    verify a CA or pins; a refused certificate says why)."""
    from edgeplane.cli.operations import HEALTH_COLUMNS

    doc = rt.call(ctx, lambda c: c.request("GET", f"{CDN_PATH}/origins/health"))
    rt.emit(doc, as_json, lambda rows: output.table(rows, HEALTH_COLUMNS, title="origins"))


@app.command("delete")
def delete(ctx: typer.Context, as_json: o.Json = False) -> None:
    """Delete the project's CDN config."""
    rt.call(ctx, lambda c: c.delete(CDN_PATH))
    rt.emit({"deleted": True}, as_json, lambda _: output.line("deleted the CDN config"))


# Rules ------------------------------------------------------------------------------------


@rule_app.command("list")
def rule_list(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The cache rules in the order they are tried."""
    doc = rt.call(ctx, lambda c: c.request("GET", f"{CDN_PATH}/rules"))
    rt.emit(doc, as_json, _rules_table)


@rule_app.command("add")
def rule_add(
    ctx: typer.Context,
    pattern: Annotated[str, typer.Argument(help="/exact/path, /prefix/*, /* or *.ext")],
    ttl: Annotated[int | None, typer.Option("--ttl", help="seconds (default 3600)")] = None,
    bypass: Annotated[bool, typer.Option("--bypass", help="never cache what matches")] = False,
    query: Annotated[
        str | None, typer.Option("--query", help="cache key query: all, none or NAME,NAME")
    ] = None,
    no_host: Annotated[
        bool, typer.Option("--no-host", help="one object for every domain of the project")
    ] = False,
    header: Annotated[list[str] | None, typer.Option("--header", help="in the key")] = None,
    cookie: Annotated[list[str] | None, typer.Option("--cookie", help="in the key")] = None,
    honour_origin: Annotated[
        bool, typer.Option("--honour-origin", help="the origin's Cache-Control wins")
    ] = False,
    stale_if_error: Annotated[
        bool | None, typer.Option("--stale-if-error/--no-stale-if-error")
    ] = None,
    stale_while_revalidate: Annotated[bool, typer.Option("--stale-while-revalidate")] = False,
    position: Annotated[
        int | None, typer.Option("--position", help="0 first (default: last)")
    ] = None,
    rule_id: o.Id = None,
    quiet: o.Quiet = False,
    as_json: o.Json = False,
) -> None:
    """Add a cache rule."""
    key = rt.compact(
        host=False if no_host else None,
        query=None if query is None else (query if query in ("all", "none") else query.split(",")),
        headers=header or None,
        cookies=cookie or None,
    )
    body = rt.compact(
        id=rule_id,
        pattern=pattern,
        ttl=ttl,
        bypass=bypass or None,
        cache_key=key or None,
        origin_cache_control="honour" if honour_origin else None,
        stale_if_error=stale_if_error,
        stale_while_revalidate=stale_while_revalidate or None,
    )
    params = rt.compact(position=position)
    rt.request(ctx, as_json, "POST", f"{CDN_PATH}/rules", body=body, params=params,
               title="cache rule added", quiet=quiet)  # fmt: skip


@rule_app.command("delete")
def rule_delete(
    ctx: typer.Context,
    rule_id: Annotated[str, typer.Argument(metavar="ID", help="rule id")],
    as_json: o.Json = False,
) -> None:
    """Delete a cache rule."""
    rt.delete(ctx, as_json, f"{CDN_PATH}/rules/{quote(rule_id, safe='')}", "cache rule", rule_id)


# Purges -----------------------------------------------------------------------------------


def render_purge(doc: Doc) -> None:
    state = "complete" if doc["complete"] else "not complete"
    output.line(f"purge {doc['id']}: {doc['purged_count']} objects removed, {state}")
    if doc["nodes"]:
        output.table(doc["nodes"], NODE_COLUMNS, title="edge nodes")


@app.command("purge")
def purge(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(metavar="[PATH]...", help="/exact/path or /prefix/*")
    ] = None,
    purge_all: Annotated[
        bool, typer.Option("--all", help="everything the project has cached")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="until every online edge node has purged")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait at most")] = 10.0,
    as_json: o.Json = False,
) -> None:
    """Purge cached objects on every edge node."""
    if not paths and not purge_all:
        rt.fail("give paths to purge or --all", 2)
    body = {"paths": list(paths or []), "purge_all": purge_all, "wait": False}

    async def run(c: Client) -> Any:
        doc = await c.request("POST", f"{CDN_PATH}/purge", json=body)
        if not wait:
            return doc
        deadline = time.monotonic() + timeout
        shown: set[str] = set()
        while True:
            if not as_json:
                for node in doc["nodes"]:
                    if node["completed_at"] is not None and node["node"] not in shown:
                        shown.add(node["node"])
                        output.note(
                            f"{node['node']}: {node['purged_count']} purged "
                            f"in {node['latency_ms']} ms"
                        )
            if doc["complete"] or time.monotonic() >= deadline:
                return doc
            await asyncio.sleep(0.05)
            doc = await c.request("GET", f"{CDN_PATH}/purges/{doc['id']}")

    doc = rt.call(ctx, run)
    rt.emit(doc, as_json, render_purge)
    if wait and not doc["complete"]:
        raise typer.Exit(1)


# Analytics --------------------------------------------------------------------------------


def render_analytics(doc: Doc) -> None:
    output.line(f"{doc['project']}: {output.fmt(doc['start'])} .. {output.fmt(doc['end'])}")
    total = {**doc, "domain": "(all)"}
    output.table([total, *doc["domains"]], TRAFFIC_COLUMNS, title="traffic")


@app.command("analytics")
def analytics(
    ctx: typer.Context,
    timeframe: Annotated[
        str | None, typer.Option("--timeframe", help="1h, 6h, 24h, 7d or 30d (default 1h)")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="ISO 8601 with a zone")] = None,
    end: Annotated[str | None, typer.Option("--end", help="ISO 8601 with a zone")] = None,
    as_json: o.Json = False,
) -> None:
    """Requests, hit ratio, bytes, statuses and upstream time percentiles per domain."""
    params = rt.compact(timeframe=timeframe, start=start, end=end)
    rt.request(ctx, as_json, "GET", f"{CDN_PATH}/analytics", params=params,
               render=render_analytics)  # fmt: skip
