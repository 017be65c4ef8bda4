"""An edge node's Prometheus metrics: its traffic, its backends, its applies, its DNS server.

``AgentMetrics`` holds the node's registry:

- **traffic per site** (``edgeplane_edge_requests_total`` by status class and cache status,
  ``edgeplane_edge_sent_bytes_total``, ``edgeplane_edge_static_responses_total``: served from
  a bundle, ``edgeplane_edge_upstream_duration_seconds``, ``edgeplane_edge_blocked_requests_total``
  by reason: what the edge's limits refused), from the counters the access log feeds
  (``site_totals``); a site that served nothing since the agent started has no series;
- **backends**: ``edgeplane_edge_backend_up`` (1 up, 0 down; unknown ones are left out) and
  the last check's latency, per pool and backend, as the node's active checks see them;
- **WAF matches** (``edgeplane_waf_matches_total`` by project, rule and action), from
  ModSecurity's audit log (``waf_log``);
- **edge functions** (``edgeplane_edge_function_invocations_total`` by site, function and
  outcome: ok, exception, timeout, memory, unavailable; ``edgeplane_edge_function_duration_seconds``
  by site and function, the whole request), from the access log lines of functions
  (``function_stats``);
- **applies**: ``edgeplane_edge_apply_duration_seconds`` by outcome, the revisions received and
  served, restarts of nginx and of the DNS server, purges by outcome;
- **bundles**: the sites' bundles by state (fetching, active, failed);
- **the DNS server's own counters**: PowerDNS's ``pdns_auth_*`` metrics, read from its web
  server's ``/metrics`` at each scrape and passed on as they are (a scrape that cannot read
  them says so in ``edgeplane_edge_dns_metrics_up``);
- the agent's process (``process_*``: CPU, resident memory, open files).

Everything dynamic is read at scrape time, in the scraping thread: nothing is computed for
metrics between scrapes but the counters the log lines add to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from edgeplane.node.agent.function_stats import FunctionTotals
from edgeplane.node.agent.site_totals import SiteTotals, cumulative
from edgeplane.node.agent.waf_log import WafCounts
from edgeplane.protocol.messages import BackendState

APPLY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _le(ms: float) -> str:
    return "+Inf" if ms == float("inf") else repr(ms / 1000)


class TrafficCollector(Collector):
    def __init__(self, totals: SiteTotals) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "edgeplane_edge_requests",
            "Requests served, by site, status class and cache status",
            labels=["site", "status_class", "cache"],
        )
        sent = CounterMetricFamily(
            "edgeplane_edge_sent_bytes", "Bytes sent to clients, by site", labels=["site"]
        )
        static = CounterMetricFamily(
            "edgeplane_edge_static_responses",
            "Responses served from a static bundle, by site",
            labels=["site"],
        )
        upstream = HistogramMetricFamily(
            "edgeplane_edge_upstream_duration_seconds",
            "Time spent waiting on the origin (all tries of a request), by site",
            labels=["site"],
        )
        blocked = CounterMetricFamily(
            "edgeplane_edge_blocked_requests",
            "Requests the edge refused itself, by site and reason (rate_limit, "
            "connection_limit, denied, timeout, too_large)",
            labels=["site", "reason"],
        )
        for site, c in self.totals.snapshot():
            for (klass, cache), n in list(c.requests.items()):
                requests.add_metric([site, klass, cache], n)
            for reason, n in sorted(c.blocked.items()):
                blocked.add_metric([site, reason], n)
            sent.add_metric([site], c.bytes_out)
            static.add_metric([site], c.static)
            buckets = c.cumulative()
            if buckets[-1][1]:
                upstream.add_metric(
                    [site],
                    [(_le(ms), n) for ms, n in buckets],
                    sum_value=c.upstream_ms / 1000,
                )
        yield from (requests, sent, static, upstream, blocked)


class WafCollector(Collector):
    def __init__(self, counts: WafCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        matches = CounterMetricFamily(
            "edgeplane_waf_matches",
            "WAF rule matches, by project, rule and action (blocked, detected)",
            labels=["project", "rule", "action"],
        )
        for (project, rule, action), n in self.counts.snapshot():
            matches.add_metric([project, rule, action], n)
        yield matches


class FunctionCollector(Collector):
    def __init__(self, totals: FunctionTotals) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        invocations = CounterMetricFamily(
            "edgeplane_edge_function_invocations",
            "Edge function invocations, by site, function and outcome (ok, exception, "
            "timeout, memory, unavailable)",
            labels=["site", "function", "outcome"],
        )
        duration = HistogramMetricFamily(
            "edgeplane_edge_function_duration_seconds",
            "Whole-request time of edge function invocations, by site and function",
            labels=["site", "function"],
        )
        for (site, name), c in self.totals.snapshot():
            for outcome, n in sorted(c.outcomes.items()):
                invocations.add_metric([site, name, outcome], n)
            buckets = cumulative(c.duration)
            if buckets[-1][1]:
                duration.add_metric(
                    [site, name],
                    [(_le(ms), n) for ms, n in buckets],
                    sum_value=c.duration_ms / 1000,
                )
        yield from (invocations, duration)


@dataclass
class NodeView:
    """What the state collector reads of the agent, as functions (called at scrape time)."""

    backends: Callable[[], list[BackendState]]
    revisions: Callable[[], dict[str, int | None]]  # received / served
    restarts: Callable[[], dict[str, int]]  # nginx / dns
    bundles: Callable[[], dict[str, str]]  # site -> state
    healthy: Callable[[], bool]
    counts: Callable[[], dict[str, int]]  # sites / zones / certificates served


class StateCollector(Collector):
    def __init__(self, view: NodeView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        v = self.view
        up = GaugeMetricFamily(
            "edgeplane_edge_backend_up",
            "1 when the node's active checks see a backend up, 0 when down",
            labels=["pool", "backend"],
        )
        latency = GaugeMetricFamily(
            "edgeplane_edge_backend_check_latency_seconds",
            "The latency of a backend's last successful check",
            labels=["pool", "backend"],
        )
        for b in v.backends():
            if b.state != "unknown":
                up.add_metric([b.pool, b.backend], 1 if b.state == "up" else 0)
            if b.latency_ms is not None:
                latency.add_metric([b.pool, b.backend], b.latency_ms / 1000)
        yield up
        yield latency
        revision = GaugeMetricFamily(
            "edgeplane_edge_revision",
            "The snapshot revision newest received and served",
            labels=["state"],
        )
        for state, value in v.revisions().items():
            if value is not None:
                revision.add_metric([state], value)
        yield revision
        restarts = CounterMetricFamily(
            "edgeplane_edge_engine_restarts",
            "Restarts of an engine that had died (nginx, dns)",
            labels=["engine"],
        )
        for engine, n in v.restarts().items():
            restarts.add_metric([engine], n)
        yield restarts
        bundles = GaugeMetricFamily(
            "edgeplane_edge_bundles", "Sites' static bundles by state", labels=["state"]
        )
        states = list(v.bundles().values())
        for state in ("fetching", "active", "failed"):
            bundles.add_metric([state], states.count(state))
        yield bundles
        yield GaugeMetricFamily(
            "edgeplane_edge_healthy",
            "1 when the node serves (nginx and its DNS server running), else 0",
            value=1 if v.healthy() else 0,
        )
        served = GaugeMetricFamily(
            "edgeplane_edge_served", "What the node serves (sites, zones)", labels=["kind"]
        )
        for kind, n in v.counts().items():
            served.add_metric([kind], n)
        yield served


class PdnsCollector(Collector):
    """PowerDNS's own metrics, from its web server (``GET /metrics``), passed on as they are."""

    def __init__(self, url: Callable[[], str | None], timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def collect(self) -> Iterator[Metric]:
        url = self.url()
        if url is None:
            return
        families: list[Metric] = []
        try:
            with httpx.Client(timeout=self.timeout_s, trust_env=False) as client:
                r = client.get(url)
            r.raise_for_status()
            families = list(text_string_to_metric_families(r.text))
        except (httpx.HTTPError, ValueError):
            families = []
        yield GaugeMetricFamily(
            "edgeplane_edge_dns_metrics_up",
            "1 when the DNS server's own metrics were read for this scrape",
            value=1 if families else 0,
        )
        yield from families


class AgentMetrics:
    """The node's registry, with the metrics the agent observes as it goes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.totals = SiteTotals()
        self.apply_duration = Histogram(
            "edgeplane_edge_apply_duration_seconds",
            "Applies of a snapshot to nginx (render, check, swap, reload, probe), by outcome",
            ["outcome"],
            buckets=APPLY_BUCKETS,
            registry=self.registry,
        )
        self.purges = Counter(
            "edgeplane_edge_purges",
            "Purges run on the node, by outcome (ok, failed)",
            ["outcome"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(TrafficCollector(self.totals))
        self.waf = WafCounts()
        self.registry.register(WafCollector(self.waf))
        self.functions = FunctionTotals()
        self.registry.register(FunctionCollector(self.functions))

    def watch(self, view: NodeView, dns_metrics_url: Callable[[], str | None]) -> None:
        self.registry.register(StateCollector(view))
        self.registry.register(PdnsCollector(dns_metrics_url))
