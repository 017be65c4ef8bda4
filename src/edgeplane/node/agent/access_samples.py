"""Access log samples: per domain, the newest lines of nginx's access log not yet sent.

The analytics loop reads the log once and hands the same lines to ``TrafficAggregator`` and to
``AccessSampler.add_lines``. Per domain (the line's ``host``) the sampler keeps the newest
``LOG_LINES_PER_DOMAIN`` lines not yet sent, and ``LOG_LINES_PER_REPORT`` in all (and
``LOG_BYTES_PER_REPORT`` of raw lines): past that, the lines of the domains that have been
quiet the longest go first, their oldest first. The
domain is found by a byte search in the raw line (nginx's JSON escaping leaves no unescaped
quote inside a value, so ``"host":"`` is the field); only the lines kept are parsed, when a
report is built (``take``), so a busy domain costs a search per line, not a parse. Equal
lines (the cached hits of a second look alike; the analytics count them once with a
``Counter``) stay repeated lines: each is a request. Lines of unknown hosts (no site) are not
kept. What the bounds leave out is counted and reported (``dropped``).

A line is reduced to ``AccessLogLine``: the time (to the second, as nginx logs it), method,
path (``$request_uri``: the query string is kept, at most ``ACCESS_LOG_PATH_MAX`` characters),
status, bytes sent, cache status, client address, request and upstream time in ms, user agent
(at most ``ACCESS_LOG_AGENT_MAX`` characters). Control characters, which nginx's escaping keeps
and the protocol refuses, are percent-encoded; a line that still does not validate is skipped
(``skipped``), never the whole report.

At start the agent reads the log from its beginning (the analytics want the last 15 minutes);
the sampler ignores the lines logged before it started (``since``): those were sent by the agent
that ran before.

``ship`` sends the report (``POST /nodes/{id}/logs``) right after the analytics: when the
control plane cannot be reached the lines are put back, as older than what came since and
within the same bounds, for the next report; refused (4xx) they are dropped. A 404 is a control
plane older than this endpoint: it is logged once (debug) and the sampler keeps and sends
nothing for ``PAUSE_S``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from edgeplane.node.agent.analytics import parse_line, request_ms, upstream_ms
from edgeplane.node.agent.client import Rejected, Unreachable
from edgeplane.node.agent.put_back import put_back
from edgeplane.protocol.messages import (
    ACCESS_LOG_AGENT_MAX,
    ACCESS_LOG_PATH_MAX,
    ACCESS_LOG_REPORT_MAX,
    AccessLogLine,
    AccessLogReport,
)

log = logging.getLogger(__name__)

LOG_LINES_PER_DOMAIN = 100  # per domain and report, the newest kept
LOG_LINES_PER_REPORT = ACCESS_LOG_REPORT_MAX  # in all, per report
LOG_BYTES_PER_REPORT = 8 << 20  # in all, raw (long paths and user agents): memory and body
SAMPLE_OVERHEAD = 250  # bytes of a line put back, beside its path and user agent
PAUSE_S = 600.0  # after a 404: the control plane does not know the endpoint
_HOST = b'"host":"'
_TIME = b'"time":"'
_NO_SITE = b'"site":""'
_SITE = b'"site":"'
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


class LogReporter(Protocol):
    async def report_access_logs(self, node_id: str, body: AccessLogReport) -> None: ...


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode())


def clean(value: Any, limit: int) -> str:
    """Text for the protocol: control characters percent-encoded, at most ``limit`` chars."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return _CONTROLS.sub(_escape, text)[:limit]


def _host(line: bytes) -> bytes | None:
    """The raw ``host`` of a line of a known site, or None (no site, no host, not ours)."""
    if _NO_SITE in line or _SITE not in line:
        return None
    i = line.find(_HOST)
    if i < 0:
        return None
    i += len(_HOST)
    j = line.find(b'"', i)
    return line[i:j] if j > i else None


def _time(line: bytes) -> float | None:
    """The epoch seconds of a line's ``time`` (ISO 8601), None when it has none."""
    i = line.find(_TIME)
    if i < 0:
        return None
    i += len(_TIME)
    j = line.find(b'"', i)
    try:
        return datetime.fromisoformat(line[i:j].decode()).timestamp()
    except (ValueError, UnicodeDecodeError):
        return None


def _size(item: bytes | AccessLogLine) -> int:
    if isinstance(item, bytes):
        return len(item)
    return SAMPLE_OVERHEAD + len(item.path) + len(item.user_agent or "")


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


