"""``edgeplane dns``: the records of a domain's zone, served by every edge node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

app = typer.Typer(help="DNS records of a domain's zone (answered by every edge node).")

DomainArg = Annotated[str, typer.Argument(metavar="DOMAIN", help="the zone (a domain added)")]
COLUMNS: list[Column] = [
    ("NAME", "name"),
    ("TYPE", "type"),
    ("TTL", "ttl"),
    ("VALUES", lambda r: "(edge, geo-routed)" if r["proxied"] else "\n".join(r["values"])),
    ("MANAGED", lambda r: "yes" if r["managed"] else ""),
]


def _path(domain: str) -> str:
    return f"{rt.BASE}/domains/{domain}/records"


def _render(doc: Doc) -> None:
    output.table(doc["records"], COLUMNS, title=f"{doc['domain']} (serial {doc['serial']})")


@app.command("list")
def list_(ctx: typer.Context, domain: DomainArg, as_json: o.Json = False) -> None:
    """The zone's records, with those Edgeplane manages (SOA, NS, verification)."""
    rt.request(ctx, as_json, "GET", _path(domain), render=_render)


@app.command("set")
def set_(
    ctx: typer.Context,
    domain: DomainArg,
    name: Annotated[str, typer.Argument(help="'@' for the apex, 'www', '*.api', ...")],
    rtype: Annotated[
        str, typer.Argument(metavar="TYPE", help="A AAAA CNAME TXT MX NS SRV CAA ALIAS")
    ],
    values: Annotated[list[str] | None, typer.Argument(help="the values")] = None,
    ttl: Annotated[int, typer.Option("--ttl", help="seconds")] = 30,
    proxied: Annotated[
        bool, typer.Option("--proxied", help="A/AAAA answered by the nearest edge nodes")
    ] = False,
    as_json: o.Json = False,
) -> None:
    """Set one record (replacing the record of that name and type)."""
    record = {
        "name": name,
        "type": rtype.upper(),
        "ttl": ttl,
        "values": list(values or []),
        "proxied": proxied,
    }
    rt.request(ctx, as_json, "PATCH", _path(domain), body={"set": [record]}, render=_render)


@app.command("delete")
def delete(
    ctx: typer.Context,
    domain: DomainArg,
    name: Annotated[str, typer.Argument(help="the record's name")],
    rtype: Annotated[str, typer.Argument(metavar="TYPE", help="the record's type")],
    as_json: o.Json = False,
) -> None:
    """Delete one record."""
    body = {"delete": [{"name": name, "type": rtype.upper()}]}
    rt.request(ctx, as_json, "PATCH", _path(domain), body=body, render=_render)


def _load(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        rt.fail(f"{path}: {exc.strerror or exc}", 2)
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        rt.fail(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}", 2)


@app.command("apply")
def apply(
    ctx: typer.Context,
    domain: DomainArg,
    file: Annotated[
        Path, typer.Argument(help="YAML or JSON: a list of records, or {records: [...]}")
    ],
    as_json: o.Json = False,
) -> None:
    """Replace every record of the zone with those of FILE (all or nothing)."""
    doc = _load(file)
    records = doc.get("records") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        rt.fail(f"{file}: expected a list of records or a 'records' list", 2)
    rt.request(ctx, as_json, "PUT", _path(domain), body={"records": records}, render=_render)
