"""``edgeplane function``: the project's edge functions, JavaScript handlers the edge nodes run.

``deploy NAME FILE`` makes a new version (what it leaves out is the current version's) and
follows its rollout region by region, as ``edgeplane deploy`` does: one canary node first,
then every function-capable node. Exit codes as everywhere (``edgeplane.cli.runtime``), and 1
when the version failed, was cancelled or was still rolling out at ``--timeout``.

Secret values never go on the command line (they would show in ``ps`` and shell history):
``--secret NAME=env:VAR`` reads an environment variable, ``--secret NAME=file:PATH`` a file,
``--secret NAME`` alone prompts for it (hidden) on a terminal or reads standard input.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.deploy import RegionBars
from edgeplane.cli.function_logs import show_logs
from edgeplane.cli.output import Column, Doc

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

app = typer.Typer(
    help="Edge functions: JavaScript request handlers run by the edge nodes, and their versions.",
    no_args_is_help=True,
)

FN = f"{rt.BASE}/functions"
POLL_S = 0.2
ENDED = ("failed", "cancelled", "superseded")
_METHODS = re.compile(r"^[A-Za-z]+(,[A-Za-z]+)*$")

FUNCTION_COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("VERSION", lambda d: (d.get("current") or {}).get("version")),
    ("STATUS", lambda d: (d.get("current") or {}).get("status")),
    ("ACTIVE", "active_version"),
    ("ROUTES", lambda d: _routes((d.get("current") or {}).get("routes") or [])),
    ("UPDATED", "updated_at"),
]
VERSION_COLUMNS: list[Column] = [
    ("VERSION", "version"),
    ("STATUS", "status"),
    ("SHA256", lambda d: d["sha256"][:12]),
    ("SIZE", "size"),
    ("ROUTES", lambda d: _routes(d["routes"])),
    ("MESSAGE", "message"),
    ("CREATED", "created_at"),
]
PROGRESS_COLUMNS: list[Column] = [
    ("LOCATION", "region"),
    ("STATE", "state"),
    ("NODES", "nodes"),
    ("SERVING", "serving"),
    ("FAILED", "failed"),
]

Name = Annotated[str, typer.Argument(metavar="NAME", help="the function's name")]
Version = Annotated[int, typer.Argument(metavar="VERSION", help="a version number", min=1)]
Timeout = Annotated[float, typer.Option("--timeout", help="seconds to follow the rollout at most")]
Wait = Annotated[
    bool, typer.Option("--wait", help="follow the rollout until the version is active")
]


def _path(name: str, *rest: str) -> str:
    return "/".join([f"{FN}/{quote(name, safe='')}", *rest])


def _routes(routes: list[Doc]) -> str:
    return ", ".join(
        r["pattern"] + (f"@{','.join(r['methods'])}" if r.get("methods") else "") for r in routes
    )


# Option values ----------------------------------------------------------------------------


def parse_route(text: str) -> Doc:
    """``PATTERN[@METHOD,METHOD]`` as the API's route; BadParameter naming ``--route``."""
    from edgeplane.model.functions import split_pattern

    pattern, methods = text, ""
    head, at, tail = text.rpartition("@")
    if at and _METHODS.fullmatch(tail):
        pattern, methods = head, tail
    try:
        split_pattern(pattern)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--route") from None
    route: Doc = {"pattern": pattern}
    if methods:
        route["methods"] = [m.upper() for m in methods.split(",")]
    return route


def _secret_value(name: str, source: str, stdin_used: list[bool]) -> str:
    if source.startswith("env:"):
        var = source[4:]
        value = os.environ.get(var)
        if value is None:
            raise typer.BadParameter(
                f"{name}: the environment variable {var!r} is not set", param_hint="--secret"
            )
        return value
    if source.startswith("file:"):
        path = Path(source[5:]).expanduser()
        try:
            return path.read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise typer.BadParameter(
                f"{name}: cannot read {path}: {reason}", param_hint="--secret"
            ) from None
    if source:
        raise typer.BadParameter(
            f"{name}: give NAME=env:VAR, NAME=file:PATH or NAME alone (prompted, or read from "
            "standard input); a value on the command line would show in ps and shell history",
            param_hint="--secret",
        )
    if sys.stdin.isatty():
        return str(typer.prompt(f"Value of secret {name}", hide_input=True))
    if stdin_used[0]:
        raise typer.BadParameter(
            f"{name}: standard input holds one value only (use env: or file: for the others)",
            param_hint="--secret",
        )
    stdin_used[0] = True
    return sys.stdin.read().rstrip("\r\n")


