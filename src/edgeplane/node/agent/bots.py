"""Bots on an edge node: behaviour scored from the access log, flagged addresses, counts.

The access log lines the analytics read (``TrafficAggregator``) are also given here
(``BotWatch.add``). For each site whose bot protection has a behaviour action, each client
address has a window of ``window_s`` seconds (from its first request in it): its requests, the
distinct paths it asked for (counted up to the threshold) and the answers that were errors
(4xx and 5xx). ``score`` (pure) says which threshold a window is over; the address is then
**flagged** for ``flag_s`` seconds: an empty file ``<prefix>/bots/flagged/<site>/<address>``,
which nginx checks with a ``stat`` per request of that site (``render_bots``): no reload, and a
flag shows within the log's flush (a second) and the agent's read (a second).

The edge's own answers to bots (challenges and blocks, ``"source":"bot"``) and verified good
bots are not scored. A window is forgotten when it ends, and at most ``MAX_CLIENTS`` are kept
(the oldest go first). The counts of the log's ``"bot"`` field (``<class>:<action>``) per site
are the node's ``edgeplane_bot_requests_total`` (``BotCollector``); the analytics send them per
minute to the control plane.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from edgeplane.protocol.bots import BehaviourSpec
from edgeplane.protocol.config import SiteSpec

log = logging.getLogger(__name__)

MAX_CLIENTS = 100_000
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_VERDICT = re.compile(r"^(bad|impostor|automated|behaviour|good):(detect|challenge|pass|block)$")


@dataclass
class ClientWindow:
    """One client address's requests to one site since ``start`` (seconds)."""

    start: float
    requests: int = 0
    errors: int = 0
    paths: set[str] = field(default_factory=set)


def score(window: ClientWindow, limits: BehaviourSpec) -> str | None:
    """Why the window is over a threshold (for a log line), or None."""
    if window.requests > limits.max_requests:
        return f"{window.requests} requests in {limits.window_s} s"
    if len(window.paths) > limits.max_paths:
        return f"more than {limits.max_paths} distinct paths in {limits.window_s} s"
    if window.requests >= limits.min_requests:
        ratio = window.errors / window.requests
        if ratio > limits.max_error_ratio:
            return f"{ratio:.0%} errors over {window.requests} requests"
    return None


def verdict_of(doc: dict[str, Any]) -> tuple[str, str] | None:
    """A log line's ``(class, action)`` (``"bot":"bad:challenge"``), or None."""
    value = doc.get("bot")
    if not isinstance(value, str) or not value:
        return None
    m = _VERDICT.match(value)
    return (m.group(1), m.group(2)) if m else None


def _address(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


class BotWatch:
    """Scores client behaviour per site and keeps the flag files in step (see the module)."""

    def __init__(self, flag_dir: Path | None) -> None:
        """``flag_dir``: where nginx looks for flags (None: scoring only, nothing flagged)."""
        self.flag_dir = flag_dir
        self.limits: dict[str, BehaviourSpec] = {}  # site -> thresholds (action not off)
        self._windows: dict[tuple[str, str], ClientWindow] = {}
        self.flagged: dict[tuple[str, str], float] = {}  # (site, address) -> until (epoch s)
        self._written: set[tuple[str, str]] = set()  # flag files on disk
        # (site, class, action) -> requests since the agent started
        self.counts: dict[tuple[str, str, str], int] = {}
        self.flags_total = 0

    def clear_files(self) -> None:
        """Forget the flags of an earlier run (at start)."""
        if self.flag_dir is not None and self.flag_dir.exists():
            shutil.rmtree(self.flag_dir, ignore_errors=True)
        self._written.clear()

    def set_sites(self, sites: Iterable[SiteSpec]) -> None:
        """The sites served now: the thresholds of those with a behaviour action."""
        limits: dict[str, BehaviourSpec] = {}
        for site in sites:
            bots = site.bots
            if bots is not None and bots.behaviour.action != "off" and _SITE.match(site.id):
                limits[site.id] = bots.behaviour
        self.limits = limits
        for key in [k for k in self._windows if k[0] not in limits]:
            del self._windows[key]
        for key in [k for k in self.flagged if k[0] not in limits]:
            del self.flagged[key]

    def add(self, site: str, doc: dict[str, Any], seconds: float, status: int, count: int) -> None:
        """One access log line (``count`` equal ones) of ``site`` at ``seconds``."""
        verdict = verdict_of(doc)
        if verdict is not None:
            key = (site, *verdict)
            self.counts[key] = self.counts.get(key, 0) + count
        limits = self.limits.get(site)
        if limits is None or doc.get("source") == "bot" or (verdict and verdict[0] == "good"):
            return
        address = _address(doc.get("remote_addr"))
        if address is None:
            return
        wkey = (site, address)
        if wkey in self.flagged:
            return
        window = self._windows.get(wkey)
        if window is None or seconds >= window.start + limits.window_s:
            if window is not None:
                del self._windows[wkey]  # re-inserted last: the dict stays oldest first
            window = self._windows[wkey] = ClientWindow(start=seconds)
            if len(self._windows) > MAX_CLIENTS:
                del self._windows[next(iter(self._windows))]
        window.requests += count
        if status >= 400:
            window.errors += count
        if len(window.paths) <= limits.max_paths:
            uri = str(doc.get("uri") or "")
            window.paths.add(uri.split("?", 1)[0])
        reason = score(window, limits)
        if reason is not None:
            self.flagged[wkey] = seconds + limits.flag_s
            del self._windows[wkey]
            self.flags_total += 1
            log.info("bots: %s flagged on site %s: %s", address, site, reason)

    def expire(self, now: float) -> None:
        """Unflag what has served its time and forget windows that ended."""
        for key in [k for k, until in self.flagged.items() if until <= now]:
            del self.flagged[key]
        for key, window in list(self._windows.items()):
            limits = self.limits.get(key[0])
            if limits is None or now >= window.start + limits.window_s:
                del self._windows[key]

    def pending(self) -> bool:
        """True when the flag files differ from ``flagged``."""
        return self.flag_dir is not None and self._written != self.flagged.keys()

    def sync_files(self) -> None:
        """Make the flag files what ``flagged`` says (blocking: from a thread)."""
        if self.flag_dir is None:
            return
        wanted = set(self.flagged)
        for site, address in sorted(wanted - self._written):
            folder = self.flag_dir / site
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o755)
                for d in (self.flag_dir.parent, self.flag_dir, folder):
                    d.chmod(0o755)  # nginx's workers (another user) stat through them
                (folder / address).touch()
            except OSError as exc:
                log.warning("bots: cannot flag %s on %s: %s", address, site, exc)
                continue
            self._written.add((site, address))
        for site, address in sorted(self._written - wanted):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.flag_dir / site / address)
            self._written.discard((site, address))


class BotCollector(Collector):
    """``edgeplane_bot_requests_total{project,class,action}``: the log's bot verdicts."""

    def __init__(self, watch: BotWatch) -> None:
        self.watch = watch

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "edgeplane_bot_requests",
            "Requests of bots by project, class (bad, impostor, automated, behaviour, good) "
            "and action (detect, challenge, pass, block)",
            labels=["project", "class", "action"],
        )
        for (site, klass, action), n in sorted(list(self.watch.counts.items())):
            family.add_metric([site, klass, action], n)
        yield family
        flagged = CounterMetricFamily(
            "edgeplane_bot_flags", "Client addresses flagged for their behaviour"
        )
        flagged.add_metric([], self.watch.flags_total)
        yield flagged
