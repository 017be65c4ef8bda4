"""Edge functions seen from the node: their invocations per minute and their console lines.

**Invocations.** nginx logs the requests a function answered with three more keys in the access
log line (``render_functions``): ``fn`` (the function key, ``<project>/<name>``), ``fv``
(``<name>@<version>``, may be empty) and ``fo``, the runtime's outcome (``ok``, ``exception``,
``timeout``, ``memory``, ``unavailable`` when nginx could not reach the runtime; ``blocked``
when the edge refused the request before it (WAF, rate limit, IP list, client limits): not an
invocation, left to the site's analytics). ``TrafficAggregator.add`` hands every line that has
``fn`` to ``FunctionAggregator.add`` with the line already parsed and its count (equal lines
are parsed once), so functions cost the hot path one dictionary look-up per distinct line. Per
(site, function, minute): invocations, errors by outcome, status classes and a histogram of the
whole request's time (``request_time``) over ``UPSTREAM_MS_BUCKETS``. ``changed()`` gives the
minutes that changed since the last call with their full totals (the control plane replaces a
minute it receives again); minutes older than ``KEEP_MINUTES`` (``minutes``) go. Given ``totals``
(``FunctionTotals``), each line is also added to the node's Prometheus counters
(``edgeplane_edge_function_invocations_total``, ``edgeplane_edge_function_duration_seconds``).

**Console.** The runtime writes the functions' console to ``<prefix>/logs/functions.json``, one
JSON object a line: ``{"t": ISO time, "fn": key, "v": version, "level", "msg", "rid"}`` (its
messages already cut at 2 KiB, at most 100 lines per second per function). The analytics loop
reads it with a ``LogTailer`` (from its end when the agent starts: what came before was sent by
the agent that ran then) and ``FunctionConsole`` keeps, per function, the newest
``LINES_PER_FUNCTION`` lines not yet sent (``LINES_PER_REPORT`` in all), counting what it left
out. Past a size the agent renames the file and the runtime reopens it
(``functions.FunctionHost.rotate``): the tailer finishes the old file, then follows the new.

**Shipping**, every analytics interval: ``POST /nodes/{id}/function-traffic`` and ``POST
/nodes/{id}/function-logs``. Unreachable: put back for the next round (within the bounds);
refused (4xx): dropped; 404 (a control plane older than these endpoints): nothing kept or sent
for ``PAUSE_S``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from pydantic import ValidationError

from edgeplane.node.agent.analytics import LogTailer, bucket_index, parse_line, request_ms
from edgeplane.node.agent.client import Rejected, Unreachable
from edgeplane.node.agent.minutes import MinuteKey, Minutes
from edgeplane.node.agent.put_back import put_back
from edgeplane.protocol.messages import (
    FUNCTION_LOG_LEVELS,
    FUNCTION_LOG_MESSAGE_MAX,
    FUNCTION_LOG_REPORT_MAX,
    FUNCTION_OUTCOMES,
    UPSTREAM_MS_BUCKETS,
    FunctionLogLine,
    FunctionLogReport,
    FunctionMinute,
    FunctionOutcome,
    FunctionTrafficReport,
)

log = logging.getLogger(__name__)

CONSOLE_LOG_NAME = "functions.json"  # beside the access log (the runtime's --console-log)
LINES_PER_FUNCTION = 1000  # console lines per function and report, the newest kept
LINES_PER_REPORT = FUNCTION_LOG_REPORT_MAX
PAUSE_S = 600.0  # after a 404: the control plane does not know the endpoint
OK = "ok"
BLOCKED = "blocked"  # ``fo`` of a request the edge refused before the runtime saw it
_OUTCOMES = frozenset(FUNCTION_OUTCOMES)
_LEVELS = frozenset(FUNCTION_LOG_LEVELS)
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # all but \t \n \r


def console_log_path(access_log: Path) -> Path:
    return access_log.with_name(CONSOLE_LOG_NAME)


def outcome_of(value: Any) -> FunctionOutcome | Literal["ok"]:
    """A line's ``fo`` -> ``ok`` or the error's outcome (none, empty or unknown: the runtime
    did not answer: ``unavailable``)."""
    if value == OK:
        return "ok"
    if value in _OUTCOMES:
        return cast(FunctionOutcome, value)
    return "unavailable"


class _Pause:
    """The pause after a 404 of a control plane that does not know an endpoint."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._until: float | None = None
        self._logged = False

    @property
    def on(self) -> bool:
        if self._until is None:
            return False
        if self._clock() >= self._until:
            self._until = None
            return False
        return True

    def start(self, what: str, exc: Exception) -> None:
        if not self._logged:
            log.debug("the control plane does not take %s (%s); not sending them for %.0f s",
                      what, exc, PAUSE_S)  # fmt: skip
            self._logged = True
        self._until = self._clock() + PAUSE_S


