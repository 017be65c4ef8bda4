"""``edgeplane logs DOMAIN``: the latest requests the edge served for a domain;
``edgeplane logs --function NAME``: the latest console lines of an edge function.

The lines are printed oldest first, the newest last (as ``tail`` does). ``--follow`` then asks
every second for the lines that arrived since (``?after=``) and prints them as they come, until
Ctrl-C; with ``--json`` each line is one JSON object on a line of its own (without
``--follow``, ``--json`` prints the API's document: newest first). ``follow`` is that loop,
for any page of lines with ``next_after`` (``edgeplane function logs`` uses it too).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.follow import tail
from edgeplane.cli.function_logs import show_logs
from edgeplane.cli.output import Column, Doc

if TYPE_CHECKING:
    pass


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


COLUMNS: list[Column] = [
    ("TIME", "at"),
    ("NODE", "node"),
    ("STATUS", "status"),
    ("METHOD", "method"),
    ("PATH", "path"),
    ("CACHE", "cache"),
    ("MS", lambda r: _ms(r.get("request_ms"))),
    ("BYTES", "bytes_sent"),
    ("CLIENT", "client"),
]
# While following: fixed widths, the header once (a table per poll would realign each time).
WIDTHS = (19, 12, 6, 7, 40, 7, 7, 9, 0)


def _line(values: list[str]) -> str:
    cells = [v.ljust(w) if w else v for v, w in zip(values, WIDTHS, strict=True)]
    return " ".join(cells).rstrip()


def _fixed(row: Doc) -> str:
    return _line([output.fmt(output.pick(row, key)) for _, key in COLUMNS])


def _print(lines: list[Doc], as_json: bool, header: bool) -> None:
    if as_json:
        for row in lines:
            output.plain(json.dumps(row, ensure_ascii=False))
        return
    if header:
        output.plain(_line([name for name, _ in COLUMNS]))
    for row in lines:
        output.plain(_fixed(row))


def logs(
    ctx: typer.Context,
    domain: Annotated[
        str | None, typer.Argument(metavar="DOMAIN", help="a domain of the project")
    ] = None,
    function: Annotated[
        str | None,
        typer.Option("--function", metavar="NAME", help="an edge function's console instead"),
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="a status code (404) or a class (5xx)")
    ] = None,
    path: Annotated[
        str | None,
        typer.Option("--path", help="paths that start with this (query string included)"),
    ] = None,
    client: Annotated[
        str | None,
        typer.Option("--client", help="a client address or a network (10.0.0.0/8)"),
    ] = None,
    cache: Annotated[
        str | None, typer.Option("--cache", help="a cache status: HIT, MISS, BYPASS, ...")
    ] = None,
    level: Annotated[
        str | None,
        typer.Option(
            "--level", help="with --function: this level and above (debug, log, info, warn, error)"
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="how many of the latest lines")
    ] = 100,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="then print new lines as they come, until Ctrl-C"),
    ] = False,
    as_json: o.Json = False,
) -> None:
    """The latest requests the edge served for DOMAIN (kept 7 days, 10,000 per domain by
    default): time, node, status, method, path, cache status, time in ms, bytes, client. With
    --function NAME instead of DOMAIN: the function's console lines (as `edgeplane function
    logs NAME`)."""
    if (domain is None) == (function is None):
        rt.fail("give a DOMAIN or --function NAME (exactly one of them)", 2)
    if function is not None:
        given = [f"--{k}" for k, v in (("status", status), ("path", path), ("client", client),
                                       ("cache", cache)) if v is not None]  # fmt: skip
        if given:
            rt.fail(f"{', '.join(given)}: for a DOMAIN's requests, not with --function", 2)

        show_logs(ctx, function, level=level, limit=limit, follow=follow, as_json=as_json)
        return
    assert domain is not None
    if level is not None:
        rt.fail("--level: for a function's console (--function NAME), not a DOMAIN's requests", 2)
    url = f"{rt.BASE}/domains/{quote(domain, safe='')}/logs"
    params: dict[str, Any] = rt.compact(
        status=status, path_prefix=path, client=client, cache=cache, limit=limit
    )
    if not follow:
        doc = rt.call(ctx, lambda c: c.request("GET", url, params=params))
        if as_json:
            output.print_json(doc)
        else:
            output.table(list(reversed(doc["lines"])), COLUMNS, title=f"requests of {domain}")
        return
    tail(ctx, url, params, "lines", lambda lines, header: _print(lines, as_json, header))
