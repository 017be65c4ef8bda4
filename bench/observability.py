"""Observability, measured: the edge node's metrics port, alert latency, series storage.

Run from the repository root::

    .venv/bin/python bench/observability.py [--quick] [--stages hits,scrape,alerts,storage]

Four stages, on real control planes (``edgeplane up --no-edge``, SQLite) and real edge nodes
(``edgeplane edge`` with nginx, no DNS port), started with ``bench/edge.py``'s ``Stack``: a
``main`` control plane with the default settings (hits, alerts, scrape: the last, as it loads
it with thousands of domains) and a ``fast`` one with ``EDGEPLANE_ALERT_INTERVAL=1`` (alerts'
reference, storage); a control plane takes 5-10 s to start. They run in the order hits,
alerts, storage, scrape; the table lists them in the order below.

1. ``hits``: cached-hit throughput of an edge node with a metrics port, scraped every second
   during its wrk rounds (``GET /metrics`` with its bearer token, gzip, as Prometheus would but
   15 times as often), against an edge node of the same control plane with ``--metrics-port 0``
   (the reference), rounds interleaved; and the scrape's time under that load against idle.
2. ``scrape``: ``GET /metrics`` of a node serving ``--scrape-domains`` domains in one project
   (one site), then also ``--scrape-sites`` projects with a domain each (one site each, the
   high-cardinality case), every domain requested once through the node so that every site's
   counters exist: time (median and max of ``--scrape-samples``), body size plain and gzip,
   samples, the agent's RSS before and after (timed once the agent is quiet); the control
   plane's own ``/metrics`` beside it; how long the loads took to reach the node, and its stop.
   Reference: the same node at 10 domains.
3. ``alerts``: breach to delivered notification: a server's CPU sample of 95 posted until the
   webhook channel's receiver (in this process) has the ``firing`` message of ``cpu-high``
   (patched to ``for_s`` 0, ``window_s`` 60), then samples of 5 until it has the ``resolved``
   one; a control plane at ``EDGEPLANE_ALERT_INTERVAL`` 5 (the default) and one at 1 (the
   reference), side by side. Each sample uses a server of its own: the rule compares the mean
   over its window, which a server's earlier samples would hold for 60 s.
4. ``storage``: bytes per domain per day of the series tables (SQLite ``dbstat``: each table
   with its indexes) after an hour of traffic of ``--storage-domains`` domains, posted through
   the edge protocol as an agent does (``AnalyticsReport`` per minute built by the agent's own
   ``TrafficAggregator`` from access log lines shaped on a line the node really wrote,
   ``UptimeReport``), rolled up into hours by ``retention.roll_up``; beside the bytes of those
   raw access log lines.

Everything started is stopped and the temporary directory removed on exit, error, Ctrl-C or
SIGTERM. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx

# This folder holds dns.py: as a script's folder it would come first on sys.path and hide
# dnspython's ``dns`` package from edgeplane. It goes last instead (for common.py, edge.py).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.append(str(_HERE))

from common import BenchRun, Cleanup, log, pct, signals_raise, table  # noqa: E402
from edge import (  # noqa: E402
    BODY_BYTES,
    DOMAIN,
    SIZES,
    Conn,
    Node,
    PlainNginx,
    Stack,
    Target,
    WrkResult,
    free_port,
    load_domains,
    rss_mib,
    stop_process,
    wait_port,
    wait_until,
    warm,
    wrk,
)

STAGES = ("hits", "scrape", "alerts", "storage")
# The order they run in: scrape loads the main control plane with thousands of domains and
# projects (which every alert evaluation would then go through), so it comes last.
RUN_ORDER = ("hits", "alerts", "storage", "scrape")
PATH = SIZES["1 KiB"]
SCRAPE_REFERENCE_DOMAINS = 10
NO_DNS = ("--dns-port", "0")  # no stage needs the nodes' DNS (10,000 zones take minutes)
PROMETHEUS_HEADERS = {"Accept-Encoding": "gzip"}


# --------------------------------------------------------------------------- shared parts


def start_origin(tmp: Path, cleanup: Cleanup) -> int:
    """An nginx answering a 1 KiB body with ``Cache-Control: public, max-age=3600``."""
    port = free_port()
    origin = PlainNginx(tmp / "origin", f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{ add_header Cache-Control "public, max-age=3600";
                     return 200 "{'x' * (BODY_BYTES - 1)}\\n"; }}
    }}""")  # fmt: skip
    cleanup.add(origin.stop)
    wait_port(port)
    return port


def cdn(stack: Stack, origin_port: int, project: str | None = None) -> None:
    """The project's site: the origin, ``/*`` cached 3600 s (as bench/edge.py's stack)."""
    stack.call("POST", "/api/v1/infrastructure/cdn",
               params={"project": project} if project else None, json={
                   "origins": [{"url": f"http://127.0.0.1:{origin_port}"}],
                   "cache_rules": [{"pattern": "/*", "ttl": 3600}],
                   "security": {"force_https": False},
               })  # fmt: skip


def metrics_token(stack: Stack, name: str) -> tuple[str, Path]:
    """A metrics token of the control plane, and a file holding it (``--metrics-token-file``)."""
    token = str(stack.call("POST", "/api/v1/tokens",
                           json={"name": name, "scope": "metrics"})["token"])  # fmt: skip
    path = stack.tmp / f"{name}.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, path