def parse_secrets(
    values: list[str] | None, removed: list[str] | None, code_from_stdin: bool
) -> Doc:
    out: Doc = {}
    stdin_used = [code_from_stdin]
    for item in values or ():
        name, _, source = item.partition("=")
        if not name.strip():
            raise typer.BadParameter(f"{item!r}: no name", param_hint="--secret")
        out[name.strip()] = _secret_value(name.strip(), source, stdin_used)
    for name in removed or ():
        out[name.strip()] = None
    return out


def _read_code(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    path = Path(file)
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        rt.fail(f"FILE: cannot read {path}: {reason}", 2)


# Rendering --------------------------------------------------------------------------------


def render_version(doc: Doc) -> None:
    output.details(
        {
            "name": doc["name"],
            "version": doc["version"],
            "id": doc["id"],
            "status": doc["status"],
            "sha256": doc["sha256"],
            "size": doc["size"],
            "routes": _routes(doc["routes"]),
            "env": ", ".join(f"{k}={v}" for k, v in sorted(doc["env"].items())) or None,
            "secrets": ", ".join(doc["secrets"]) or None,
            "timeout ms": doc["limits"]["timeout_ms"],
            "memory mb": doc["limits"]["memory_mb"],
            "check path": doc.get("check_path"),
            "message": doc.get("message"),
            "regions": doc.get("regions"),
            "canary node": doc.get("canary_node"),
            "reactivates": doc.get("reactivates"),
            "error": doc.get("error"),
            "activated": doc.get("activated_at"),
            "finished": doc.get("finished_at"),
            "created_at": doc["created_at"],
        }
    )
    if doc.get("progress"):
        output.blank()
        output.table(doc["progress"], PROGRESS_COLUMNS, title="regions")


def render_function(doc: Doc) -> None:
    output.details(
        {
            "name": doc["name"],
            "active version": doc.get("active_version"),
            "versions": doc["versions"],
            "created_at": doc["created_at"],
            "updated_at": doc["updated_at"],
        }
    )
    if doc.get("current"):
        output.blank()
        output.line("current version", "bold")
        render_version(doc["current"])


def _summary(v: Doc) -> str:
    nodes = sum(p["nodes"] for p in v.get("progress") or ())
    served = f" on {nodes} node{'s' if nodes != 1 else ''}" if nodes else ""
    return (
        f"function {v['name']} version {v['version']} {v['status']}{served} "
        f"({v['id']}, sha256 {v['sha256'][:12]}, routes {_routes(v['routes'])})"
    )


def render_deployed(doc: Doc) -> None:
    v = doc["version"]
    if not doc.get("created", True):
        output.line(f"unchanged: {_summary(v)}")
        return
    output.line(_summary(v), "green" if v["status"] == "active" else None)
    if v["status"] == "canary" and v.get("canary_node"):
        output.note(f"canary node {v['canary_node']}; then the rest of the regions")


# Following a rollout ----------------------------------------------------------------------


def _bars_doc(v: Doc) -> Doc:
    """A version as ``RegionBars`` draws a deployment (``active``: the nodes serving it)."""
    return {**v, "progress": [{**p, "active": p["serving"]} for p in v.get("progress") or ()]}


async def follow(c: Client, v: Doc, timeout: float, *, show: bool) -> tuple[Doc, bool]:
    """Poll a version until it is active, ended or ``timeout``: (its last state, timed out)."""
    deadline = time.monotonic() + timeout
    with RegionBars(show) as bars:
        while True:
            bars.update(_bars_doc(v))
            if v["status"] == "active" or v["status"] in ENDED:
                return v, False
            if time.monotonic() >= deadline:
                return v, True
            await asyncio.sleep(POLL_S)
            doc = await c.request("GET", _path(v["name"], "versions", str(v["version"])))
            v = {k: val for k, val in doc.items() if k != "code"}


def finish(doc: Doc, timed_out: bool, timeout: float, as_json: bool) -> None:
    """The answer of a command that waited: the summary, or the failure and exit code 1."""
    v = doc["version"]
    rt.emit(doc, as_json, render_deployed, key="version.id")
    status = v["status"]
    if status == "active" or (status == "superseded" and v.get("activated_at")):
        return
    if timed_out:
        rt.fail(
            f"function {v['name']} version {v['version']} is still {status} after {timeout:g}s; "
            f"it goes on: follow it with `edgeplane function show {v['name']}`",
            1,
        )
    rt.fail(
        f"function {v['name']} version {v['version']} {status}: "
        f"{v.get('error') or 'no reason given'}",
        1,
    )


def _act(
    ctx: typer.Context, method: str, path: str, body: Any, *, wait: bool, timeout: float,
    as_json: bool,
) -> None:  # fmt: skip
    """A request that answers ``FunctionDeployed``, followed with ``wait``."""
    if timeout <= 0:
        rt.fail("--timeout: must be a positive number of seconds", 2)

    async def run(c: Client) -> tuple[Doc, bool]:
        doc = await c.request(method, path, json=body)
        if not wait:
            return doc, False
        last, timed_out = await follow(c, doc["version"], timeout, show=not as_json)
        return {**doc, "version": last}, timed_out

    doc, timed_out = rt.call(ctx, run)
    if wait:
        finish(doc, timed_out, timeout, as_json)
    else:
        rt.emit(doc, as_json, render_deployed, key="version.id")


# Commands ---------------------------------------------------------------------------------


@app.command("deploy")
def deploy(
    ctx: typer.Context,
    name: Name,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="the function's module (.js); - reads stdin")
    ],
    route: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            help="HOST/PATH or HOST/PATH@METHOD,METHOD: shop.example.com/api/*@GET,POST or "
            "*/hello "
            "(HOST: a domain of the project or * for all; a trailing * matches a prefix); "
            "repeatable; required the first time, else the current routes are kept",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="KEY=VALUE, repeatable (replaces the current env)"),
    ] = None,
    clear_env: Annotated[
        bool, typer.Option("--clear-env", help="the new version has no env variable")
    ] = False,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="NAME=env:VAR, NAME=file:PATH, or NAME alone (prompted on a terminal, else "
            "read from stdin); repeatable; other secrets are kept",
        ),
    ] = None,
    remove_secret: Annotated[
        list[str] | None, typer.Option("--remove-secret", help="NAME: remove that secret")
    ] = None,
    timeout_ms: Annotated[
        int | None, typer.Option("--timeout-ms", help="time limit of one invocation (1-60000)")
    ] = None,
    memory_mb: Annotated[
        int | None, typer.Option("--memory-mb", help="memory limit, MiB (8-1024)")
    ] = None,
    check_path: Annotated[
        str | None,
        typer.Option("--check-path", help="a path each node requests after loading; '' removes"),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="what changed")] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="return once the version is created")
    ] = False,
    timeout: Timeout = 120.0,
    as_json: o.Json = False,
) -> None:
    """Deploy a new version of a function and follow its rollout (a canary node first).

    What is left out is kept from the current version (routes, env, secrets, limits...).

    Secret values never go on the command line (ps, shell history): see --secret.
    """
    if timeout <= 0:
        rt.fail("--timeout: must be a positive number of seconds", 2)
    routes = [parse_route(r) for r in route] if route else None
    if clear_env and env:
        rt.fail("--clear-env: not with --env (--env replaces the whole env already)", 2)
    variables = rt.pairs(env, "--env") if env else ({} if clear_env else None)
    secrets = parse_secrets(secret, remove_secret, code_from_stdin=file == "-")
    code = _read_code(file)
    limits = rt.compact(timeout_ms=timeout_ms, memory_mb=memory_mb)
    body = rt.compact(
        code=code,
        routes=routes,
        env=variables,
        secrets=secrets or None,
        limits=limits or None,
        check_path=check_path,
        message=message,
    )
    show = not as_json

    async def run(c: Client) -> tuple[Doc, bool]:
        doc = await c.request("PUT", _path(name), json=body)
        if no_wait:
            return doc, False
        last, timed_out = await follow(c, doc["version"], timeout, show=show)
        return {**doc, "version": last}, timed_out

    doc, timed_out = rt.call(ctx, run)
    if no_wait:
        rt.emit(doc, as_json, render_deployed, key="version.id")
        return
    finish(doc, timed_out, timeout, as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    cursor: Annotated[str | None, typer.Option("--cursor", help="the next page")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="every page")] = False,
    as_json: o.Json = False,
) -> None:
    """The project's functions and their current versions."""
    rt.listing(ctx, as_json, FN, FUNCTION_COLUMNS, title="functions",
               params=rt.compact(cursor=cursor), all_pages=all_pages)  # fmt: skip


