"""A drill's evidence that traffic is served by the backup: real requests through the edge.

``probe`` sends a GET through one edge node (its address and HTTP port, the domain in
``Host``; over TLS with the domain as the server name when the site redirects to HTTPS) to a
path no cache holds (``PATH`` + the drill id and a counter: a MISS, so it
reaches a backend), with the ``User-Agent`` ``edgeplane-drill/VERSION``. An answer below 500
means a backend answered it.

Which backend: the edge logs nginx's ``$upstream_addr`` for every request, and each node's
analytics count per domain and minute the requests each backend of the site's pool answered
(``EdgeAnalyticsRow.backends``, by backend key). ``answered_by`` sums those counts for some
backends (the backup data center's) on one node for one domain since a minute: read before
the probes and again once the node has reported them, its growth is what those backends
answered meanwhile, the probes among them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeplane.store.tables import EdgeAnalyticsRow, EdgeNodeRow
from edgeplane.version import __version__

USER_AGENT = f"edgeplane-drill/{__version__}"
PATH = "/.well-known/edgeplane-drill/"
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Target:
    """An edge node as a drill reaches it."""

    id: str
    name: str
    url: str | None  # http://address:port; None: the node registered no address or port
    https_url: str | None = None  # https://address:port, for a site that forces HTTPS


def targets(session: Session, live: Iterable[str]) -> list[Target]:
    """The live edge nodes, by name."""
    ids = sorted(set(live))
    if not ids:
        return []
    out = []
    for n in session.scalars(select(EdgeNodeRow).where(EdgeNodeRow.id.in_(ids))):
        url = https = None
        if n.address:
            host = (
                f"[{n.address}]"
                if ":" in n.address and not n.address.startswith("[")
                else n.address
            )
            url = f"http://{host}:{n.http_port}" if n.http_port else None
            https = f"https://{host}:{n.https_port}" if n.https_port else None
        out.append(Target(n.id, n.name, url, https))
    return sorted(out, key=lambda t: t.name)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer
    ms: float
    error: str | None = None
    served_by: str | None = None  # the node's X-Served-By

    @property
    def served(self) -> bool:
        return self.status is not None and self.status < 500


def probe(client: httpx.Client, target: Target, domain: str, path: str) -> Answer:
    """One GET of ``path`` for ``domain`` through ``target``."""
    if target.url is None:
        return Answer(None, 0.0, "the node registered no address and HTTP port")
    started = time.monotonic()
    headers = {"Host": domain, "User-Agent": USER_AGENT, "Cache-Control": "no-cache"}
    try:
        r = client.get(f"{target.url}{path}", headers=headers, timeout=TIMEOUT_S)
        location = r.headers.get("location", "")
        if r.is_redirect and location.startswith(f"https://{domain}") and target.https_url:
            # The site forces HTTPS: the edge answered the redirect itself, no backend did.
            # The same request over TLS to the same node, the domain as the server name (the
            # certificate is not what a drill checks).
            r = client.get(
                f"{target.https_url}{path}",
                headers=headers,
                timeout=TIMEOUT_S,
                extensions={"sni_hostname": domain},
            )
    except httpx.HTTPError as exc:
        return Answer(None, (time.monotonic() - started) * 1000, type(exc).__name__)
    return Answer(
        r.status_code, (time.monotonic() - started) * 1000, None, r.headers.get("x-served-by")
    )


def answered_by(
    session: Session, node_id: str, domain: str, since: datetime, keys: Iterable[str]
) -> int:
    """The requests for ``domain`` the backends ``keys`` answered through the node, as its
    analytics say, in the minutes from ``since``'s on."""
    wanted = set(keys)
    minute = since.replace(second=0, microsecond=0)
    total = 0
    for counts in session.scalars(
        select(EdgeAnalyticsRow.backends).where(
            EdgeAnalyticsRow.node_id == node_id,
            EdgeAnalyticsRow.domain == domain,
            EdgeAnalyticsRow.minute >= minute,
        )
    ):
        for key, n in (counts or {}).items():
            if key in wanted and isinstance(n, int | float):
                total += int(n)
    return total