@dataclass
class Metered:
    """An edge node with a metrics port, and the token it wants."""

    node: Node
    token: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


@dataclass
class Plane:
    """A control plane (bench/edge.py's ``Stack``), its origin, the default project's site (the
    origin, ``/*`` cached 3600 s) and its edge nodes by name, started when first asked for."""

    stack: Stack
    origin: int
    metered: dict[str, Metered] = field(default_factory=dict)
    plain: dict[str, Node] = field(default_factory=dict)

    def metrics_node(self, name: str) -> Metered:
        """The node ``name`` with a metrics port and a metrics token of the control plane."""
        if name not in self.metered:
            token, path = metrics_token(self.stack, f"{name}-metrics")
            port = free_port()
            node = self.stack.start_node(name, (*NO_DNS, "--metrics-port", str(port),
                                                "--metrics-token-file", str(path)))  # fmt: skip
            wait_port(port, 60)
            self.metered[name] = Metered(node, token, port)
            self.stack.wait_in_sync()
        return self.metered[name]

    def node(self, name: str) -> Node:
        """The node ``name`` without a metrics port (``--metrics-port 0``)."""
        if name not in self.plain:
            self.plain[name] = self.stack.start_node(name, (*NO_DNS, "--metrics-port", "0"))
            self.stack.wait_in_sync()
        return self.plain[name]

    def retire(self, name: str) -> None:
        """Stop the node and forget it (the control plane waits for it no more)."""
        node = self.plain.pop(name, None)
        if node is None:
            return
        stop_process(node.process, timeout=60)
        self.stack.nodes.remove(node)
        self.stack.call("DELETE", f"/api/v1/edge/nodes/{self.stack.node_doc(name)['id']}")


class Planes:
    """The run's control planes, each started when a stage first needs it and kept to the end
    (one takes 5-10 s to start): ``main``, with the default settings (the stages ``hits``, then
    ``alerts``' default interval, then ``scrape``, which loads it with thousands of domains
    last), and ``fast``, with ``EDGEPLANE_ALERT_INTERVAL=1`` (``alerts``' reference, then
    ``storage``)."""

    ENV: ClassVar[dict[str, dict[str, str]]] = {
        "main": {},
        "fast": {"EDGEPLANE_ALERT_INTERVAL": "1"},
    }

    def __init__(self, run: BenchRun) -> None:
        self.run = run
        self.planes: dict[str, Plane] = {}

    def __getitem__(self, key: str) -> Plane:
        if key not in self.planes:
            log(f"starting control plane {key}")
            tmp = self.run.tmp / key
            tmp.mkdir(parents=True, exist_ok=True)
            stack = Stack(tmp, self.run.cleanup)
            stack.start_control_plane(stapling=False, env_extra=self.ENV[key])
            origin = start_origin(tmp, self.run.cleanup)
            if key == "main":
                stack.call("POST", "/api/v1/infrastructure/domains", json={"domain": DOMAIN})
            cdn(stack, origin)
            self.planes[key] = Plane(stack, origin)
        return self.planes[key]


@dataclass
class Scrape:
    ms: float
    body: bytes  # as sent (gzip when asked)
    text: str  # decoded


def scrape(client: httpx.Client, url: str, token: str, gzipped: bool = True) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"}
    if gzipped:
        headers.update(PROMETHEUS_HEADERS)
    else:
        headers["Accept-Encoding"] = "identity"
    t0 = time.perf_counter()
    with client.stream("GET", url, headers=headers) as r:
        raw = b"".join(r.iter_raw())
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"GET {url}: {r.status_code} {raw[:300]!r}")
        encoded = r.headers.get("content-encoding") == "gzip"
    return Scrape(ms, raw, (gzip.decompress(raw) if encoded else raw).decode())


