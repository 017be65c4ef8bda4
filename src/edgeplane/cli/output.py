"""Rendering: JSON documents for scripts, rich tables for people.

User data never goes through rich markup: every cell is a ``Text``, so a name such as
``[bold]x`` prints as written.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

Doc = dict[str, Any]
# A table column: its header and the dotted key of the value, or a function of the row.
Column = tuple[str, str | Callable[[Doc], Any]]

_ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")

_STAMPS = ("created_at", "updated_at")


def _width(stream: Any) -> int | None:
    """Piped output is not cut to 80 columns: tables take the width they need."""
    return None if stream.isatty() or "COLUMNS" in os.environ else 4096


stdout = Console(highlight=False, width=_width(sys.stdout))
stderr = Console(stderr=True, highlight=False, width=_width(sys.stderr))


def show(renderable: Any) -> None:
    """Print to stdout without the trailing blanks rich pads table cells with."""
    with stdout.capture() as captured:
        stdout.print(renderable)
    lines = captured.get().splitlines()
    sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
    sys.stdout.flush()


def print_json(doc: Any) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    stderr.print(Text.assemble(("error: ", "bold red"), message))


def note(message: str) -> None:
    """A hint for people, on stderr so that stdout stays the result."""
    stderr.print(Text(message, style="dim"))


def fmt(value: Any) -> str:
    """A compact, human form of one JSON value."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.10g}"
    if isinstance(value, str):
        m = _ISO_TIME.match(value)
        return f"{m.group(1)} {m.group(2)}" if m else value
    if isinstance(value, Mapping):
        return " ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "-"
    return str(value)


def pick(row: Doc, key: str | Callable[[Doc], Any]) -> Any:
    if callable(key):
        return key(row)
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def table(rows: Iterable[Doc], columns: Sequence[Column], *, title: str | None = None) -> None:
    """A compact table, one row per object; ``title`` names them when there are none."""
    out = Table(box=None, header_style="bold", pad_edge=False)
    for i, (header, _) in enumerate(columns):
        out.add_column(header, overflow="fold", no_wrap=i == 0)
    count = 0
    for row in rows:
        out.add_row(*(Text(fmt(pick(row, key))) for _, key in columns))
        count += 1
    if count:
        show(out)
    else:
        note(f"no {title or 'items'}")


def details(doc: Mapping[str, Any], *, title: str | None = None, skip: Iterable[str] = ()) -> None:
    """A key/value table of one object."""
    out = Table(title=title, box=None, show_header=False, pad_edge=False, title_justify="left")
    out.add_column(style="bold")
    out.add_column(overflow="fold")
    hidden = set(skip)
    # Timestamps last: what the object is matters more than when it changed.
    keys = sorted((k for k in doc if k not in hidden), key=lambda k: k in _STAMPS)
    for key in keys:
        out.add_row(Text(key), Text(fmt(doc[key])))
    show(out)


def capacity(report: Mapping[str, Any], *, title: str = "capacity") -> None:
    """Total, allocated and free resources, one row each."""
    dims = ("cpu", "memory", "storage")
    out = Table(title=title, box=None, header_style="bold", pad_edge=False, title_justify="left")
    for header in ("", "cpu", "memory GB", "storage GB"):
        out.add_column(header, justify="right")
    for row in ("total", "allocated", "free"):
        values = report.get(row) or {}
        out.add_row(Text(row, style="bold"), *(Text(fmt(values.get(d))) for d in dims))
    show(out)


def place(key: str = "location") -> Callable[[Doc], str]:
    """A column of a row's location with its parents: ``eu-central (eu, europe)``."""
    from edgeplane.model.regions import describe

    return lambda row: describe(
        str(row.get(key) or "-"), row.get("region_code"), row.get("region_type")
    )


def usage(dim: str) -> Callable[[Doc], str]:
    """A column of allocated/total in one dimension of a row's capacity."""
    return lambda row: f"{fmt(row['allocated'][dim])}/{fmt(row['capacity'][dim])}"


def with_capacity(doc: Doc, *, skip: Iterable[str] = ()) -> None:
    """An object's fields, then its capacity: total, allocated and free."""
    details(doc, skip=("capacity", "allocated", *skip))
    total, allocated = doc["capacity"], doc["allocated"]
    free = {k: total[k] - allocated.get(k, 0) for k in total}
    blank()
    capacity({"total": total, "allocated": allocated, "free": free})


def plain(text: str) -> None:
    """One line on stdout as it is: no styling, no wrapping (what ``-q`` prints)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def line(text: str, style: str | None = None) -> None:
    """One line of user data (never markup)."""
    show(Text(text, style=style or ""))


def blank() -> None:
    sys.stdout.write("\n")
