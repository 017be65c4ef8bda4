"""``domains``: the project's domains, their switches and their DNS records.

An item is what a user configures for a domain: its environment, DNSSEC on or off, the lock
against deletion, and the zone's ``records`` (RRsets, as ``PUT /domains/{domain}/records``
takes them, in a canonical order: by name, type and values). Ownership verification is not
configuration: a domain the file adds gets what ``domain add`` gives it (a reserved name such
as ``.test`` is verified at once and gets its internal certificate; any other waits for
``edgeplane domain verify``), and neither its state nor its method is in the file. The
environment cannot change in place: a change replaces the domain (deleted and added again:
its certificates go, a public name is verified again), and the plan warns of it.

The records are the user's only: the edge adds to every zone its SOA, the apex NS records
naming the edge nodes with their glue addresses (``ns-<node>``), the verification TXT
(``_edgeplane-challenge``) and, while an order runs, ACME DNS-01 answers
(``_acme-challenge``). Those are never in the file; a record of the file at one of those
names is warned of. The apex and ``www`` records and the CAA record ``domain add`` makes
with ``auto_configure`` are ordinary records the user may change, so they are in the file;
an item without ``records`` asks for exactly those (none with ``auto_configure: false``).
``auto_configure`` only chooses that default: it is not compared.
"""

from __future__ import annotations

import ipaddress
import weakref
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from edgeplane.iac.kind import Context, Item, Kind, changed_fields
from edgeplane.model.common import Bool, Input
from edgeplane.model.dns_records import DNSRecord, canonical_record, check_rrsets
from edgeplane.model.domains import DomainCreate, DomainName, DomainUpdate, is_reserved
from edgeplane.model.enums import Environment
from edgeplane.services import dns_records, domains, verification
from edgeplane.settings import Settings
from edgeplane.snapshot.zones import ns_label
from edgeplane.store.db import Tx
from edgeplane.store.domains import ACTIVE
from edgeplane.store.monitoring_tables import EdgeAnalyticsHourRow
from edgeplane.store.tables import DNSRecordRow, DomainRow, EdgeAnalyticsRow, EdgeNodeRow, utcnow

ACME_LABEL = "_acme-challenge"
TRAFFIC_WINDOW = timedelta(hours=24)


class DomainItem(Input):
    """A domain of the project (``DomainCreate``'s settings) with its zone's records."""

    name: DomainName
    environment: Environment = Environment.PROD
    dnssec: Bool = Field(False, description="sign the zone (DS records in the domain status)")
    locked: Bool = Field(False, description="refuse deletion until unlocked")
    auto_configure: Bool = Field(
        True,
        description="without records: the apex and www answered by the edge and a CAA record "
        "for the CA, as `domain add` makes them (false: no records); used when records is left "
        "out, never compared",
    )
    records: list[DNSRecord] | None = Field(
        None, description="the zone's records (RRsets); default: as auto_configure says"
    )


def _record(name: str, rtype: str, ttl: int, values: Any, proxied: bool) -> Item:
    return {
        "name": name,
        "type": rtype,
        "ttl": int(ttl),
        "values": sorted(values or ()),
        "proxied": bool(proxied),
    }


def _sorted(records: list[Item]) -> list[Item]:
    return sorted(records, key=lambda r: (r["name"], r["type"], r["values"]))


def default_records(settings: Settings) -> list[DNSRecord]:
    """What ``domain add`` gives a zone with ``auto_configure`` (``services.domains``)."""
    issuer = settings.caa_issuer
    return [
        DNSRecord(name="@", type="A", proxied=True),
        DNSRecord(name="www", type="A", proxied=True),
        DNSRecord(
            name="@",
            type="CAA",
            values=[f'0 issue "{issuer}"', f'0 issuewild "{issuer}"'],
        ),
    ]


def _item(row: DomainRow, records: list[Item]) -> Item:
    return {
        "name": row.name,
        "environment": row.environment,
        "dnssec": bool(row.dnssec),
        "locked": bool(row.locked),
        "records": _sorted(records),
    }


def _is_ip(address: str | None) -> bool:
    try:
        ipaddress.ip_address((address or "").strip("[]"))
    except ValueError:
        return False
    return True


_GLUE: weakref.WeakKeyDictionary[Tx, set[str]] = weakref.WeakKeyDictionary()


def _glue_labels(ctx: Context) -> set[str]:
    """The owner names (relative) of the edge's name servers' glue in every zone
    (``snapshot.zones.nameservers``: a node with an IP address), read once a transaction."""
    labels = _GLUE.get(ctx.tx)
    if labels is None:
        rows = ctx.tx.session.execute(select(EdgeNodeRow.name, EdgeNodeRow.address))
        labels = _GLUE[ctx.tx] = {ns_label(name) for name, address in rows if _is_ip(address)}
    return labels


def _records(zone: str, given: list[DNSRecord]) -> list[Item]:
    """The records validated and canonical as the service stores them (owners relative to
    the zone, values in presentation form and sorted), errors at ``records[i]``."""
    checked = [canonical_record(zone, r, f"records[{i}]") for i, r in enumerate(given)]
    check_rrsets(checked, "records")
    return _sorted([_record(r.name, r.type, r.ttl, r.values, r.proxied) for r in checked])