def samples(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


REQUESTS_LINE = re.compile(r"^edgeplane_edge_requests_total\{([^}]*)\} (\S+)$", re.M)


def site_requests(text: str) -> dict[str, float]:
    """Requests per site in an exposition (``edgeplane_edge_requests_total``)."""
    out: dict[str, float] = {}
    for labels, value in REQUESTS_LINE.findall(text):
        m = re.search(r'site="([^"]*)"', labels)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(value)
    return out


def request_each(port: int, hosts: list[str], threads: int = 4) -> int:
    """One GET of the cached path per host through the node (``threads`` keep-alive
    connections); the answers that were not 200."""
    bad = [0] * threads

    def work(k: int) -> None:
        conn = Conn(port)
        for host in hosts[k::threads]:
            if conn.get(PATH, host)[0] != 200:
                bad[k] += 1
        conn.close()

    workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(bad)


def cpu_s(pid: int) -> float:
    """A process's CPU seconds so far (user + system)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _ratio(value: float, ref: float, fmt: str = ".2f") -> str:
    return f"{value / ref:{fmt}}" if ref else ""


# --------------------------------------------------------------------------- hits


class Scraper:
    """GET /metrics every ``every`` seconds (start to start) until stopped; the times."""

    def __init__(self, url: str, token: str, every: float = 1.0) -> None:
        self.url, self.token, self.every = url, token, every
        self.ms: list[float] = []
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    self.ms.append(scrape(client, self.url, self.token).ms)
                except (httpx.HTTPError, RuntimeError):
                    self.failed += 1
                self.stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def __enter__(self) -> Scraper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def bench_hits(planes: Planes, args: argparse.Namespace) -> list[list[str]]:
    plane = planes["main"]
    off = plane.node("metrics-off")
    on = plane.metrics_node("metrics-on")
    targets = {"off": Target("metrics off", off.http_port, DOMAIN, PATH),
               "on": Target("metrics on", on.node.http_port, DOMAIN, PATH)}  # fmt: skip
    for t in targets.values():
        warm(t)
    url, token = on.url, on.token
    with httpx.Client(timeout=10, trust_env=False) as client:
        idle = [scrape(client, url, token).ms for _ in range(10)]
        first = scrape(client, url, token)
    log(f"hits: idle scrape {statistics.median(idle):.1f} ms, {samples(first.text)} samples")
    runs: dict[str, list[WrkResult]] = {"on": [], "off": []}
    nodes = {"on": on.node, "off": off}
    cpu: dict[str, list[float]] = {"on": [], "off": []}  # the agent's CPU s per round
    during: list[float] = []
    failed = 0
    for i in range(args.rounds):
        for key in ("off", "on") if i % 2 == 0 else ("on", "off"):
            t = targets[key]
            before = cpu_s(nodes[key].process.pid)
            if key == "on":
                with Scraper(url, token) as scraper:
                    r = wrk(t.url, t.host, args.duration, args.connections, args.threads)
                during += scraper.ms
                failed += scraper.failed
                extra = (f", {len(scraper.ms)} scrapes, "
                         f"max {max(scraper.ms, default=float('nan')):.1f} ms")  # fmt: skip
            else:
                r = wrk(t.url, t.host, args.duration, args.connections, args.threads)
                extra = ""
            cpu[key].append(cpu_s(nodes[key].process.pid) - before)
            runs[key].append(r)
            log(f"hits round {i + 1} {t.label}: {r.rps:,.0f} req/s p99 {r.p99_ms:.2f} ms "
                f"errors {r.errors} non-2xx {r.non2xx}, agent CPU {cpu[key][-1]:.2f} s"
                f"{extra}")  # fmt: skip

    def med(key: str, attr: str = "rps") -> float:
        return float(statistics.median(getattr(r, attr) for r in runs[key]))

    on_rps, off_rps = med("on"), med("off")
    errors = sum(r.errors + r.non2xx for rs in runs.values() for r in rs)
    # each round's on / off (the same round: what the rest of the machine did is alike)
    paired = [a.rps / b.rps for a, b in zip(runs["on"], runs["off"], strict=True)]
    return [
        [f"cached hits 1 KiB, req/s: metrics on (scraped every 1 s) / off, median of "
         f"{args.rounds} x {args.duration:g} s", f"{on_rps:,.0f}", f"{off_rps:,.0f}",
         _ratio(on_rps, off_rps, ".3f")],
        ["cached hits 1 KiB, req/s on / off of the same round: median (min-max)",
         f"{statistics.median(paired):.3f} ({min(paired):.3f}-{max(paired):.3f})", "", ""],
        ["cached hits 1 KiB, p99 ms: metrics on / off", f"{med('on', 'p99_ms'):.2f}",
         f"{med('off', 'p99_ms'):.2f}", _ratio(med("on", "p99_ms"), med("off", "p99_ms"))],
        [f"scrape GET /metrics during load / idle, ms p50 / max ({len(during)} / {len(idle)})",
         f"{pct(during, 50):.1f} / {max(during, default=float('nan')):.1f}",
         f"{pct(idle, 50):.1f} / {max(idle):.1f}", _ratio(pct(during, 50), pct(idle, 50))],
        [f"agent CPU s per {args.duration:g} s round (reads the access log; on: also the "
         "scrapes), median", f"{statistics.median(cpu['on']):.2f}",
         f"{statistics.median(cpu['off']):.2f}",
         _ratio(statistics.median(cpu["on"]), statistics.median(cpu["off"]))],
        ["cached hits: wrk errors + non-2xx (all runs) / failed scrapes", f"{errors} / {failed}",
         "", ""],
    ]  # fmt: skip


# --------------------------------------------------------------------------- scrape


@dataclass
class Exposure:
    """What ``--scrape-samples`` scrapes of one layout gave."""

    label: str
    ms: list[float]
    plain: int
    gzipped: int
    samples: int
    sites: int
    rss: tuple[float, float]  # agent MiB before / after
    cp_ms: list[float]
    cp_plain: int
    cp_samples: int
    busy_s: float  # waited for the agent to be quiet before the scrapes


QUIET_CPU = 0.25  # the agent is quiet: less than this CPU s in a second
QUIET_TIMEOUT_S = 300.0


def wait_quiet(pid: int, timeout: float = QUIET_TIMEOUT_S) -> float:
    """Until the agent spends less than ``QUIET_CPU`` of a second's CPU in a second (it is
    not in the middle of work of its own after a change), ``timeout`` at most; the seconds
    waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_s(pid)
        time.sleep(1.0)
        if cpu_s(pid) - before < QUIET_CPU:
            break
    return time.monotonic() - started


