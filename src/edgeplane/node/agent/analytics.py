"""Traffic analytics from nginx's JSON access log.

``LogTailer`` reads the log by offset (only whole lines), and follows a rotation: when the file
has been renamed (its inode changed) or truncated, it finishes the old file first and then
starts the new one at 0. ``rotate`` renames a log that grew past a size and asks the nginx master
to reopen its logs (SIGUSR1).

``TrafficAggregator`` sums the lines per (site, domain, minute): requests, bytes out, status
classes ("2xx"), cache statuses, a histogram of upstream time over ``UPSTREAM_MS_BUCKETS`` (the
times of every try of a retried request added up; a request that never reached the origin, such
as a HIT, has none), a histogram of the whole request's time (``request_time``, every line) over
the same buckets, the responses served from a static bundle, and, given a ``locate`` function,
the requests per client country (``remote_addr``; ``ZZ`` when unknown), and, given the backends
of each site's pool (``set_backends``), the requests each backend answered (``upstream``: nginx's
``$upstream_addr``, the last address of a retried request; an address of no backend of the
site's pool, such as a static bundle's, is not counted).

Hits are the responses served at the edge without the origin: from cache (``HIT``, ``STALE``,
``UPDATING``, ``REVALIDATED``, as CDNs count them) and from a static bundle (``"source":
"bundle"``, whose cache status is ``STATIC``), which also count in ``static``. Misses are the
cacheable responses that went to the origin (``MISS`` and ``EXPIRED``); ``BYPASS`` is neither.
Lines of unknown hosts (no site) are not counted. ``changed()`` returns the minutes that changed
since the last call with their full totals (the control plane replaces a minute it receives
again); minutes older than ``KEEP_MINUTES`` (``minutes``) go. Given ``totals``, it also adds each
line to the per-site counters of the node's Prometheus metrics (``site_totals``). Given
``functions``, the lines of edge functions (``fn``) are handed to it too, parsed
(``function_stats``).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import ipaddress
import json
import logging
import os
import signal
import socket
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from edgeplane.node.agent.bots import BotWatch, verdict_of
from edgeplane.node.agent.minutes import MinuteKey, Minutes
from edgeplane.node.agent.site_totals import NO_CACHE, SiteTotals
from edgeplane.protocol.config import PoolSpec, SiteSpec
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS, MinuteTraffic

log = logging.getLogger(__name__)

HIT_STATUSES = frozenset({"HIT", "STALE", "UPDATING", "REVALIDATED"})
MISS_STATUSES = frozenset({"MISS", "EXPIRED"})
# The edge's own refusals, by status (with no origin asked and not served from cache): rate
# limits, IP lists, and the client limits of node/nginx/render_limits.py (connections, a slow
# client cut at the header timeout, a header or body above the site's limit).
BLOCKED = {
    429: "rate_limit",
    403: "denied",
    503: "connection_limit",
    408: "timeout",
    413: "too_large",
    431: "too_large",
}
STATIC_STATUS = "STATIC"  # the cache status of a response served from a static bundle
UNKNOWN_COUNTRY = "ZZ"
COUNTRY_CACHE_SIZE = 65536  # client addresses whose country the aggregator remembers
READ_CHUNK = 1 << 20
READ_LIMIT = 16 << 20


def upstream_ms(value: str) -> float | None:
    """``"0.001, 0.002"`` (tries) or ``"0.001 : 0.002"`` (internal redirects) -> the sum in ms;
    ``""`` or ``"-"`` -> None."""
    total = 0.0
    seen = False
    for part in value.replace(":", ",").split(","):
        part = part.strip()
        if not part or part == "-":
            continue
        try:
            total += float(part)
        except ValueError:
            continue
        seen = True
    return total * 1000 if seen else None


def answering_address(value: str) -> str:
    """``"10.0.0.1:80, 10.0.0.2:80"`` (tries) or ``"a : b"`` (internal redirects) -> the last
    address, the one that answered; ``""`` when none."""
    for part in reversed(value.replace(" : ", ",").split(",")):
        part = part.strip()
        if part and part != "-":
            return part
    return ""


BackendMap = dict[str, dict[str, str]]  # site -> {"host:port" as nginx logs it: backend key}


def backend_map(
    sites: Iterable[SiteSpec],
    pools: Iterable[PoolSpec],
    resolve: Callable[[str], list[str]] | None = None,
) -> BackendMap:
    """Each site's backend addresses as ``$upstream_addr`` shows them (IPv6 in brackets) ->
    the backend's key. nginx resolves a backend's host name when it loads its configuration:
    ``resolve`` (a name -> its addresses) maps those addresses too."""
    by_pool: dict[str, dict[str, str]] = {}
    for pool in pools:
        addresses: dict[str, str] = {}
        for b in pool.backends:
            host = b.host.strip("[]")
            names = [host]
            if resolve is not None and not _is_ip(host):
                with contextlib.suppress(OSError, UnicodeError):
                    names.extend(resolve(host))
            for name in names:
                shown = f"[{name}]" if ":" in name else name
                addresses.setdefault(f"{shown}:{b.port}", b.key)
        by_pool[pool.id] = addresses
    return {s.id: by_pool[s.pool] for s in sites if s.pool is not None and s.pool in by_pool}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def resolve_host(name: str) -> list[str]:
    """A host name's addresses, as nginx finds them (the system's resolver); remembered, as
    nginx resolves a name once per configuration load."""
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(name, None)})
    except (OSError, UnicodeError):
        return []


def parse_line(line: bytes | str) -> Any:
    """A log line's JSON. nginx's ``escape=json`` copies bytes above 0x7F as they came (a
    request URI or a user agent that is not UTF-8): such a line is read with those bytes
    replaced (U+FFFD) rather than lost. ValueError when it is not JSON."""
    try:
        return json.loads(line)
    except UnicodeDecodeError:
        assert isinstance(line, bytes)
        return json.loads(line.decode("utf-8", "replace"))


def bucket_index(ms: float) -> int:
    """The index of the first bucket whose upper bound is >= ms (len(buckets): above all)."""
    return bisect.bisect_left(UPSTREAM_MS_BUCKETS, ms)


def request_ms(value: Any) -> float | None:
    """nginx's ``request_time`` (seconds, a number or its text) -> ms; None if not a time."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not 0 <= seconds < float("inf"):  # also refuses NaN
        return None
    return seconds * 1000


