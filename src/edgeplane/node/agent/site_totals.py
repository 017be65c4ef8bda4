"""Traffic per site since the agent started: the counters of the edge node's Prometheus metrics.

The access log lines the analytics already read (``TrafficAggregator``) are added here too, so
metrics cost the hot path nothing: nginx writes the same log either way, and the agent adds a
line's figures to one more set of counters (lines alike within a second are counted once, as
for the analytics). Per site (a project): requests by status class and cache status, bytes
sent, responses served from a static bundle, requests the edge refused itself by reason
(``analytics.BLOCKED``: rate and connection limits, IP lists, slow clients, sizes), and a
histogram of upstream time (the times of
every try of a request added up). Counters only grow; they start at 0 with the agent, as
Prometheus counters do at a restart.

The histogram keeps the analytics' fine buckets (``UPSTREAM_MS_BUCKETS``); the exposition shows
the cumulative counts at ``PROM_BOUNDS_MS``, a subset of them, so each bucket is exact and a
site costs 14 lines of exposition rather than 27.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS

PROM_BOUNDS_MS: tuple[float, ...] = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)
assert set(PROM_BOUNDS_MS) <= set(UPSTREAM_MS_BUCKETS)
NO_CACHE = "none"  # the cache label of a response nginx's cache did not see


@dataclass
class SiteCounters:
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (class, cache) -> n
    bytes_out: int = 0
    static: int = 0
    upstream: list[int] = field(default_factory=lambda: [0] * (len(UPSTREAM_MS_BUCKETS) + 1))
    upstream_ms: float = 0.0  # the sum of the upstream times counted
    blocked: dict[str, int] = field(default_factory=dict)  # refused by the edge, by reason

    def cumulative(self) -> list[tuple[float, int]]:
        """(bound in ms, requests at most that long) at each of ``PROM_BOUNDS_MS``, then
        (inf, all)."""
        return cumulative(self.upstream)


def cumulative(histogram: list[int]) -> list[tuple[float, int]]:
    """A histogram over ``UPSTREAM_MS_BUCKETS`` (+1) -> (bound in ms, counts at most that
    long) at each of ``PROM_BOUNDS_MS``, then (inf, all)."""
    out: list[tuple[float, int]] = []
    total = 0
    wanted = iter(PROM_BOUNDS_MS)
    bound = next(wanted, None)
    for upper, count in zip(UPSTREAM_MS_BUCKETS, histogram, strict=False):
        total += count
        if upper == bound:
            out.append((upper, total))
            bound = next(wanted, None)
    out.append((float("inf"), total + histogram[-1]))
    return out


class SiteTotals:
    def __init__(self) -> None:
        self.sites: dict[str, SiteCounters] = {}

    def site(self, site: str) -> SiteCounters:
        counters = self.sites.get(site)
        if counters is None:
            counters = self.sites[site] = SiteCounters()
        return counters

    def snapshot(self) -> list[tuple[str, SiteCounters]]:
        """The sites and their counters, for a scrape in another thread (the dictionary is
        copied at once: the analytics' thread may add a site meanwhile)."""
        return list(self.sites.items())