def expose(stack: Stack, m: Metered, label: str, count: int) -> Exposure:
    node, url, token = m.node, m.url, m.token
    busy = wait_quiet(node.process.pid)
    if busy >= QUIET_TIMEOUT_S:
        log(f"scrape {label}: the agent was still busy after {busy:.0f} s; scraped anyway")
    with httpx.Client(timeout=60, trust_env=False) as client:
        before = rss_mib(node.process.pid)
        got = [scrape(client, url, token) for _ in range(count)]
        after = rss_mib(node.process.pid)
        plain = scrape(client, url, token, gzipped=False)
        cp = [scrape(client, f"{stack.url}/metrics", token) for _ in range(count)]
        cp_plain = scrape(client, f"{stack.url}/metrics", token, gzipped=False)
    ms = [s.ms for s in got]
    e = Exposure(label, ms, len(plain.body), len(got[-1].body), samples(plain.text),
                 len(site_requests(plain.text)), (before, after), [s.ms for s in cp],
                 len(cp_plain.body), samples(cp_plain.text), busy)  # fmt: skip
    log(f"scrape {label}: {statistics.median(ms):.1f} ms median, max {max(ms):.1f} ms, "
        f"{e.plain:,} bytes ({e.gzipped:,} gzip), {e.samples:,} samples, {e.sites} sites, agent "
        f"RSS {before:.1f} -> {after:.1f} MiB; control plane {statistics.median(e.cp_ms):.1f} ms, "
        f"{e.cp_plain:,} bytes; waited {busy:.0f} s for a quiet agent")  # fmt: skip
    return e


def domain_names(stack: Stack, project: str = "default") -> list[str]:
    """The project's domains, from the control plane's database."""
    from sqlalchemy import select

    from edgeplane.secrets import SecretBox
    from edgeplane.settings import Settings
    from edgeplane.store.actor import LOCAL
    from edgeplane.store.db import Database
    from edgeplane.store.tables import DomainRow

    settings = Settings.from_env(home=stack.tmp / "cp")
    db = Database(settings.effective_database_url, secrets=SecretBox.from_settings(settings))
    try:
        with db.read(LOCAL, project) as tx:
            return list(tx.session.scalars(
                select(DomainRow.name).where(DomainRow.project_id == project)))  # fmt: skip
    finally:
        db.dispose()


def serve_all(m: Metered, hosts: list[str], sites: dict[str, int]) -> None:
    """Every host requested once through the node, until the node counted them (``sites``:
    the requests each site gets, counted on top of what the node had counted before)."""
    with httpx.Client(timeout=60, trust_env=False) as client:
        base = site_requests(scrape(client, m.url, m.token).text)
        t0 = time.perf_counter()
        bad = request_each(m.node.http_port, hosts)
        log(f"scrape: {len(hosts):,} domains requested in {time.perf_counter() - t0:.1f} s "
            f"({bad} answers not 200)")  # fmt: skip

        def counted() -> bool:
            got = site_requests(scrape(client, m.url, m.token).text)
            return all(got.get(s, 0) >= base.get(s, 0) + n for s, n in sites.items())

        wait_until(counted, 120, f"the node counting {len(hosts)} requests", every=0.5)


