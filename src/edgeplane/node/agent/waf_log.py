"""WAF matches: ModSecurity's audit log read, counted and shipped to the control plane.

ModSecurity writes one JSON line per request that matched a rule (``render_waf``: relevant
only, ``logs/waf-audit.json`` beside the access log). The analytics loop reads new lines
(``LogTailer``, from the end of the file when the agent starts: what came before was shipped
by the agent that ran then) and hands them to ``WafMatches.add_lines``, which:

- reduces each to a ``WafMatchLine``: the request id (ModSecurity's transaction id, which is
  nginx's ``$request_id`` and the ``X-Request-Id`` the client saw), the time (to the second),
  the host and its site, method, URI, client address, the rules that matched with their
  messages and matched data (truncated), the inbound anomaly score (the line of
  ``render_waf.SCORE_RULE_ID``) and the action: ``blocked`` when the profile blocks and a
  disruptive rule refused the request, else ``detected``;
- counts every rule of every match per (site, rule, action): ``WafCounts``, the node's
  ``edgeplane_waf_matches_total`` series (``metrics.WafCollector``);
- keeps the newest ``MATCHES_PER_REPORT`` matches for the next report (``ship``: ``POST
  /api/v1/edge/nodes/{id}/waf``), put back when the control plane cannot be reached,
  dropped (and counted as dropped) past the bound.

The audit log is never renamed (ModSecurity keeps its file open across nginx's log reopening):
past ``max_bytes`` it is truncated in place once read (ModSecurity appends: its next line goes
to the start), which the tailer follows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from threading import Lock
from typing import Any, Protocol

from pydantic import ValidationError

from edgeplane.node.agent.access_samples import clean
from edgeplane.node.agent.analytics import LogTailer
from edgeplane.node.agent.client import Rejected, Unreachable
from edgeplane.protocol.config import SiteSpec
from edgeplane.protocol.messages import (
    WAF_DATA_MAX,
    WAF_MESSAGE_MAX,
    WAF_REPORT_MAX,
    WAF_RULES_MAX,
    WAF_URI_MAX,
    WafMatchLine,
    WafReport,
    WafRuleHit,
)

log = logging.getLogger(__name__)

AUDIT_LOG_NAME = "waf-audit.json"  # beside the access log (render_waf.AUDIT_LOG)
SCORE_RULE = 10_900  # render_waf.SCORE_RULE_ID: the inbound anomaly score, not a match
# Rules that refuse a request when the engine is on: the CRS's anomaly evaluation and the
# request body checks of render_waf's base rules.
DISRUPTIVE = frozenset({949110, 949100, 200002, 200003, 200004, 200005, 200007})
MATCHES_PER_REPORT = WAF_REPORT_MAX
PAUSE_S = 600.0  # after a 404: the control plane does not know the endpoint


class WafReporter(Protocol):
    async def report_waf_matches(self, node_id: str, body: WafReport) -> None: ...


def audit_log_path(access_log: Path) -> Path:
    return access_log.with_name(AUDIT_LOG_NAME)


class SiteResolver:
    """Host -> site id, as nginx's ``$site_id`` map resolves it (exact names, then the
    longest ``*.`` wildcard)."""

    def __init__(self, sites: Iterable[SiteSpec] = ()) -> None:
        self.exact: dict[str, str] = {}
        self.wildcards: dict[str, str] = {}
        for site in sorted(sites, key=lambda s: s.id):
            for domain in site.domains:
                name = domain.lower().rstrip(".")
                if name.startswith("*."):
                    self.wildcards.setdefault(name[1:], site.id)
                else:
                    self.exact.setdefault(name, site.id)

    def site(self, host: str) -> str | None:
        name = host.lower().rstrip(".")
        if name.startswith("[") and "]" in name:
            name = name[: name.index("]") + 1]
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]
        found = self.exact.get(name)
        if found is not None:
            return found
        dot = name.find(".")
        while dot >= 0:
            found = self.wildcards.get(name[dot:])
            if found is not None:
                return found
            dot = name.find(".", dot + 1)
        return None


def _at(stamp: Any) -> datetime:
    """ModSecurity's ``time_stamp`` (``ctime``, the node's local time) in UTC; now when it
    cannot be read."""
    try:
        return datetime.fromtimestamp(time.mktime(time.strptime(str(stamp))), UTC)
    except (ValueError, OverflowError):
        return datetime.now(UTC)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def reduce(line: bytes, sites: SiteResolver) -> WafMatchLine | None:
    """The match of one audit log line; None when it is not one of a known site's."""
    try:
        doc = json.loads(line.decode("utf-8", "replace"))  # ModSecurity logs raw bytes
        tx = doc["transaction"]
        request = tx.get("request") or {}
        headers = {str(k).lower(): v for k, v in (request.get("headers") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    host = clean(headers.get("host"), 253).lower()
    site = sites.site(host) if host else None
    if site is None:
        return None
    hits: list[WafRuleHit] = []
    score: int | None = None
    disruptive = False
    for message in tx.get("messages") or []:
        if not isinstance(message, dict):
            continue
        details = message.get("details") or {}
        rule = _int(details.get("ruleId"))
        if rule is None or rule < 1:
            continue
        if rule == SCORE_RULE:
            score = _int(details.get("data"))
            continue
        disruptive = disruptive or rule in DISRUPTIVE
        if len(hits) < WAF_RULES_MAX:
            data = clean(details.get("data"), WAF_DATA_MAX)
            hits.append(
                WafRuleHit(
                    rule=rule,
                    message=clean(message.get("message"), WAF_MESSAGE_MAX),
                    data=data or None,
                    severity=clean(details.get("severity"), 16) or None,
                )
            )
    if not hits:
        return None
    status = _int((tx.get("response") or {}).get("http_code"))
    engine = str((tx.get("producer") or {}).get("secrules_engine") or "")
    blocked = engine == "Enabled" and disruptive and status in (400, 403)
    try:
        return WafMatchLine(
            request_id=clean(tx.get("unique_id"), 64) or "-",
            site=site,
            domain=host,
            at=_at(tx.get("time_stamp")),
            method=clean(request.get("method"), 16),
            uri=clean(request.get("uri"), WAF_URI_MAX),
            client=clean(tx.get("client_ip"), 64),
            rules=hits,
            anomaly_score=score,
            action="blocked" if blocked else "detected",
            status=status if status is not None and 100 <= status <= 599 else None,
        )
    except ValidationError:
        return None


class WafCounts:
    """Rule matches per (site, rule, action) since the agent started (read at scrape time)."""

    def __init__(self) -> None:
        self._lock = Lock()
        self._counts: dict[tuple[str, str, str], int] = {}

    def add(self, match: WafMatchLine) -> None:
        with self._lock:
            for hit in match.rules:
                key = (match.site, str(hit.rule), match.action)
                self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> list[tuple[tuple[str, str, str], int]]:
        with self._lock:
            return sorted(self._counts.items())


class WafMatches:
    """The audit log's matches: counted, and kept for the next report."""

    def __init__(self, counts: WafCounts, *, limit: int = MATCHES_PER_REPORT) -> None:
        self.counts = counts
        self.limit = max(1, limit)
        self.sites = SiteResolver()
        self._pending: deque[WafMatchLine] = deque()
        self.dropped = 0
        self.skipped = 0  # lines that were not matches of a known site
        self._paused_until: float | None = None

    def set_sites(self, sites: Iterable[SiteSpec]) -> None:
        self.sites = SiteResolver(sites)

    def __len__(self) -> int:
        return len(self._pending)

    def read(self, tailer: LogTailer) -> list[WafMatchLine]:
        """The new lines of the audit log, added."""
        return self.add_lines(tailer.read_lines())

    def add_lines(self, lines: list[bytes]) -> list[WafMatchLine]:
        """Lines as read from the audit log, oldest first; the matches they held."""
        out: list[WafMatchLine] = []
        for line in lines:
            match = reduce(line, self.sites)
            if match is None:
                self.skipped += 1
                continue
            self.counts.add(match)
            out.append(match)
        if self._paused_until is not None and time.monotonic() < self._paused_until:
            return out
        self._pending.extend(out)
        over = len(self._pending) - self.limit
        for _ in range(max(0, over)):
            self._pending.popleft()
            self.dropped += 1
        return out

    def take(self) -> WafReport | None:
        if not self._pending and not self.dropped:
            return None
        report = WafReport.model_construct(matches=list(self._pending), dropped=self.dropped)
        self._pending.clear()
        self.dropped = 0
        return report

    def restore(self, report: WafReport) -> None:
        """Put back a report that was not sent, older than what came since, within the bound."""
        room = self.limit - len(self._pending)
        back = report.matches[len(report.matches) - room :] if room > 0 else []
        self._pending.extendleft(reversed(back))
        self.dropped += report.dropped + len(report.matches) - len(back)

    async def ship(self, client: WafReporter, node_id: str) -> int:
        """Send what is kept; the number of matches sent."""
        report = self.take()
        if report is None:
            return 0
        try:
            await client.report_waf_matches(node_id, report)
        except Unreachable as exc:
            log.debug("WAF matches not sent: %s", exc)
            self.restore(report)
            return 0
        except Rejected as exc:
            if exc.status == 404:  # a control plane older than this endpoint
                self._paused_until = time.monotonic() + PAUSE_S
            else:
                log.warning("WAF matches refused, dropped: %s", exc)
            return 0
        return len(report.matches)


def truncate_if_large(path: Path, max_bytes: int) -> bool:
    """Empty the audit log in place when it is larger than ``max_bytes`` (read first)."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        os.truncate(path, 0)
    except FileNotFoundError:
        return False
    return True
