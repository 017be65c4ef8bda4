"""Access logs: the latest requests of each domain, as the edge nodes report them.

Each node sends, right after its analytics, the newest lines of its access log per domain
(``edgeplane.node.agent.access_samples``: at most 100 per domain and 20,000 per report, with
the count it left out). ``store`` writes them as they come (``AccessLogRow``, one row per
request, the project being the line's site as in the analytics); a report with one bad line
is refused whole (the field named) and nothing of it is stored.

``recent`` reads a domain's lines for the viewers of the domain's project: the ``limit`` that
reached the control plane last, newest first, or with ``after_id`` the ones that arrived after
it, oldest first (what ``edgeplane logs --follow`` polls for). Ids follow the order in which
lines arrived, which is not exactly the order of their times (each node reports every
``--analytics-interval``, each nginx worker flushes its log buffer every second): a page is
sorted by time (to the second, as nginx logs it; within a second by arrival). Filters:
``status`` (a code such as 404 or a class such as 5xx), ``path_prefix`` (the path, query string
included, starts with it), ``client`` (an address, or a network in CIDR notation), ``cache``
(the cache status, any case). A network is matched in Python over the domain's rows (at most
``access_log_per_domain`` of them, read ``SCAN_BATCH`` at a time, ``SCAN_MAX`` at most);
the other filters are SQL.

Retention (``LINES``, run by ``services.log_retention`` every ``RETENTION_EVERY_S``): lines
older than ``Settings.access_log_retention_s`` go, and each domain that received lines since
the last pass keeps its newest ``Settings.access_log_per_domain``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import Select, func, insert, select

from edgeplane import metrics
from edgeplane.errors import InvalidInput
from edgeplane.model.access_logs import AccessLogEntry, AccessLogPage
from edgeplane.model.enums import Role
from edgeplane.protocol.messages import AccessLogReport
from edgeplane.services.edge_nodes import touch
from edgeplane.services.log_retention import RetainedLog
from edgeplane.store import domains as domain_rows
from edgeplane.store.db import Tx
from edgeplane.store.monitoring_tables import AccessLogRow
from edgeplane.store.tables import EdgeNodeRow

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
SCAN_BATCH = 1000  # rows read at a time when a network filters them in Python
SCAN_MAX = 50_000  # rows read at most by one such request
RETENTION_EVERY_S = 60.0
STATUS_PATTERN = r"^[1-5](?:[0-9]{2}|[xX]{2})$"
CACHE_PATTERN = r"^[A-Za-z]{1,16}$"
_STATUS = re.compile(STATUS_PATTERN)
_CACHE = re.compile(CACHE_PATTERN)

lines_received = Counter(
    "edgeplane_access_log_lines",
    "Access log lines the edge nodes reported: stored, or dropped by a node over its bounds",
    ["outcome"],
    registry=metrics.REGISTRY,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# Storing ------------------------------------------------------------------------------------


def store(tx: Tx, node_id: str, body: AccessLogReport) -> int:
    """Store a node's report; the number of lines stored."""
    node = touch(tx, node_id)
    rows = [
        {
            "project_id": line.site,
            "domain": line.domain,
            "node_id": node.id,
            "at": line.at,
            "method": line.method,
            "path": line.path,
            "status": line.status,
            "bytes_sent": line.bytes_sent,
            "cache": line.cache,
            "client": line.client,
            "request_ms": line.request_ms,
            "upstream_ms": line.upstream_ms,
            "user_agent": line.user_agent,
        }
        for line in body.lines
    ]
    if rows:
        tx.session.execute(insert(AccessLogRow), rows)
    lines_received.labels("stored").inc(len(rows))
    if body.dropped:
        lines_received.labels("dropped").inc(body.dropped)
    return len(rows)


# Reading ------------------------------------------------------------------------------------


def status_range(value: str) -> tuple[int, int]:
    """``404`` -> (404, 404); ``5xx`` -> (500, 599); InvalidInput naming ``status``."""
    text = value
    if not _STATUS.fullmatch(text):
        raise InvalidInput.at("status", "must be a status code (100-599) or a class (1xx-5xx)")
    if text[1:].lower() == "xx":
        low = int(text[0]) * 100
        return low, low + 99
    return int(text), int(text)


