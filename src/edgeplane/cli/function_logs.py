"""A function's console lines for people: the table, the fixed-width lines while following
(``edgeplane function logs``, ``edgeplane logs --function``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import typer

from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.follow import tail
from edgeplane.cli.output import Column, Doc

FN = f"{rt.BASE}/functions"


def logs_path(name: str) -> str:
    return f"{FN}/{quote(name, safe='')}/logs"


LOG_COLUMNS: list[Column] = [
    ("TIME", "at"),
    ("NODE", "node"),
    ("VERSION", "version"),
    ("LEVEL", "level"),
    ("MESSAGE", "message"),
]
LOG_WIDTHS = (19, 12, 7, 5, 0)  # while following: fixed widths, the header once
LEVELS = ("debug", "log", "info", "warn", "error")


def _log_line(values: list[str]) -> str:
    cells = [v.ljust(w) if w else v for v, w in zip(values, LOG_WIDTHS, strict=True)]
    return " ".join(cells).rstrip()


def _print_logs(lines: list[Doc], as_json: bool, header: bool) -> None:
    if as_json:
        for row in lines:
            output.plain(json.dumps(row, ensure_ascii=False))
        return
    if header:
        output.plain(_log_line([name for name, _ in LOG_COLUMNS]))
    for row in lines:
        output.plain(_log_line([output.fmt(output.pick(row, key)) for _, key in LOG_COLUMNS]))


def show_logs(
    ctx: typer.Context, name: str, *, level: str | None, limit: int, follow: bool, as_json: bool
) -> None:
    """A function's console lines, oldest first (``--follow``: then as they come)."""
    if level is not None and level not in LEVELS:
        rt.fail(f"--level: one of {', '.join(LEVELS)}", 2)
    url = logs_path(name)
    params: dict[str, Any] = rt.compact(level=level, limit=limit)
    if not follow:
        doc = rt.call(ctx, lambda c: c.request("GET", url, params=params))
        if as_json:
            output.print_json(doc)
        else:
            output.table(
                list(reversed(doc["items"])), LOG_COLUMNS, title=f"console lines of {name}"
            )
        return
    tail(ctx, url, params, "items", lambda lines, header: _print_logs(lines, as_json, header))