def country_locator(db_path: str | os.PathLike[str] | None) -> Callable[[str], str | None] | None:
    """A ``locate`` function for :class:`TrafficAggregator` on a GeoIP database (None: the
    packaged GeoLite2-City); None, with one warning, when the database cannot be opened."""
    from edgeplane.routing.geoip import GeoDatabaseError, GeoLocator

    try:
        locator = GeoLocator(db_path)
    except GeoDatabaseError as exc:
        log.warning("traffic analytics count no countries: %s", exc)
        return None

    def locate(address: str) -> str | None:
        return locator.locate(address).country

    return locate


@dataclass
class MinuteTotals:
    requests: int = 0
    hits: int = 0
    misses: int = 0
    bytes_out: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)
    upstream_ms: list[int] = field(default_factory=lambda: [0] * (len(UPSTREAM_MS_BUCKETS) + 1))
    request_ms: list[int] = field(default_factory=lambda: [0] * (len(UPSTREAM_MS_BUCKETS) + 1))
    static: int = 0
    static_bytes: int = 0
    countries: dict[str, int] = field(default_factory=dict)
    blocked: dict[str, int] = field(default_factory=dict)
    backends: dict[str, int] = field(default_factory=dict)
    bots: dict[str, int] = field(default_factory=dict)  # "<class>:<action>" -> n


class FunctionSink(Protocol):
    def add(self, site: str, doc: dict[str, Any], seconds: float, status: int, count: int = 1
            ) -> None: ...  # fmt: skip