def reduce(line: bytes) -> AccessLogLine | None:
    """The sample of one raw log line; None when it is not a valid line of a known site."""
    try:
        doc = parse_line(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    try:
        if "msec" in doc:
            at = datetime.fromtimestamp(float(doc["msec"]), UTC)
        else:
            at = datetime.fromisoformat(str(doc["time"])).astimezone(UTC)
        status = int(doc["status"])
        sent = int(doc.get("bytes_sent") or 0)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None
    cache = clean(doc.get("cache"), 16).upper()
    agent = clean(doc.get("ua"), ACCESS_LOG_AGENT_MAX)
    try:
        return AccessLogLine(
            site=clean(doc.get("site"), 63),
            domain=clean(doc.get("host"), 253).lower(),
            at=at,
            method=clean(doc.get("method"), 16),
            path=clean(doc.get("uri"), ACCESS_LOG_PATH_MAX),
            status=status,
            bytes_sent=sent,
            cache=cache or None,
            client=clean(doc.get("remote_addr"), 64),
            request_ms=_rounded(request_ms(doc.get("request_time"))),
            upstream_ms=_rounded(upstream_ms(str(doc.get("upstream_response_time") or ""))),
            user_agent=agent or None,
        )
    except ValidationError:
        return None


class AccessSampler:
    def __init__(
        self,
        *,
        per_domain: int = LOG_LINES_PER_DOMAIN,
        total: int = LOG_LINES_PER_REPORT,
        max_bytes: int = LOG_BYTES_PER_REPORT,
        since: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``since``: epoch seconds; the lines logged before it are ignored (until the first
        line at or after it: the log is in time order). ``clock``: for the pause."""
        self.per_domain = max(1, per_domain)
        self.total = max(1, total)
        self.max_bytes = max(1, max_bytes)
        self._since = since
        self._clock = clock
        # domain -> its lines, oldest first: raw, or samples put back by ``restore``; the
        # domains in the order they last received lines (the quietest first)
        self._domains: OrderedDict[str, deque[bytes | AccessLogLine]] = OrderedDict()
        self._count = 0
        self._bytes = 0
        self.dropped = 0  # left out since the last report taken
        self.skipped = 0  # kept but not valid lines (all time)
        self._paused_until: float | None = None
        self._pause_logged = False

    def __len__(self) -> int:
        return self._count

    @property
    def held_bytes(self) -> int:
        """The size of the lines kept (raw; estimated for lines put back)."""
        return self._bytes

    @property
    def paused(self) -> bool:
        if self._paused_until is None:
            return False
        if self._clock() >= self._paused_until:
            self._paused_until = None
            return False
        return True

    def add_lines(self, lines: list[bytes]) -> None:
        """Lines as read from the log, oldest first."""
        if self.paused or not lines:
            return
        if self._since is not None:
            lines = self._after_start(lines)
        groups: dict[bytes, list[bytes]] = {}  # raw host -> its newest lines, newest first
        for line in reversed(lines):
            host = _host(line)
            if host is None:
                continue
            group = groups.get(host)
            if group is None:
                group = groups[host] = []
            if len(group) < self.per_domain:
                group.append(line)
            else:
                self.dropped += 1
        for host in reversed(list(groups)):  # the domain seen last goes last
            newest_first = groups[host]
            key = host.decode("utf-8", "replace").lower()
            kept = self._domains.get(key)
            if kept is None:
                kept = self._domains[key] = deque()
            else:
                self._domains.move_to_end(key)
            kept.extend(reversed(newest_first))
            self._count += len(newest_first)
            self._bytes += sum(len(line) for line in newest_first)
            over = len(kept) - self.per_domain
            for _ in range(max(0, over)):
                self._bytes -= _size(kept.popleft())
            if over > 0:
                self._count -= over
                self.dropped += over
        self._trim()

    def _after_start(self, lines: list[bytes]) -> list[bytes]:
        assert self._since is not None
        for i, line in enumerate(lines):
            t = _time(line)  # None: a format without it; the log is ours from here
            if t is None or t >= self._since - 1:
                self._since = None
                return lines[i:]
        return []

    def _trim(self) -> None:
        """Over ``total`` lines or ``max_bytes``: the oldest lines of the quietest domains
        go."""
        while (self._count > self.total or self._bytes > self.max_bytes) and self._domains:
            key, kept = next(iter(self._domains.items()))
            while kept and (self._count > self.total or self._bytes > self.max_bytes):
                self._bytes -= _size(kept.popleft())
                self._count -= 1
                self.dropped += 1
            if not kept:
                del self._domains[key]

    def take(self) -> AccessLogReport | None:
        """The lines kept (parsed now), oldest first per domain, with the count dropped;
        the sampler starts afresh. None when there is nothing to report."""
        lines: list[AccessLogLine] = []
        for kept in self._domains.values():
            for item in kept:
                sample = item if isinstance(item, AccessLogLine) else reduce(item)
                if sample is None:
                    self.skipped += 1
                else:
                    lines.append(sample)
        dropped = self.dropped
        self.clear()
        if not lines and not dropped:
            return None
        return AccessLogReport.model_construct(lines=lines, dropped=dropped)

    def restore(self, report: AccessLogReport) -> None:
        """Put back the lines of a report that was not sent: older than the lines kept since,
        within the same bounds (what does not fit counts as dropped)."""
        back, dropped = put_back(
            self._domains,
            report.lines,
            lambda line: line.domain,
            self.per_domain,
            self.total - self._count,
        )
        self._count += len(back)
        self._bytes += sum(_size(line) for line in back)
        self.dropped += report.dropped + dropped
        self._trim()

    def clear(self) -> None:
        self._domains.clear()
        self._count = 0
        self._bytes = 0
        self.dropped = 0

    async def ship(self, client: LogReporter, node_id: str) -> int:
        """Send what is kept; the number of lines sent (0: nothing, or not sent)."""
        if self.paused:
            return 0
        report = await asyncio.to_thread(self.take)
        if report is None:
            return 0
        try:
            await client.report_access_logs(node_id, report)
        except Unreachable as exc:
            log.debug("access log lines not sent: %s", exc)
            self.restore(report)
            return 0
        except Rejected as exc:
            if exc.status != 404:
                log.warning("access log lines refused, dropped: %s", exc)
                return 0
            if not self._pause_logged:
                log.debug(
                    "the control plane does not take access log lines (%s); not sending "
                    "them for %.0f s",
                    exc,
                    PAUSE_S,
                )
                self._pause_logged = True
            self.clear()
            self._paused_until = self._clock() + PAUSE_S
            return 0
        return len(report.lines)