def bench_scrape(planes: Planes, args: argparse.Namespace) -> list[list[str]]:
    plane = planes["main"]
    stack = plane.stack
    plane.retire("metrics-off")  # of the hits stage: it would apply every domain too
    load_domains(stack, SCRAPE_REFERENCE_DOMAINS)
    m = plane.metrics_node("metrics-on")
    stack.wait_in_sync()
    hosts = domain_names(stack)
    serve_all(m, hosts, {"default": len(hosts)})
    n = args.scrape_samples
    ref = expose(stack, m, f"{len(hosts)} domains", n)
    # one project with --scrape-domains domains: one site
    t0 = time.perf_counter()
    load_domains(stack, args.scrape_domains)
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    stack.wait_in_sync(1800)
    synced = time.perf_counter() - t0
    log(f"scrape: {args.scrape_domains:,} domains loaded in {loaded:.0f} s, node in sync "
        f"{synced:.0f} s later")  # fmt: skip
    hosts = domain_names(stack)
    serve_all(m, hosts, {"default": len(hosts)})
    one = expose(stack, m, f"{len(hosts):,} domains, 1 site", n)
    # --scrape-sites projects with a domain each: a site each
    t0 = time.perf_counter()
    names = [f"site{i}" for i in range(args.scrape_sites)]
    for name in names:
        stack.call("POST", "/api/v1/projects", json={"id": name})
        stack.call("POST", "/api/v1/infrastructure/domains", params={"project": name},
                   json={"domain": f"{name}.localhost"})  # fmt: skip
        cdn(stack, plane.origin, name)
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    stack.wait_in_sync(1800)
    made_synced = time.perf_counter() - t0
    log(f"scrape: {len(names):,} projects made through the API in {made:.0f} s, node in "
        f"sync {made_synced:.0f} s later")  # fmt: skip
    serve_all(m, [f"{s}.localhost" for s in names], dict.fromkeys(names, 1))
    label = f"{len(hosts) + len(names):,} domains, {len(names) + 1:,} sites"
    many = expose(stack, m, label, n)
    # Stopped here, with time to finish what it is doing (timed: the bench's own cleanup
    # gives an agent 60 s).
    t0 = time.perf_counter()
    stop_process(m.node.process, timeout=600)
    stopped = time.perf_counter() - t0
    log(f"scrape: the agent stopped {stopped:.1f} s after SIGTERM")

    rows: list[list[str]] = []
    for e in (one, many):
        what = f"edge node /metrics, {e.label} (vs {ref.label})"
        rows += [
            [f"{what}: ms median / max of {n}", f"{statistics.median(e.ms):.1f} / {max(e.ms):.1f}",
             f"{statistics.median(ref.ms):.1f} / {max(ref.ms):.1f}",
             _ratio(statistics.median(e.ms), statistics.median(ref.ms), ".1f")],
            [f"{what}: bytes plain / gzip", f"{e.plain:,} / {e.gzipped:,}",
             f"{ref.plain:,} / {ref.gzipped:,}", _ratio(e.plain, ref.plain, ".1f")],
            [f"{what}: samples (sites with series)", f"{e.samples:,} ({e.sites:,})",
             f"{ref.samples:,} ({ref.sites})", _ratio(e.samples, ref.samples, ".1f")],
            [f"{what}: agent RSS MiB before / after the scrapes",
             f"{e.rss[0]:.1f} / {e.rss[1]:.1f}", f"{ref.rss[0]:.1f} / {ref.rss[1]:.1f}",
             _ratio(e.rss[1], ref.rss[1])],
            [f"control plane /metrics, {e.label}: ms median / bytes / samples",
             f"{statistics.median(e.cp_ms):.1f} / {e.cp_plain:,} / {e.cp_samples:,}",
             f"{statistics.median(ref.cp_ms):.1f} / {ref.cp_plain:,} / {ref.cp_samples:,}",
             _ratio(statistics.median(e.cp_ms), statistics.median(ref.cp_ms), ".1f")],
        ]  # fmt: skip
    rows += [
        [f"scrape setup: {args.scrape_domains:,} domains loaded / node in sync after (s); "
         f"{len(names):,} projects through the API / node in sync after (s)",
         f"{loaded:.0f} / {synced:.0f}; {made:.0f} / {made_synced:.0f}", "", ""],
        ["agent busy (> 0.25 s CPU a second) before the scrapes, s: "
         + ", ".join(e.label for e in (ref, one, many)),
         ", ".join(f"{e.busy_s:.0f}" for e in (ref, one, many)), "", ""],
        [f"agent stop: SIGTERM -> exited, s ({label})", f"{stopped:.1f}", "", ""],
    ]  # fmt: skip
    return rows


# --------------------------------------------------------------------------- alerts