@app.command("show")
def show(ctx: typer.Context, name: Name, as_json: o.Json = False) -> None:
    """A function and its current version, with its progress per region."""
    rt.request(ctx, as_json, "GET", _path(name), render=render_function)


@app.command("versions")
def versions(
    ctx: typer.Context,
    name: Name,
    limit: Annotated[int | None, typer.Option("--limit", help="at most (1-1000)")] = None,
    cursor: Annotated[str | None, typer.Option("--cursor", help="the next page")] = None,
    as_json: o.Json = False,
) -> None:
    """The function's versions, newest first."""
    rt.listing(ctx, as_json, _path(name, "versions"), VERSION_COLUMNS, title=f"{name} versions",
               params=rt.compact(limit=limit, cursor=cursor))  # fmt: skip


@app.command("code")
def code(
    ctx: typer.Context,
    name: Name,
    version: Annotated[
        int | None,
        typer.Argument(metavar="[VERSION]", help="a version (default: the current one)", min=1),
    ] = None,
) -> None:
    """Print a version's code (default: the current version's)."""

    async def run(c: Client) -> str:
        number = version
        if number is None:
            fn = await c.request("GET", _path(name))
            if not fn.get("current"):
                rt.fail(f"function {name!r} has no current version: name one")
            number = int(fn["current"]["version"])
        doc = await c.request("GET", _path(name, "versions", str(number)))
        return str(doc["code"])

    text = rt.call(ctx, run)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("rollback")
