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


# Asking a DNS server ----------------------------------------------------------------------


def _server(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare address (port 53)."""
    import ipaddress

    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
        if not 1 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not ADDRESS[:PORT] (an IP address, e.g. 127.0.0.1:8053)",
            param_hint="--server",
        ) from None
    return str(address), number


def _rrsets(section: Any) -> list[Doc]:
    return [
        {"name": rrset.name.to_text(), "ttl": rrset.ttl, "type": _type_text(rrset.rdtype),
         "value": rdata.to_text()}
        for rrset in section
        for rdata in rrset
    ]  # fmt: skip


def _type_text(rdtype: int) -> str:
    import dns.rdatatype

    return dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]


def _render_answer(doc: Doc) -> None:
    ecs = doc.get("ecs")
    scope = f"; ECS {ecs['subnet']} scope /{ecs['scope']}" if ecs else ""
    output.note(
        f";; {doc['server']} answered {doc['rcode']} in {doc['elapsed_ms']} ms, "
        f"flags: {' '.join(doc['flags'])}{scope}"
    )
    records = doc["answer"] or doc["authority"]
    if not doc["answer"]:
        output.note(f";; no {doc['type']} record; authority:" if records else ";; no records")
    for r in records:
        output.plain(f"{r['name']}\t{r['ttl']}\tIN\t{r['type']}\t{r['value']}")


@app.command("query")
def query(
    name: Annotated[str, typer.Argument(metavar="NAME", help="the name to look up")],
    rdtype: Annotated[
        str, typer.Argument(metavar="TYPE", help="A (default), AAAA, MX, TXT, NS, SOA, CAA, ...")
    ] = "A",
    server: Annotated[
        str,
        typer.Option("--server", "-s", help="the DNS server, ADDRESS[:PORT] (`up`'s own node)"),
    ] = "127.0.0.1:8053",
    subnet: Annotated[
        str | None,
        typer.Option(
            "--subnet", help="ask as a client in this network (EDNS Client Subnet), 81.2.69.0/24"
        ),
    ] = None,
    tcp: Annotated[bool, typer.Option("--tcp", help="over TCP instead of UDP")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds")] = 3.0,
    as_json: o.Json = False,
) -> None:
    """Ask a DNS server (by default the local edge node's) for NAME's records, like
    `dig @127.0.0.1 -p 8053 NAME TYPE +subnet=...`. Exit 1 unless it answers NOERROR."""
    import ipaddress
    import time

    import dns.edns
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdatatype

    address, port = _server(server)
    try:
        qname = dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise typer.BadParameter(f"{name!r}: {exc}", param_hint="NAME") from None
    try:
        qtype = dns.rdatatype.from_text(rdtype.upper())
    except dns.exception.DNSException:
        raise typer.BadParameter(f"{rdtype!r} is not a record type", param_hint="TYPE") from None
    options: list[dns.edns.Option] = []
    network = None
    if subnet is not None:
        try:
            network = ipaddress.ip_network(subnet.strip(), strict=False)
        except ValueError:
            raise typer.BadParameter(
                f"{subnet!r} is not a network such as 81.2.69.0/24", param_hint="--subnet"
            ) from None
        options.append(dns.edns.ECSOption(str(network.network_address), network.prefixlen))
    message = dns.message.make_query(qname, qtype, use_edns=0, options=options)
    started = time.monotonic()
    try:
        ask = dns.query.tcp if tcp else dns.query.udp
        answer = ask(message, address, port=port, timeout=timeout)
    except (dns.exception.Timeout, OSError) as exc:
        why = "no answer" if isinstance(exc, dns.exception.Timeout) else str(exc)
        rt.fail(f"{address}:{port}: {why} within {timeout:g} s", 3)
    elapsed = round((time.monotonic() - started) * 1000, 1)
    ecs = None
    for option in answer.options:
        if isinstance(option, dns.edns.ECSOption):
            ecs = {"subnet": f"{option.address}/{option.srclen}", "scope": option.scopelen}
    doc = {
        "server": f"{address}:{port}",
        "name": qname.to_text(),
        "type": dns.rdatatype.to_text(qtype),
        "rcode": dns.rcode.to_text(answer.rcode()),
        "flags": dns.flags.to_text(answer.flags).lower().split(),
        "elapsed_ms": elapsed,
        "ecs": ecs,
        "answer": _rrsets(answer.answer),
        "authority": _rrsets(answer.authority),
    }
    rt.emit(doc, as_json, _render_answer)
    if answer.rcode() != dns.rcode.NOERROR:
        raise typer.Exit(1)