# Prometheus counters ---------------------------------------------------------------------------


@dataclass
class FunctionCounters:
    outcomes: dict[str, int] = field(default_factory=dict)  # ok / exception / ... -> n
    duration: list[int] = field(default_factory=lambda: [0] * (len(UPSTREAM_MS_BUCKETS) + 1))
    duration_ms: float = 0.0  # the sum of the durations counted


class FunctionTotals:
    """Invocations per (site, function name) since the agent started (counters only grow)."""

    def __init__(self) -> None:
        self.functions: dict[tuple[str, str], FunctionCounters] = {}

    def function(self, site: str, name: str) -> FunctionCounters:
        key = (site, name)
        counters = self.functions.get(key)
        if counters is None:
            counters = self.functions[key] = FunctionCounters()
        return counters

    def snapshot(self) -> list[tuple[tuple[str, str], FunctionCounters]]:
        """For a scrape in another thread (copied at once: a function may be added)."""
        return list(self.functions.items())


# Invocations per minute ------------------------------------------------------------------------


@dataclass
class FunctionMinuteTotals:
    invocations: int = 0
    errors: dict[FunctionOutcome, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    duration_ms: list[int] = field(default_factory=lambda: [0] * (len(UPSTREAM_MS_BUCKETS) + 1))


class FunctionReporter(Protocol):
    async def report_function_traffic(self, node_id: str, body: FunctionTrafficReport) -> None: ...

    async def report_function_logs(self, node_id: str, body: FunctionLogReport) -> None: ...


class FunctionAggregator:
    def __init__(
        self, totals: FunctionTotals | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.totals = totals
        # per (site, function key)
        self._minutes: Minutes[FunctionMinuteTotals] = Minutes(FunctionMinuteTotals)
        self._pause = _Pause(clock)
        self.skipped = 0  # lines whose function key was not one
        self.blocked = 0  # lines of requests the edge refused before invoking the function

    def add(self, site: str, doc: dict[str, Any], seconds: float, status: int, count: int = 1
            ) -> None:  # fmt: skip
        """One access log line of a function (``doc["fn"]`` set), parsed by the caller."""
        key = doc.get("fn")
        if not isinstance(key, str) or not _KEY.match(key):
            self.skipped += count
            return
        if doc.get("fo") == BLOCKED:  # refused by the edge first: the site's analytics count it
            self.blocked += count
            return
        outcome = outcome_of(doc.get("fo"))
        ms = request_ms(doc.get("request_time"))
        klass = f"{status // 100}xx"
        t = self._minutes.at(site, key, seconds)
        t.invocations += count
        if outcome != "ok":
            t.errors[outcome] = t.errors.get(outcome, 0) + count
        t.statuses[klass] = t.statuses.get(klass, 0) + count
        if ms is not None:
            t.duration_ms[bucket_index(ms)] += count
        if self.totals is not None:
            c = self.totals.function(site, key.partition("/")[2])
            c.outcomes[outcome] = c.outcomes.get(outcome, 0) + count
            if ms is not None:
                c.duration[bucket_index(ms)] += count
                c.duration_ms += ms * count

    def changed(self) -> list[FunctionMinute]:
        """The minutes that changed since the last call, with their full totals."""
        return [self._minute(key, t) for key, t in self._minutes.take_changed()]

    def restore(self, minutes: list[FunctionMinute]) -> None:
        """Mark minutes as changed again (their report failed): they are sent next time."""
        for m in minutes:
            self._minutes.mark_changed(m.site, m.function, int(m.minute.timestamp()))

    def forget_before(self, epoch_s: float) -> None:
        self._minutes.forget_before(epoch_s)

    def _minute(self, key: MinuteKey, t: FunctionMinuteTotals) -> FunctionMinute:
        return FunctionMinute.model_construct(
            site=key[0],
            function=key[1],
            minute=datetime.fromtimestamp(key[2], UTC),
            invocations=t.invocations,
            errors=dict(t.errors),
            statuses=dict(t.statuses),
            duration_ms=list(t.duration_ms),
        )

    async def ship(self, client: FunctionReporter, node_id: str) -> int:
        """Send the minutes that changed; the number sent."""
        if self._pause.on:
            self._minutes.forget_changes()
            return 0
        minutes = self.changed()
        if not minutes:
            return 0
        try:
            await client.report_function_traffic(node_id, FunctionTrafficReport(minutes=minutes))
        except Unreachable as exc:
            log.debug("function traffic not sent: %s", exc)
            self.restore(minutes)
            return 0
        except Rejected as exc:
            if exc.status == 404:
                self._pause.start("function traffic", exc)
            else:
                log.warning("function traffic refused, dropped: %s", exc)
            return 0
        return len(minutes)


# Console lines ---------------------------------------------------------------------------------


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode())


def reduce(line: bytes) -> FunctionLogLine | None:
    """One line of the runtime's console log; None when it is not one."""
    try:
        doc = parse_line(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    key = doc.get("fn")
    if not isinstance(key, str) or not _KEY.match(key):
        return None
    try:
        at = datetime.fromisoformat(str(doc["t"]).replace("Z", "+00:00")).astimezone(UTC)
    except (KeyError, ValueError, OverflowError):
        return None
    version = doc.get("v")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        version = None
    level = doc.get("level")
    msg = doc.get("msg")
    text = msg if isinstance(msg, str) else "" if msg is None else str(msg)
    rid = doc.get("rid")
    try:
        return FunctionLogLine(
            function=key,
            version=version,
            at=at,
            level=level if level in _LEVELS else "log",
            message=_CONTROLS.sub(_escape, text)[:FUNCTION_LOG_MESSAGE_MAX],
            request_id=_CONTROLS.sub(_escape, rid)[:64] if isinstance(rid, str) and rid else None,
        )
    except ValidationError:
        return None


class FunctionConsole:
    """The console lines not yet sent: per function the newest ``per_function``, in all the
    newest ``total`` (the functions quiet the longest lose theirs first)."""

    def __init__(
        self,
        *,
        per_function: int = LINES_PER_FUNCTION,
        total: int = LINES_PER_REPORT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_function = max(1, per_function)
        self.total = max(1, total)
        # function key -> its lines, oldest first; the functions in the order they last
        # received lines (the quietest first)
        self._functions: OrderedDict[str, deque[FunctionLogLine]] = OrderedDict()
        self._count = 0
        self.dropped = 0  # left out since the last report taken
        self.skipped = 0  # lines that were not console lines (all time)
        self._pause = _Pause(clock)

    def __len__(self) -> int:
        return self._count

    def read(self, tailer: LogTailer) -> int:
        """The new lines of the console log, added; how many were read."""
        lines = tailer.read_lines()
        self.add_lines(lines)
        return len(lines)

    def add_lines(self, lines: list[bytes]) -> None:
        """Lines as read from the console log, oldest first."""
        if self._pause.on or not lines:
            return
        for line in lines:
            entry = reduce(line)
            if entry is None:
                self.skipped += 1
                continue
            kept = self._functions.get(entry.function)
            if kept is None:
                kept = self._functions[entry.function] = deque()
            else:
                self._functions.move_to_end(entry.function)
            kept.append(entry)
            self._count += 1
            if len(kept) > self.per_function:
                kept.popleft()
                self._count -= 1
                self.dropped += 1
        self._trim()

    def _trim(self) -> None:
        while self._count > self.total and self._functions:
            key, kept = next(iter(self._functions.items()))
            while kept and self._count > self.total:
                kept.popleft()
                self._count -= 1
                self.dropped += 1
            if not kept:
                del self._functions[key]

    def take(self) -> FunctionLogReport | None:
        """The lines kept, oldest first per function, with the count dropped; None when
        there is nothing to report."""
        lines = [entry for kept in self._functions.values() for entry in kept]
        dropped = self.dropped
        self.clear()
        if not lines and not dropped:
            return None
        return FunctionLogReport.model_construct(lines=lines, dropped=dropped)

    def restore(self, report: FunctionLogReport) -> None:
        """Put back the lines of a report that was not sent: older than the lines kept since,
        within the same bounds (what does not fit counts as dropped)."""
        back, dropped = put_back(
            self._functions,
            report.lines,
            lambda line: line.function,
            self.per_function,
            self.total - self._count,
        )
        self._count += len(back)
        self.dropped += report.dropped + dropped

    def clear(self) -> None:
        self._functions.clear()
        self._count = 0
        self.dropped = 0

    async def ship(self, client: FunctionReporter, node_id: str) -> int:
        """Send what is kept; the number of lines sent (0: nothing, or not sent)."""
        if self._pause.on:
            return 0
        report = self.take()
        if report is None:
            return 0
        try:
            await client.report_function_logs(node_id, report)
        except Unreachable as exc:
            log.debug("function console lines not sent: %s", exc)
            self.restore(report)
            return 0
        except Rejected as exc:
            if exc.status == 404:
                self._pause.start("function console lines", exc)
                self.clear()
            else:
                log.warning("function console lines refused, dropped: %s", exc)
            return 0
        return len(report.lines)