class Receiver:
    """A webhook receiver: every POSTed JSON document with the time it arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append((at, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def arrived(self, event: str, obj: str) -> float | None:
        with self.lock:
            for at, doc in self.received:
                if doc.get("event") == event and doc.get("object_id") == obj:
                    return at
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ALERT_TIMEOUT_S = 60.0
# A breach (or recovery) comes a random 0-6 s after the lane's previous message: 6 s is the
# longest evaluation period here (``max(interval, window_s / 10)``), so breaches fall at every
# phase of the evaluations. Posted right after a delivery, they would all come at the same
# phase (just after an evaluation) and wait a whole period each.
ALERT_PHASE_S = 6.0
INTERVALS = {"main": "5", "fast": "1"}  # the default, then the reference


@dataclass
class Latencies:
    firing: list[float] = field(default_factory=list)  # ms
    resolved: list[float] = field(default_factory=list)
    missed: int = 0
    errors: list[BaseException] = field(default_factory=list)


def alert_lane(stack: Stack, receiver: Receiver, samples: range, interval: str,
               stop: threading.Event, into: Latencies, seed: int) -> None:  # fmt: skip
    """Breach and recovery of a server of its own for each of ``samples``, one after the
    other."""
    rnd = random.Random(seed)

    def sample(server: str, cpu: float) -> None:
        stack.call("POST", f"/api/v1/infrastructure/servers/{server}/metrics",
                   json={"cpu_percent": cpu, "memory_percent": 40})  # fmt: skip

    def until(event: str, server: str, cpu: float) -> float | None:
        """Post ``cpu`` now and every second until ``event`` of ``server`` arrives."""
        t0 = last = time.monotonic()
        sample(server, cpu)
        while not stop.is_set() and time.monotonic() - t0 < ALERT_TIMEOUT_S:
            at = receiver.arrived(event, server)
            if at is not None:
                return (at - t0) * 1000
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                sample(server, cpu)
            time.sleep(0.01)
        return None

    try:
        for i in samples:
            server = f"bench-{i}"
            stack.call("POST", "/api/v1/infrastructure/servers", json={
                "id": server, "name": f"Bench {i}", "type": "primary", "region": "europe",
                "location": "eu-central", "capacity": {"cpu": 8, "memory": 32, "storage": 500},
            })  # fmt: skip
            for event, cpu, into_list in (("firing", 95.0, into.firing),
                                          ("resolved", 5.0, into.resolved)):  # fmt: skip
                if stop.wait(rnd.uniform(0, ALERT_PHASE_S)):
                    return
                ms = until(event, server, cpu)
                if ms is None:
                    into.missed += 1
                    log(f"alerts (interval {interval} s) sample {i + 1}: no {event} message "
                        f"within {ALERT_TIMEOUT_S:.0f} s")  # fmt: skip
                    break
                into_list.append(ms)
                log(f"alerts (interval {interval} s) sample {i + 1}: {event} delivered after "
                    f"{ms:,.0f} ms")  # fmt: skip
    except BaseException as exc:  # reported by the main thread
        into.errors.append(exc)


def bench_alerts(planes: Planes, args: argparse.Namespace) -> list[list[str]]:
    got = {k: Latencies() for k in INTERVALS}
    lanes: list[threading.Thread] = []
    stop = threading.Event()
    for key, interval in INTERVALS.items():
        stack = planes[key].stack
        receiver = Receiver()
        planes.run.cleanup.add(receiver.stop)
        stack.call("POST", "/api/v1/alerts/channels", json={
            "id": "bench-hook", "name": "Bench hook",
            "config": {"kind": "webhook", "url": receiver.url}})  # fmt: skip
        stack.call("PATCH", "/api/v1/alerts/rules/cpu-high", json={"for_s": 0, "window_s": 60})
        lanes += [threading.Thread(target=alert_lane, daemon=True, args=(
            stack, receiver, range(k, args.alert_samples, args.alert_lanes), interval, stop,
            got[key], args.seed * 1000 + int(interval) * 100 + k))
            for k in range(args.alert_lanes)]  # fmt: skip
    # Both control planes at once (the same conditions for both), in lanes of their own.
    try:
        for t in lanes:
            t.start()
        for t in lanes:
            while t.is_alive():
                t.join(0.5)
    finally:
        stop.set()
    for key, interval in INTERVALS.items():
        if got[key].errors:
            raise RuntimeError(f"alerts, interval {interval} s") from got[key].errors[0]

    default, ref = got["main"], got["fast"]

    def fig(values: list[float]) -> str:
        return f"{pct(values, 50):,.0f} / {pct(values, 99):,.0f}" if values else "-"

    missed = f" ({default.missed} / {ref.missed} missed)" if default.missed or ref.missed else ""
    return [
        [f"alert: CPU 95 posted -> firing webhook delivered, ms p50 / p99 of "
         f"{len(default.firing)}, interval 5 s (reference: 1 s){missed}", fig(default.firing),
         fig(ref.firing), _ratio(pct(default.firing, 50), pct(ref.firing, 50))],
        ["alert: CPU 5 posted -> resolved webhook delivered, ms p50 / p99, interval 5 s "
         "(reference: 1 s)", fig(default.resolved), fig(ref.resolved),
         _ratio(pct(default.resolved, 50), pct(ref.resolved, 50))],
    ]  # fmt: skip


# --------------------------------------------------------------------------- storage


SERIES_TABLES = ("edge_analytics", "edge_analytics_hourly", "uptime_hourly", "uptime_state")
CLIENTS = (  # public addresses on every continent (GeoLite2 places them)
    "8.8.8.8", "1.1.1.1", "81.2.69.142", "89.160.20.112", "2.125.160.216", "175.16.199.1",
    "202.196.224.1", "216.160.83.56", "67.43.156.1", "149.101.100.1", "200.160.0.8",
    "41.77.128.1", "103.21.244.1", "185.199.108.1", "151.101.1.1", "13.32.0.1",
)  # fmt: skip
PATHS = ("/", "/index.html", "/static/v1/app.css", "/static/v1/app.js", "/img/{n}.jpg",
         "/api/items?page={n}", "/blog/post-{n}")  # fmt: skip
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
)


def log_lines(template: dict[str, Any], host: str, minute: datetime, count: int,
              rnd: random.Random) -> list[bytes]:  # fmt: skip
    """``count`` access log lines of ``host`` in ``minute``, shaped on a line the node wrote
    (its fields, in its order, compact JSON as nginx writes it): mostly cached hits, some
    misses and bypasses with upstream times, some 304 / 404 / 5xx, clients in many countries."""
    lines = []
    for k in range(count):
        doc = dict(template)
        at = minute + timedelta(seconds=k * 60 // count)
        cache = rnd.choices(("HIT", "MISS", "BYPASS", "EXPIRED"), (85, 10, 3, 2))[0]
        status = rnd.choices((200, 304, 404, 500), (92, 5, 2, 1))[0]
        upstream = "" if cache == "HIT" else f"{rnd.uniform(0.005, 0.3):.3f}"
        doc.update({
            "time": at.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "host": host, "status": status,
            "bytes_sent": rnd.choice((412, 1_347, 5_930, 31_284, 148_211)),
            "request_time": float(upstream or f"{rnd.uniform(0, 0.002):.3f}"),
            "upstream_response_time": upstream, "cache": cache,
            "remote_addr": rnd.choice(CLIENTS), "method": "GET",
            "uri": rnd.choice(PATHS).format(n=rnd.randrange(1000)), "ua": rnd.choice(AGENTS),
        })  # fmt: skip
        lines.append(json.dumps(doc, separators=(",", ":")).encode())
    return lines


def table_bytes(db_path: Path) -> tuple[dict[str, tuple[int, int]], str]:
    """Per series table: (bytes of the table and its indexes, rows); and how it was measured."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        out: dict[str, tuple[int, int]] = {}
        how = "dbstat (sum of pgsize of each table and its indexes)"
        for name in SERIES_TABLES:
            rows = int(conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
            parts = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE tbl_name = ? AND type IN ('table', "
                "'index')", (name,))]  # fmt: skip
            try:
                size = sum(int(conn.execute("SELECT coalesce(sum(pgsize), 0) FROM dbstat "
                                            "WHERE name = ?", (p,)).fetchone()[0])
                           for p in parts)  # fmt: skip
            except sqlite3.OperationalError:  # no dbstat in this SQLite
                size, how = -1, "no dbstat"
            out[name] = (size, rows)
        return out, how
    finally:
        conn.close()