class TrafficAggregator:
    def __init__(
        self,
        locate: Callable[[str], str | None] | None = None,
        *,
        country_cache_size: int = COUNTRY_CACHE_SIZE,
        totals: SiteTotals | None = None,
        bots: BotWatch | None = None,
        functions: FunctionSink | None = None,
    ) -> None:
        """``locate``: client address -> ISO country code (None: unknown); without it no
        countries are counted. Its answers are remembered per address (least recently used
        forgotten first). ``totals``: the metrics' counters, which every line is added to."""
        self.totals = totals
        self.bots = bots  # bot verdicts counted and behaviour scored (node/agent/bots.py)
        # the lines of edge functions (``fn``): node/agent/function_stats.FunctionAggregator
        self.functions = functions
        self._minutes: Minutes[MinuteTotals] = Minutes(MinuteTotals)  # per (site, domain)
        self._locate = locate
        self._countries: OrderedDict[str, str] = OrderedDict()
        self._country_cache_size = max(1, country_cache_size)
        self._backends: BackendMap = {}
        self.skipped = 0  # lines that were not JSON or lacked a field

    def set_backends(self, backends: Mapping[str, Mapping[str, str]]) -> None:
        """The backends of each site's pool (``backend_map``), for the lines that follow."""
        self._backends = {site: dict(addresses) for site, addresses in backends.items()}

    def add_lines(self, lines: list[bytes]) -> None:
        """Many lines at once: equal lines are parsed once and counted as many. The edge logs
        time to the second, so the cached hits of a second that look alike (same site, status,
        size, client, times) are one line to parse (a few hundred per second instead of tens
        of thousands: parsing a line costs the agent about 5 us, as much as nginx's own work
        for a cached hit)."""
        for line, count in Counter(lines).items():
            self.add_line(line, count)

    def add_line(self, line: bytes | str, count: int = 1) -> None:
        try:
            doc = parse_line(line)
        except ValueError:
            self.skipped += count
            return
        if not isinstance(doc, dict):
            self.skipped += count
            return
        self.add(doc, count)

    def add(self, doc: dict[str, Any], count: int = 1) -> None:
        """One log line (``count`` equal ones); its time is ``msec`` (seconds, the format of
        older releases) or ``time`` (ISO 8601)."""
        site = doc.get("site") or ""
        if not isinstance(site, str) or not site:
            return
        try:
            if "msec" in doc:
                seconds = float(doc["msec"])
            else:
                seconds = datetime.fromisoformat(str(doc["time"])).timestamp()
            status = int(doc["status"])
        except (KeyError, TypeError, ValueError):
            self.skipped += count
            return
        domain = str(doc.get("host") or "").lower()
        totals = self._minutes.at(site, domain, seconds)
        totals.requests += count
        sent = 0
        with contextlib.suppress(TypeError, ValueError):
            sent = int(doc.get("bytes_sent") or 0) * count
        totals.bytes_out += sent
        klass = f"{status // 100}xx"
        totals.statuses[klass] = totals.statuses.get(klass, 0) + count
        cache = str(doc.get("cache") or "").upper()
        if cache:
            totals.cache[cache] = totals.cache.get(cache, 0) + count
        static = doc.get("source") == "bundle" or cache == STATIC_STATUS
        if static:
            totals.static += count
            totals.static_bytes += sent
            totals.hits += count  # served at the edge, without the origin
        elif cache in HIT_STATUSES:
            totals.hits += count
        elif cache in MISS_STATUSES:
            totals.misses += count
        ms = upstream_ms(str(doc.get("upstream_response_time") or ""))
        if ms is not None:
            totals.upstream_ms[bucket_index(ms)] += count
        elif status in BLOCKED and not static and cache not in HIT_STATUSES:
            # the edge refused it: no origin asked, not an origin's answer from cache
            reason = BLOCKED[status]
            totals.blocked[reason] = totals.blocked.get(reason, 0) + count
            if self.totals is not None:
                refused = self.totals.site(site).blocked
                refused[reason] = refused.get(reason, 0) + count
        if self.totals is not None:
            site_counters = self.totals.site(site)
            label = (klass, cache or NO_CACHE)
            site_counters.requests[label] = site_counters.requests.get(label, 0) + count
            site_counters.bytes_out += sent
            if static:
                site_counters.static += count
            if ms is not None:
                site_counters.upstream[bucket_index(ms)] += count
                site_counters.upstream_ms += ms * count
        ms = request_ms(doc.get("request_time"))
        if ms is not None:
            totals.request_ms[bucket_index(ms)] += count
        verdict = verdict_of(doc)
        if verdict is not None:
            name = f"{verdict[0]}:{verdict[1]}"
            totals.bots[name] = totals.bots.get(name, 0) + count
        if self.bots is not None:
            self.bots.add(site, doc, seconds, status, count)
        if self.functions is not None and doc.get("fn"):  # "": not a function's request
            self.functions.add(site, doc, seconds, status, count)
        if self._locate is not None:
            country = self.country(str(doc.get("remote_addr") or ""))
            totals.countries[country] = totals.countries.get(country, 0) + count
        addresses = self._backends.get(site)
        if addresses:
            backend = addresses.get(answering_address(str(doc.get("upstream") or "")))
            if backend is not None:
                totals.backends[backend] = totals.backends.get(backend, 0) + count

    def country(self, address: str) -> str:
        """The ISO country code of a client address, ``ZZ`` when unknown (or no ``locate``)."""
        cached = self._countries.get(address)
        if cached is not None:
            self._countries.move_to_end(address)
            return cached
        code: str | None = None
        if address and self._locate is not None:
            try:
                code = self._locate(address)
            except Exception:  # not an address, a broken database: unknown
                code = None
        if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha()):
            code = UNKNOWN_COUNTRY
        code = code.upper()
        self._countries[address] = code
        if len(self._countries) > self._country_cache_size:
            self._countries.popitem(last=False)
        return code

    def changed(self) -> list[MinuteTraffic]:
        """The minutes that changed since the last call, with their full totals."""
        return [self._traffic(key, t) for key, t in self._minutes.take_changed()]

    def restore(self, minutes: list[MinuteTraffic]) -> None:
        """Mark minutes as changed again (their report failed): they are sent next time."""
        for m in minutes:
            self._minutes.mark_changed(m.site, m.domain, int(m.minute.timestamp()))

    def forget_before(self, epoch_s: float) -> None:
        self._minutes.forget_before(epoch_s)

    def _traffic(self, key: MinuteKey, t: MinuteTotals) -> MinuteTraffic:
        return MinuteTraffic(
            site=key[0],
            domain=key[1],
            minute=datetime.fromtimestamp(key[2], UTC),
            requests=t.requests,
            hits=t.hits,
            misses=t.misses,
            bytes_out=t.bytes_out,
            statuses=dict(t.statuses),
            cache=dict(t.cache),
            upstream_ms=list(t.upstream_ms),
            request_ms=list(t.request_ms),
            static=t.static,
            static_bytes=t.static_bytes,
            blocked=dict(t.blocked),
            countries=dict(t.countries),
            backends=dict(t.backends),
            bots=dict(t.bots),
        )