def requests_served(ctx: Context, domain: str) -> int:
    """The requests the edge answered for ``domain`` in the last day (per-minute rows, else
    the hourly roll-ups when the minutes are gone)."""
    tx = ctx.tx
    since = utcnow() - TRAFFIC_WINDOW
    minutes = tx.session.scalar(
        select(func.coalesce(func.sum(EdgeAnalyticsRow.requests), 0)).where(
            EdgeAnalyticsRow.project_id == tx.project,
            EdgeAnalyticsRow.domain == domain,
            EdgeAnalyticsRow.minute >= since,
        )
    )
    if minutes:
        return int(minutes)
    hours = tx.session.scalar(
        select(func.coalesce(func.sum(EdgeAnalyticsHourRow.requests), 0)).where(
            EdgeAnalyticsHourRow.project_id == tx.project,
            EdgeAnalyticsHourRow.domain == domain,
            EdgeAnalyticsHourRow.hour >= since - timedelta(hours=1),
        )
    )
    return int(hours or 0)


class Domains(Kind):
    section = "domains"
    noun = "domain"
    key = "name"
    item = DomainItem
    fixed = frozenset({"environment"})
    audit_kinds = frozenset({domains.KIND, dns_records.KIND, verification.KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        rows = list(
            tx.session.scalars(
                select(DomainRow).where(DomainRow.project_id == tx.project).order_by(DomainRow.name)
            )
        )
        records: dict[str, list[Item]] = {row.name: [] for row in rows}
        if rows:
            q = (
                select(DNSRecordRow)
                .join(DomainRow, DomainRow.name == DNSRecordRow.domain)
                .where(DomainRow.project_id == tx.project)
            )
            for r in tx.session.scalars(q):
                records[r.domain].append(_record(r.name, r.type, r.ttl, r.values, r.proxied))
        return [_item(row, records[row.name]) for row in rows]

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        assert isinstance(item, DomainItem)
        given = item.records
        if given is None:
            given = default_records(ctx.settings) if item.auto_configure else []
        return {
            "name": item.name,
            "environment": item.environment.value,
            "dnssec": item.dnssec,
            "locked": item.locked,
            "records": _records(item.name, given),
        }

    def create(self, ctx: Context, item: Item) -> None:
        """``domain add`` (verified at once when reserved, as the API does), with
        ``auto_configure`` when the file's records are the ones it makes, then the records."""
        name = item["name"]
        auto = item["records"] == _records(name, default_records(ctx.settings))
        spec = DomainCreate(
            domain=name,
            environment=Environment(item["environment"]),
            dnssec=item["dnssec"],
            locked=item["locked"],
            auto_configure=auto,
        )
        domains.add(ctx.tx, spec, ctx.settings)
        if not auto and item["records"]:
            self._put_records(ctx, item)

    def _put_records(self, ctx: Context, item: Item) -> None:
        # ``replace_records`` writes nothing when the zone already holds exactly these.
        dns_records.store_records(ctx.tx, item["name"], {"records": item["records"]})

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        patch = changed_fields(before, after)
        switches = {k: patch[k] for k in ("dnssec", "locked") if k in patch}
        if switches:
            domains.update(ctx.tx, after["name"], DomainUpdate(**switches))
        if "records" in patch:
            self._put_records(ctx, after)

    def delete(self, ctx: Context, item: Item) -> None:
        domains.delete(ctx.tx, item["name"])

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        out: list[str] = []
        if action in ("delete", "replace") and before is not None:
            out += self._serving(ctx, before["name"], action)
        if after is not None:
            out += self._collisions(ctx, after)
        if (
            action == "update"
            and before is not None
            and after is not None
            and before["dnssec"]
            and not after["dnssec"]
        ):
            out.append(
                "DNSSEC is turned off: remove the DS records at the registrar first, or "
                "validating resolvers fail to resolve the domain"
            )
        return out

    def _serving(self, ctx: Context, name: str, action: str) -> list[str]:
        row = ctx.tx.session.get(DomainRow, name)
        out = []
        served = requests_served(ctx, name)
        if served:
            out.append(
                f"the domain serves traffic: the edge answered {served} requests for it in "
                "the last 24 hours"
            )
        elif row is not None and row.status == ACTIVE:
            out.append("the domain is verified and served by the edge")
        if action == "replace":
            what = "its certificates are deleted"
            if not is_reserved(name):
                what += " and its ownership must be verified again"
            out.append(f"changing the environment deletes the domain and adds it again: {what}")
        return out

    def _collisions(self, ctx: Context, item: Item) -> list[str]:
        """The file's records at names where the edge keeps records of its own."""
        glue = _glue_labels(ctx)
        out = []
        for r in item["records"]:
            name, first = r["name"], r["name"].split(".")[0]
            if name in glue:
                out.append(
                    f"record {r['type']} {name}: the edge's name server {name} answers at "
                    "this name with its own address (glue), which takes precedence over "
                    "the record"
                )
            elif first == ACME_LABEL:
                out.append(
                    f"record {r['type']} {name}: the edge publishes ACME DNS-01 answers at "
                    "this name while a certificate order runs"
                    + (
                        ": a CNAME there breaks them"
                        if r["type"] == "CNAME"
                        else " (they join this TXT)"
                        if r["type"] == "TXT"
                        else ""
                    )
                )
        return out