def db_file_bytes(db_path: Path) -> int:
    return sum(p.stat().st_size for p in (db_path, Path(f"{db_path}-wal")) if p.exists())


def cp_database(stack: Stack) -> Any:
    from edgeplane.secrets import SecretBox
    from edgeplane.settings import Settings
    from edgeplane.store.db import Database

    settings = Settings.from_env(home=stack.tmp / "cp")
    return Database(settings.effective_database_url, secrets=SecretBox.from_settings(settings))


def bench_storage(planes: Planes, args: argparse.Namespace) -> list[list[str]]:
    from edgeplane.node.agent.analytics import TrafficAggregator, country_locator
    from edgeplane.protocol.messages import AnalyticsReport, UptimeHour, UptimeReport, UptimeState
    from edgeplane.services import retention

    rnd = random.Random(args.seed)
    plane = planes["fast"]
    stack, tmp = plane.stack, plane.stack.tmp
    load_domains(stack, args.storage_domains)
    node = plane.node("stored")
    stack.wait_in_sync()
    hosts = sorted(domain_names(stack))
    # a line the node wrote: a cached hit of the 1 KiB object
    conn = Conn(node.http_port)
    wait_until(lambda: conn.get(PATH, hosts[0])[1].get("x-cache-status") == "HIT", 30,
               "a cached hit")  # fmt: skip
    conn.close()
    access = node.nginx_prefix() / "logs" / "access.json"

    def hit_line() -> bytes | None:
        for line in reversed(access.read_bytes().splitlines()):
            if b'"HIT"' in line:
                return line
        return None

    real: bytes = wait_until(hit_line, 30, "a HIT line in the node's access log", every=0.2)
    template = json.loads(real)
    node_id = stack.node_doc(node.name)["id"]
    edge = stack.call("POST", "/api/v1/tokens", json={"name": "reports", "scope": "edge"})
    db_path = tmp / "cp" / "edgeplane.db"
    file_before = db_file_bytes(db_path)
    hour = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0,
                                                            microsecond=0)  # fmt: skip
    aggregator = TrafficAggregator(country_locator(None))
    log_bytes = lines = 0
    t0 = time.perf_counter()
    with httpx.Client(
        base_url=stack.url,
        timeout=120,
        trust_env=False,
        headers={"Authorization": f"Bearer {edge['token']}"},
    ) as client:

        def post(what: str, body: Any) -> None:
            r = client.post(f"/api/v1/edge/nodes/{node_id}/{what}",
                            content=body.model_dump_json(),
                            headers={"Content-Type": "application/json"})  # fmt: skip
            if r.status_code >= 300:
                raise RuntimeError(f"POST {what}: {r.status_code} {r.text[:300]}")

        for m in range(args.storage_minutes):
            minute = hour + timedelta(minutes=m)
            for host in hosts:
                batch = log_lines(template, host, minute, args.storage_rpm, rnd)
                log_bytes += sum(len(x) + 1 for x in batch)
                lines += len(batch)
                aggregator.add_lines(batch)
            post("analytics", AnalyticsReport(minutes=aggregator.changed()))
        now = datetime.now(UTC)
        expires = now + timedelta(days=60)
        post("uptime", UptimeReport(
            states=[UptimeState(kind=kind, target=h, site="default", up=True,
                                latency_ms=rnd.uniform(1, 30), checked_at=now,
                                since=now - timedelta(days=3),
                                expires_at=expires if kind == "https" else None)
                    for h in hosts for kind in ("http", "https", "dns")],
            hours=[UptimeHour(target=h, site="default", hour=hour, checks=60,
                              failures=rnd.choice((0, 0, 0, 1)),
                              latency_ms_sum=rnd.uniform(60, 1800)) for h in hosts],
        ))  # fmt: skip
    posted = time.perf_counter() - t0
    db = cp_database(stack)
    try:
        rolled = retention.roll_up(db)
    finally:
        db.dispose()
    log(f"storage: {lines:,} log lines ({log_bytes:,} bytes) of {len(hosts)} domains x "
        f"{args.storage_minutes} minutes posted as minutes in {posted:.1f} s; {rolled} "
        "hours rolled up")  # fmt: skip
    sizes, how = table_bytes(db_path)
    grown = db_file_bytes(db_path) - file_before

    domains, minutes = len(hosts), args.storage_minutes
    line_avg = log_bytes / lines
    log_day = log_bytes / (domains * minutes) * 1440  # per domain per day

    def per_row(name: str) -> float:
        size, rows = sizes[name]
        if size < 0:  # no dbstat: the file's growth, shared out by rows
            total_rows = sum(r for _, r in sizes.values()) or 1
            return grown / total_rows
        return size / rows if rows else float("nan")

    minute_day = per_row("edge_analytics") * 1440
    hour_day = per_row("edge_analytics_hourly") * 24
    uptime_day = per_row("uptime_hourly") * 24
    states = per_row("uptime_state") * 3
    series_day = minute_day + hour_day + uptime_day
    kept = minute_day * 7 + (hour_day + uptime_day) * 90 + states

    def kib(v: float) -> str:
        return f"{v / 1024:,.1f}"

    def row(label: str, value: float) -> list[str]:
        return [label, kib(value), kib(log_day), _ratio(value, log_day, ".3f")]

    rpm = args.storage_rpm
    ref = f"vs the raw access log of {rpm} requests a minute"
    return [
        row(f"series KiB per domain per day: minute rows, 1,440 ({per_row('edge_analytics'):,.0f} "
            f"bytes each; {ref})", minute_day),
        row(f"series KiB per domain per day: hourly rows, 24 "
            f"({per_row('edge_analytics_hourly'):,.0f} bytes each)", hour_day),
        row(f"series KiB per domain per day: uptime hourly rows, 24 "
            f"({per_row('uptime_hourly'):,.0f} bytes each)", uptime_day),
        row("series KiB per domain per day: all three", series_day),
        [f"series KiB per domain kept (7 days of minutes, 90 of hours, uptime state "
         f"{states:,.0f} bytes) / the raw log of 7 days", kib(kept), kib(log_day * 7),
         _ratio(kept, log_day * 7, ".3f")],
        [f"access log line bytes, mean ({lines:,} lines shaped on one the node wrote, "
         f"{len(real) + 1} bytes)", f"{line_avg:,.0f}", "", ""],
        [f"storage measured by: {how}; database file grew by KiB", kib(grown), "", ""],
    ]  # fmt: skip


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="the short mode: every stage once, small; the tests run it",
    )
    ap.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"the stages to run, of {','.join(STAGES)} (default: all)",
    )
    ap.add_argument("--rounds", type=int, default=5, help="wrk rounds of the hits stage")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk round")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--scrape-domains",
        type=int,
        default=10_000,
        help="domains of one project on the scraped node",
    )
    ap.add_argument(
        "--scrape-sites",
        type=int,
        default=1_000,
        help="projects (sites) of a domain each, added after --scrape-domains",
    )
    ap.add_argument("--scrape-samples", type=int, default=10, help="scrapes timed per layout")
    ap.add_argument(
        "--alert-samples",
        type=int,
        default=20,
        help="breaches (and recoveries) timed per alert interval",
    )
    ap.add_argument(
        "--alert-lanes",
        type=int,
        default=4,
        help="alert samples run at once (each on a server of its own)",
    )
    ap.add_argument("--storage-domains", type=int, default=200)
    ap.add_argument(
        "--storage-minutes",
        type=int,
        default=60,
        help="minutes of traffic posted (an hour: its rollup is measured too)",
    )
    ap.add_argument(
        "--storage-rpm",
        type=int,
        default=60,
        help="requests per domain per minute of the storage stage (the raw log's "
        "size is proportional to it; the series' is not)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument(
        "--keep-logs",
        default=None,
        metavar="DIR",
        help="copy the control planes' and the nodes' logs to DIR at the end",
    )
    args = ap.parse_args()
    stages = [s for s in str(args.stages).split(",") if s]
    if unknown := [s for s in stages if s not in STAGES]:
        ap.error(f"--stages: unknown {unknown}; the stages are {','.join(STAGES)}")
    if args.quick:
        args.rounds, args.duration = 1, 1.0
        args.scrape_domains, args.scrape_sites, args.scrape_samples = 100, 20, 5
        args.alert_samples, args.alert_lanes, args.storage_domains = 3, 3, 20
    needed = ["nginx"] + (["wrk"] if "hits" in stages else [])
    if missing := [t for t in needed if shutil.which(t) is None]:
        print(f"bench/observability.py needs {', '.join(missing)}: run scripts/bootstrap "
              "--with-test", file=sys.stderr)  # fmt: skip
        return 2
    run = BenchRun("obs")
    tmp = run.tmp
    rows: dict[str, list[list[str]]] = {}
    took: list[str] = []
    benches: dict[str, Callable[[Planes, argparse.Namespace], list[list[str]]]] = {
        "hits": bench_hits, "scrape": bench_scrape, "alerts": bench_alerts,
        "storage": bench_storage,
    }  # fmt: skip
    planes = Planes(run)
    try:
        with signals_raise():
            for stage in RUN_ORDER:
                if stage in stages:
                    log(f"stage {stage}")
                    started = time.monotonic()
                    rows[stage] = benches[stage](planes, args)
                    took.append(f"{stage} {time.monotonic() - started:.0f} s")
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    except BaseException:
        for path in sorted(tmp.glob("*/*.log")):  # what the control planes and nodes said
            lines = path.read_text(errors="replace").splitlines()[-40:]
            log(f"the end of {path.relative_to(tmp)}:\n" + "\n".join(lines))
        raise
    finally:
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for path in tmp.glob("*/*.log"):
                shutil.copy(path, keep / f"{path.parent.name}-{path.name}")
        run.close()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(table([r for stage in STAGES for r in rows.get(stage, [])], args.markdown))
    print(
        f"\n- {'short mode (--quick): small sizes, one round; ' if args.quick else ''}"
        f"time for the whole bench: {time.monotonic() - run.started:.0f} s "
        f"({', '.join(took)}); load average at the end {load}"
    )
    return run.status()


if __name__ == "__main__":
    raise SystemExit(main())