class LogTailer:
    """Reads whole new lines of a log file, across renames and truncation."""

    def __init__(self, path: Path, *, from_end: bool = False) -> None:
        self.path = path
        self._file: Any = None
        self._inode: int | None = None
        self._partial = b""
        self._from_end = from_end

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> bool:
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return False
        self._file = f
        self._inode = os.fstat(f.fileno()).st_ino
        self._partial = b""
        if self._from_end:
            f.seek(0, os.SEEK_END)
            self._from_end = False
        return True

    def read_lines(self) -> list[bytes]:
        if self._file is None and not self._open():
            return []
        lines, at_end = self._drain()
        if not at_end:
            return lines  # more next time
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return lines
        if st.st_ino != self._inode:
            # Rotated: the old file is complete (nginx reopened its logs); follow the new one.
            self.close()
            if self._open():
                lines.extend(self._drain()[0])
        elif st.st_size < self._file.tell():
            # Truncated in place.
            self._file.seek(0)
            self._partial = b""
            lines.extend(self._drain()[0])
        return lines

    def _drain(self) -> tuple[list[bytes], bool]:
        """Whole lines from the current position, at most ``READ_LIMIT`` bytes per call (a
        big backlog is read over several calls); True when it reached the end."""
        out: list[bytes] = []
        for _ in range(READ_LIMIT // READ_CHUNK):
            chunk = self._file.read(READ_CHUNK)
            if not chunk:
                return out, True
            data = self._partial + chunk
            *complete, self._partial = data.split(b"\n")
            out.extend(line for line in complete if line.strip())
        return out, False


def rotate(path: Path, pid_file: Path, max_bytes: int) -> bool:
    """Rename ``path`` to ``path.1`` (replacing it) when it is larger than ``max_bytes`` and
    send SIGUSR1 to the nginx master so that it reopens its logs. True when it rotated."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    os.replace(path, path.with_name(path.name + ".1"))
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        log.warning("access log rotated but nginx (pid %d) is gone", pid)
    return True