def rollback(
    ctx: typer.Context, name: Name, wait: Wait = False, timeout: Timeout = 120.0,
    as_json: o.Json = False,
) -> None:  # fmt: skip
    """Activate the version that was active before the current one (a new version)."""
    _act(ctx, "POST", _path(name, "rollback"), None, wait=wait, timeout=timeout, as_json=as_json)


@app.command("activate")
def activate(
    ctx: typer.Context, name: Name, version: Version, wait: Wait = False,
    timeout: Timeout = 120.0, as_json: o.Json = False,
) -> None:  # fmt: skip
    """Make an earlier version that was active current again, on every node at once."""
    _act(ctx, "POST", _path(name, "versions", str(version), "activate"), None, wait=wait,
         timeout=timeout, as_json=as_json)  # fmt: skip


@app.command("delete")
def delete(ctx: typer.Context, name: Name, as_json: o.Json = False) -> None:
    """Remove a function and all its versions (the nodes drop it)."""
    rt.delete(ctx, as_json, _path(name), "function", name)


@app.command("check")
def check(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="a module (.js); - reads stdin")],
    as_json: o.Json = False,
) -> None:
    """Check that a module compiles as a function (exit 1 when not, with line and column)."""
    code = _read_code(file)
    doc = rt.call(ctx, lambda c: c.request("POST", f"{FN}/check", json={"code": code}))
    if as_json:
        output.print_json(doc)
    elif doc["ok"]:
        output.line(f"{file}: ok", "green")
    if not doc["ok"]:
        where = ":".join(str(x) for x in (doc.get("line"), doc.get("column")) if x is not None)
        rt.fail(f"{file}{':' + where if where else ''}: {doc['message']}", 1)


# At work ---------------------------------------------------------------------------------------


@app.command("logs")
def logs(
    ctx: typer.Context,
    name: Name,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="then print new lines as they come, until Ctrl-C"),
    ] = False,
    level: Annotated[
        str | None,
        typer.Option("--level", help="this level and above: debug, log, info, warn, error"),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="how many of the latest lines")
    ] = 100,
    as_json: o.Json = False,
) -> None:
    """The function's console lines from every edge node (console.log and the like, its
    exceptions and limits), oldest first: time, node, version, level, message."""
    show_logs(ctx, name, level=level, limit=limit, follow=follow, as_json=as_json)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


METRIC_COLUMNS: list[Column] = [
    ("REGION", "region"),
    ("INVOCATIONS", "invocations"),
    ("ERRORS", "error_count"),
    ("ERROR RATE", lambda d: _pct(d.get("error_rate"))),
    ("EXCEPTION", lambda d: d["errors"].get("exception", 0)),
    ("TIMEOUT", lambda d: d["errors"].get("timeout", 0)),
    ("MEMORY", lambda d: d["errors"].get("memory", 0)),
    ("UNAVAILABLE", lambda d: d["errors"].get("unavailable", 0)),
    ("P50 MS", lambda d: _ms(d.get("p50_ms"))),
    ("P95 MS", lambda d: _ms(d.get("p95_ms"))),
    ("P99 MS", lambda d: _ms(d.get("p99_ms"))),
]


def render_metrics(doc: Doc) -> None:
    rows = [*doc["regions"], {**doc["total"], "region": "(all)"}]
    output.table(rows, METRIC_COLUMNS, title=f"invocations of {doc['function']}")


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    name: Name,
    since: Annotated[str, typer.Option("--since", help="15m, 1h, 6h, 24h, 7d, 30d")] = "1h",
    region: Annotated[
        str | None, typer.Option("--region", help="a location, region code or region type")
    ] = None,
    as_json: o.Json = False,
) -> None:
    """The function's invocations per region and in total: errors by outcome, error rate,
    p50 / p95 / p99 duration."""
    rt.request(ctx, as_json, "GET", _path(name, "metrics"),
               params=rt.compact(since=since, region=region), render=render_metrics)  # fmt: skip