def client_network(value: str) -> Network:
    """An address or a network (CIDR); InvalidInput naming ``client``."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise InvalidInput.at(
            "client", "must be an IP address or a network in CIDR notation (10.0.0.0/8)"
        ) from None


@dataclass(frozen=True)
class Filters:
    status: tuple[int, int] | None = None
    path_prefix: str | None = None
    network: Network | None = None
    cache: str | None = None

    def sql(self, q: Select[AccessLogRow]) -> Select[AccessLogRow]:
        if self.status is not None:
            q = q.where(AccessLogRow.status.between(*self.status))
        if self.path_prefix:
            size = len(self.path_prefix)
            q = q.where(func.substr(AccessLogRow.path, 1, size) == self.path_prefix)
        if self.cache is not None:
            q = q.where(AccessLogRow.cache == self.cache)
        if self.network is not None and self.network.num_addresses == 1:
            q = q.where(AccessLogRow.client == str(self.network.network_address))
        return q

    def in_python(self) -> Callable[[AccessLogRow], bool] | None:
        """The filter SQL cannot apply: a network of more than one address."""
        network = self.network
        if network is None or network.num_addresses == 1:
            return None

        def match(row: AccessLogRow) -> bool:
            try:
                return ipaddress.ip_address(row.client) in network
            except ValueError:
                return False

        return match


def filters(
    *,
    status: str | int | None = None,
    path_prefix: str | None = None,
    client: str | None = None,
    cache: str | None = None,
) -> Filters:
    """The filters, validated (InvalidInput names the one at fault)."""
    if path_prefix is not None and (not path_prefix.startswith("/") or len(path_prefix) > 2000):
        raise InvalidInput.at("path_prefix", "must start with / (at most 2,000 characters)")
    if cache is not None and not _CACHE.fullmatch(cache):
        raise InvalidInput.at("cache", "must be a cache status such as HIT, MISS or BYPASS")
    return Filters(
        status=status_range(str(status)) if status is not None else None,
        path_prefix=path_prefix,
        network=client_network(client) if client is not None else None,
        cache=cache.upper() if cache is not None else None,
    )


def recent(
    tx: Tx,
    domain: str,
    *,
    status: str | int | None = None,
    path_prefix: str | None = None,
    client: str | None = None,
    cache: str | None = None,
    limit: int = 100,
    after_id: int | None = None,
) -> AccessLogPage:
    """The domain's latest lines, newest first; with ``after_id`` the lines after that id,
    oldest first. Only for the viewers of the domain's project (unknown domain: NotFound)."""
    tx.actor.require(tx.project, Role.VIEWER)
    name = domain_rows.get_row(tx, domain).name
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.at("limit", f"must be 1-{MAX_LIMIT}")
    if after_id is not None and after_id < 0:
        raise InvalidInput.at("after", "must be a line id (0 or more)")
    chosen = filters(status=status, path_prefix=path_prefix, client=client, cache=cache)
    mine = (AccessLogRow.project_id == tx.project, AccessLogRow.domain == name)
    newest = tx.session.scalar(select(func.max(AccessLogRow.id)).where(*mine))
    if newest is None or (after_id is not None and after_id >= newest):
        return AccessLogPage(domain=name, lines=[], next_after=max(after_id or 0, newest or 0))
    q = chosen.sql(select(AccessLogRow).where(*mine, AccessLogRow.id <= newest))
    rows, cursor = _scan(tx, q, after_id, limit, chosen.in_python())
    if after_id is None:
        next_after = newest  # every line up to it was looked at
    elif len(rows) == limit:
        next_after = rows[-1].id  # more may follow it
    else:
        next_after = cursor if cursor is not None else newest
    # The page in time order: a node's nginx workers each flush their log buffer every
    # second, so lines reach the control plane a little out of order.
    rows.sort(key=lambda r: (r.at, r.id), reverse=after_id is None)
    return AccessLogPage(domain=name, lines=_entries(tx, rows), next_after=next_after)


def _scan(
    tx: Tx,
    q: Select[AccessLogRow],
    after_id: int | None,
    limit: int,
    match: Callable[[AccessLogRow], bool] | None,
) -> tuple[list[AccessLogRow], int | None]:
    """Up to ``limit`` matching rows in order, and the id where a scan cut short by
    ``SCAN_MAX`` stopped (None: it went to the end, or stopped at ``limit``)."""
    forward = after_id is not None
    q = q.order_by(AccessLogRow.id.asc() if forward else AccessLogRow.id.desc())
    if forward:
        q = q.where(AccessLogRow.id > after_id)
    if match is None:
        return list(tx.session.scalars(q.limit(limit))), None
    out: list[AccessLogRow] = []
    scanned = 0
    cursor: int | None = None
    while True:
        page = q
        if cursor is not None:
            page = q.where(AccessLogRow.id > cursor if forward else AccessLogRow.id < cursor)
        batch = list(tx.session.scalars(page.limit(SCAN_BATCH)))
        for row in batch:
            if match(row):
                out.append(row)
                if len(out) == limit:
                    return out, None
        if len(batch) < SCAN_BATCH:
            return out, None
        cursor = batch[-1].id
        scanned += len(batch)
        if scanned >= SCAN_MAX:
            return out, cursor if forward else None


def _entries(tx: Tx, rows: list[AccessLogRow]) -> list[AccessLogEntry]:
    ids = {r.node_id for r in rows}
    names: dict[str, str] = {}
    if ids:
        found = tx.session.execute(
            select(EdgeNodeRow.id, EdgeNodeRow.name).where(EdgeNodeRow.id.in_(ids))
        )
        names = {node_id: name for node_id, name in found}
    return [
        AccessLogEntry(
            id=r.id,
            at=r.at,
            node=names.get(r.node_id, r.node_id),
            node_id=r.node_id,
            domain=r.domain,
            method=r.method,
            path=r.path,
            status=r.status,
            bytes_sent=r.bytes_sent,
            cache=r.cache,
            client=r.client,
            request_ms=r.request_ms,
            upstream_ms=r.upstream_ms,
            user_agent=r.user_agent,
        )
        for r in rows
    ]


# Retention ----------------------------------------------------------------------------------

LINES = RetainedLog(
    name="access log",
    row=AccessLogRow,
    key=AccessLogRow.domain,
    retention_s=lambda s: s.access_log_retention_s,
    keep=lambda s: s.access_log_per_domain,
)
