"""API latency with 10,000 servers loaded, on SQLite and on PostgreSQL, through real HTTP.

Run from the repository root::

    .venv/bin/python bench/api.py [--servers 10000] [--samples N] [--backend sqlite|postgresql|both]
                                  [--server-mode subprocess|thread] [--markdown]

For each backend: a fresh database is migrated and loaded with ``--servers`` servers through
the service layer (timed), the control plane is served by uvicorn on a free loopback port
(by default in a child process of its own, as ``edgeplane serve`` runs it), and one
``httpx.Client`` (keep-alive, admin bearer token) times, one request after the other:

* a no-op route of the benchmark's own (the HTTP + FastAPI floor),
* ``POST /api/v1/infrastructure/servers``,
* ``GET /api/v1/infrastructure/servers?limit=100``, the first page and pages from the
  second half of the keyspace (cursors found by walking the whole listing first),
* ``GET /api/v1/infrastructure/route?client_ip=...&service_type=cdn`` for public IPv4 and
  IPv6 addresses on six continents.

Then, in this process, the reference: the same work as bare SQLAlchemy Core statements on the
same database (insert one server row; select 101 rows by keyset; the two routing
queries alone). The ratio column is API p50 / reference p50.

Memory: the server's peak RSS (``ru_maxrss`` inside the server process), this process's peak
RSS (loading, client and reference), and the tracemalloc peak of the server over a separate,
shorter traced pass: tracing slows the server down (by 1.2-2x for routes here), so it is never
on while latencies are timed (the slowdown it causes is printed).

Everything started is stopped (uvicorn, PostgreSQL) and every temporary directory removed, on
success, on error and on Ctrl-C / SIGTERM.

``--concurrency`` runs the concurrency mode instead (``bench/api_load.py``): reads and writes
per second under wrk with ``edgeplane serve --workers 1, 2, 4`` on SQLite and PostgreSQL, and
with replicas on PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import httpx
from sqlalchemy import Engine, and_, create_engine, event, insert, literal, or_, select
from sqlalchemy.engine import Connection

# This folder holds dns.py: as a script's folder it would come first on sys.path and hide
# dnspython's ``dns`` package from edgeplane. It goes last instead (for common.py).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.append(str(_HERE))
ROOT = _HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from common import BenchRun, signals_ignored  # noqa: E402

from edgeplane.model.inventory import MetricsSample, ServerCreate, ServiceCreate  # noqa: E402
from edgeplane.secrets import SecretBox  # noqa: E402
from edgeplane.services import server_services, servers  # noqa: E402
from edgeplane.services.access import ensure_admin_token  # noqa: E402
from edgeplane.settings import Settings  # noqa: E402
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT  # noqa: E402
from edgeplane.store.db import Database  # noqa: E402
from edgeplane.store.migrate import upgrade  # noqa: E402
from edgeplane.store.tables import Base, RegionRow, utcnow  # noqa: E402
from pgcluster import PostgresCluster, find_pg_bin  # noqa: E402

API = "/api/v1/infrastructure"
PAGE = 100
LOAD_BATCH = 500
DEFAULT_SERVERS = 10_000
# Default sample counts, chosen so that both backends finish in about three minutes on a
# two-core machine: loading 2 x 10,000 servers through the ORM takes about half of it, and
# route_request (30-50 ms at 10,000 servers) the biggest share of the rest.
DEFAULT_COUNTS = {"floor": 200, "create": 300, "list_first": 150, "list_deep": 150, "route": 500}
TRACED_COUNTS = {"floor": 0, "create": 10, "list_first": 10, "list_deep": 10, "route": 30}
WARMUP = 20
# Routing trusts metrics younger than this: long enough that samples ingested while loading
# stay fresh for the whole run, so the CPU/memory thresholds keep excluding servers.
METRICS_MAX_AGE_S = 24 * 3600.0

OPERATIONS = {
    "floor": "HTTP floor (no-op route)",
    "create": "create server (POST)",
    "list_first": "list servers, first page",
    "list_deep": "list servers, deep page",
    "route": "route_request cdn",
}
REFERENCES = {
    "floor": "none (no database work)",
    "create": "INSERT one server row in its own transaction",
    "list_first": "SELECT 101 server rows ORDER BY id LIMIT 101",
    "list_deep": "the same with id > cursor (same cursors as the API)",
    "route": "the two routing queries alone (regions with an eligible server, by EXISTS; "
    "the least-loaded eligible server of the first such region)",
}

# Public addresses (well-known resolvers and network operators) that GeoLite2-City places on
# six continents; IPv6 ones last. Checked against the packaged database (2018).
CLIENT_IPS = [
    "8.8.8.8",  # Google, US
    "208.67.222.222",  # OpenDNS, San Francisco
    "64.6.64.6",  # Verisign, Reston
    "12.127.17.72",  # AT&T, Burbank
    "149.112.121.10",  # CIRA, Ottawa
    "193.0.6.139",  # RIPE NCC, Amsterdam
    "80.67.169.12",  # FDN, France
    "194.25.0.68",  # Deutsche Telekom, Germany
    "212.58.244.20",  # BBC, London
    "130.237.32.1",  # KTH, Stockholm
    "77.88.8.8",  # Yandex, Moscow
    "200.160.2.3",  # NIC.br, Brazil
    "190.210.0.1",  # Buenos Aires
    "200.27.2.2",  # Santiago de Chile
    "202.12.27.33",  # WIDE (m.root), Tokyo
    "168.126.63.1",  # KT, Seoul
    "114.114.114.114",  # Nanjing
    "165.21.83.88",  # SingNet, Singapore
    "202.56.215.54",  # Delhi
    "203.2.218.214",  # Sydney
    "139.130.4.5",  # Telstra, Melbourne
    "196.25.1.1",  # Telkom, Johannesburg
    "41.58.0.1",  # Lagos
    "105.235.209.6",  # Juba
    "213.42.20.20",  # Etisalat, Dubai
    "212.71.32.1",  # Saudi Arabia
    "2001:4860:4860::8888",  # Google, Mountain View
    "2a00:1450:4001:81b::200e",  # Google, Frankfurt
    "2001:67c:2e8:22::c100:68b",  # RIPE NCC, Amsterdam
    "2001:dc3::35",  # WIDE, Japan
    "2001:12ff:0:4::3",  # NIC.br, Sao Paulo
    "2001:470:1f0b::1",  # Hurricane Electric, Odesa
    "2c0f:fb50:4003::1",  # Google, Kenya
    "2001:44b8::1",  # Internode, Adelaide
    "2403:6200::1",  # Thailand
    "2001:4490:dc4c::1",  # India
]

# Relative number of servers per seeded region code (any other code gets 4).
REGION_WEIGHTS = {
    "us-east": 14,
    "us-west": 10,
    "us-central": 6,
    "ca-central": 4,
    "sa-east": 6,
    "eu-west": 10,
    "uk-south": 6,
    "eu-central": 10,
    "eu-north": 4,
    "me-central": 4,
    "af-south": 3,
    "ap-south": 6,
    "ap-southeast": 7,
    "ap-east": 4,
    "ap-northeast": 7,
    "au-southeast": 5,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# Loading -----------------------------------------------------------------------------------


@dataclasses.dataclass
class LoadReport:
    servers: int = 0
    cdn: int = 0
    with_metrics: int = 0
    over_threshold: int = 0
    not_active: int = 0
    regions: int = 0
    seconds: float = 0.0


def _server_spec(rng: random.Random, index: int, code: str, area: str) -> ServerCreate:
    cpu = rng.choice([8, 16, 32, 64])
    status = rng.choices(
        ["active", "offline", "maintenance", "provisioning"], weights=[90, 5, 3, 2]
    )[0]
    return ServerCreate.model_validate(
        {
            "name": f"{code}-{index:05d}",
            "type": rng.choices(["edge", "cache", "primary", "secondary"], [50, 25, 15, 10])[0],
            "region": area,
            "location": code,
            "capacity": {
                "cpu": cpu,
                "memory": cpu * 4,
                "storage": rng.choice([250, 500, 1000, 2000]),
            },
            "status": status,
            "address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "labels": {"rack": f"r{rng.randrange(40):02d}", "bench": "api"},
        }
    )


def _metrics(rng: random.Random, settings: Settings) -> MetricsSample:
    hot = rng.random() < 0.15
    cpu = rng.uniform(settings.route_max_cpu + 1, 99.5) if hot else rng.uniform(5, 75)
    memory = rng.uniform(81, 95) if rng.random() < 0.05 else rng.uniform(20, 78)
    return MetricsSample.model_validate(
        {
            "cpu_percent": round(cpu, 1),
            "memory_percent": round(memory, 1),
            "storage_percent": round(rng.uniform(10, 80), 1),
            "network_in_mbps": round(rng.uniform(10, 900), 1),
            "network_out_mbps": round(rng.uniform(50, 4000), 1),
            "connections": rng.randrange(100, 50_000),
            "requests_per_second": round(rng.uniform(50, 20_000), 1),
            "latency_ms": round(rng.uniform(1, 40), 2),
        }
    )


def load_inventory(
    db: Database,
    count: int,
    rng: random.Random,
    settings: Settings,
    after_batch: Callable[[], None] | None = None,
) -> LoadReport:
    """``count`` servers through the service layer, most with a cdn service, some measured.

    ``after_batch`` runs after each committed batch (ANALYZE on PostgreSQL).
    """
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        catalogue = [(r.code, r.area) for r in tx.session.scalars(select(RegionRow))]
    if not catalogue:
        raise RuntimeError("the database has no regions (the migration seeds them)")
    weights = [REGION_WEIGHTS.get(code, 4) for code, _ in catalogue]
    report = LoadReport(regions=len(catalogue))
    started = time.perf_counter()
    for first in range(0, count, LOAD_BATCH):
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            for index in range(first, min(count, first + LOAD_BATCH)):
                code, area = rng.choices(catalogue, weights)[0]
                server = servers.create(tx, _server_spec(rng, index, code, area))
                report.servers += 1
                if server.status.value != "active":
                    report.not_active += 1
                if rng.random() < 0.85:
                    server_services.create(
                        tx,
                        ServiceCreate.model_validate(
                            {
                                "server_id": server.id,
                                "type": "cdn",
                                "settings": {"caching": rng.choice(["standard", "aggressive"])},
                            }
                        ),
                    )
                    report.cdn += 1
                if rng.random() < 0.6:
                    sample = _metrics(rng, settings)
                    servers.ingest_metrics(tx, server.id, [sample])
                    report.with_metrics += 1
                    if (
                        sample.cpu_percent >= settings.route_max_cpu
                        or sample.memory_percent >= settings.route_max_memory
                    ):
                        report.over_threshold += 1
        if after_batch is not None:
            after_batch()
        done = min(count, first + LOAD_BATCH)
        if done % 2000 == 0 or done == count:
            log(f"  loaded {done:,} servers ({time.perf_counter() - started:.1f} s)")
    report.seconds = time.perf_counter() - started
    return report


# Serving -------------------------------------------------------------------------------------


def _bench_app(settings: Settings, db: Database) -> Any:
    """The real app, plus a no-op route and memory probes of the benchmark's own."""
    from fastapi import FastAPI

    from edgeplane.api.app import create_app
    from edgeplane.routing.geoip import GeoLocator

    app: FastAPI = create_app(settings, db, locator=GeoLocator(settings.geoip_db))

    @app.get("/__bench/noop", include_in_schema=False)
    def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/__bench/tracemalloc/start", include_in_schema=False)
    def trace_start() -> dict[str, bool]:
        tracemalloc.start()
        tracemalloc.reset_peak()
        return {"tracing": True}

    @app.post("/__bench/tracemalloc/stop", include_in_schema=False)
    def trace_stop() -> dict[str, int]:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"current": current, "peak": peak}

    @app.get("/__bench/memory", include_in_schema=False)
    def memory() -> dict[str, int]:
        return {"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}

    return app


def _uvicorn_server(app: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
    )
    return uvicorn.Server(config)


def _listening_socket() -> socket.socket:
    # proto must be IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted
    # connections only when sock.proto == IPPROTO_TCP, and without it every response that
    # uvicorn writes in two parts waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def serve_main(argv: Sequence[str]) -> int:
    """Child process: serve the app on an inherited listening socket until stdin closes."""
    parser = argparse.ArgumentParser(prog="bench/api.py _serve")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings(
        home=Path(args.home), database_url=args.database_url, metrics_max_age_s=METRICS_MAX_AGE_S
    )
    db = Database(args.database_url, secrets=SecretBox.from_settings(settings))
    server = _uvicorn_server(_bench_app(settings, db))

    def watch_parent() -> None:
        # The parent holds our stdin open; EOF means it is done with us or died.
        with contextlib.suppress(OSError):
            sys.stdin.buffer.read()
        server.should_exit = True

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=watch_parent, name="watch-parent", daemon=True).start()
    try:
        server.run(sockets=[socket.socket(fileno=args.fd)])
    finally:
        db.dispose()
    return 0


class SubprocessServer:
    """uvicorn in a child process (its own interpreter and GIL, like ``edgeplane serve``)."""

    description = "uvicorn in a child process"

    def __init__(self, database_url: str, home: Path) -> None:
        sock = _listening_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "_serve",
                    "--database-url",
                    database_url,
                    "--home",
                    str(home),
                    "--fd",
                    str(sock.fileno()),
                ],
                stdin=subprocess.PIPE,
                pass_fds=[sock.fileno()],
                # Ctrl-C reaches only us; we stop the child ourselves.
                start_new_session=True,
            )
        finally:
            sock.close()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class ThreadServer:
    """uvicorn in a thread of this process (shares the GIL with the client)."""

    description = "uvicorn in a thread of the benchmark process"

    def __init__(self, database_url: str, home: Path) -> None:
        settings = Settings(
            home=home, database_url=database_url, metrics_max_age_s=METRICS_MAX_AGE_S
        )
        self._db = Database(database_url, secrets=SecretBox.from_settings(settings))
        self._server = _uvicorn_server(_bench_app(settings, self._db))
        self._sock = _listening_socket()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread: threading.Thread | None = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.should_exit = True
            thread.join(timeout=15)
            self._sock.close()
            self._db.dispose()


def wait_ready(server: SubprocessServer | ThreadServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not server.alive():
                raise RuntimeError("the API server exited during startup (see above)")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/healthz").status_code == 200:
                    return
            time.sleep(0.05)
    raise RuntimeError(f"the API server did not answer /healthz within {timeout:.0f} s")


# Measuring -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Workload:
    cursors_deep: list[str]
    rng: random.Random
    locations: list[tuple[str, str]]


def _create_body(
    rng: random.Random, locations: list[tuple[str, str]], index: int
) -> dict[str, Any]:
    code, area = rng.choice(locations)
    return {
        "name": f"bench-{code}-{index:05d}",
        "type": "edge",
        "region": area,
        "location": code,
        "capacity": {"cpu": 16, "memory": 64, "storage": 500},
        "labels": {"bench": "create"},
    }


class Measurer:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def timed(self, method: str, path: str, expect: int, **kw: Any) -> tuple[float, httpx.Response]:
        start = time.perf_counter_ns()
        response = self.client.request(method, path, **kw)
        elapsed = (time.perf_counter_ns() - start) / 1e6
        if response.status_code != expect:
            raise RuntimeError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return elapsed, response

    def run(
        self, op: str, n: int, work: Workload, routes: Counter[str] | None = None
    ) -> list[float]:
        out: list[float] = []
        ips = list(CLIENT_IPS)
        work.rng.shuffle(ips)
        for i in range(n):
            if op == "floor":
                ms, _ = self.timed("GET", "/__bench/noop", 200)
            elif op == "create":
                body = _create_body(work.rng, work.locations, work.rng.randrange(100_000))
                ms, _ = self.timed("POST", f"{API}/servers", 201, json=body)
            elif op == "list_first":
                ms, _ = self.timed("GET", f"{API}/servers", 200, params={"limit": PAGE})
            elif op == "list_deep":
                cursor = work.cursors_deep[i % len(work.cursors_deep)]
                ms, _ = self.timed(
                    "GET", f"{API}/servers", 200, params={"limit": PAGE, "cursor": cursor}
                )
            elif op == "route":
                ip = ips[i % len(ips)]
                ms, response = self.timed(
                    "GET", f"{API}/route", 200, params={"client_ip": ip, "service_type": "cdn"}
                )
                if routes is not None:
                    decision = response.json()
                    routes[decision["server"]["location"]] += 1
                    routes["__skipped__"] += len(decision.get("skipped") or [])
            else:
                raise ValueError(op)
            out.append(ms)
        return out


def walk_listing(client: httpx.Client) -> list[str]:
    """Every next_cursor of the listing at PAGE per page, in order."""
    cursors: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE}
        if cursor:
            params["cursor"] = cursor
        response = client.get(f"{API}/servers", params=params)
        response.raise_for_status()
        cursor = response.json().get("next_cursor")
        if not cursor:
            return cursors
        cursors.append(cursor)


# Reference -----------------------------------------------------------------------------------


def reference_engine(url: str) -> Engine:
    """A bare engine on the same database; SQLite gets the app's connection pragmas."""
    if not url.startswith("sqlite"):
        return create_engine(url)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


def run_reference(
    url: str, counts: dict[str, int], cursors_deep: list[str], locations: list[tuple[str, str]]
) -> dict[str, list[float]]:
    tables = Base.metadata.tables
    srv, svc, reg = tables["servers"], tables["services"], tables["regions"]
    settings = Settings(metrics_max_age_s=METRICS_MAX_AGE_S)
    engine = reference_engine(url)
    rng = random.Random(7)
    out: dict[str, list[float]] = {}

    def timed(n: int, fn: Callable[[Connection, int], None], write: bool = False) -> list[float]:
        samples: list[float] = []
        for i in range(n + WARMUP):
            start = time.perf_counter_ns()
            with engine.begin() if write else engine.connect() as conn:
                fn(conn, i)
            if i >= WARMUP:
                samples.append((time.perf_counter_ns() - start) / 1e6)
        return samples

    def create(conn: Connection, i: int) -> None:
        code, area = rng.choice(locations)
        now = utcnow()
        conn.execute(
            insert(srv).values(
                project_id=PLATFORM_PROJECT,
                id=f"ref-{rng.getrandbits(48):012x}",
                name=f"ref-{code}-{i:05d}",
                type="edge",
                region=area,
                location=code,
                profile="standard",
                status="active",
                data_center_id=None,
                address=None,
                environment="prod",
                labels={"bench": "reference"},
                cpu=16.0,
                memory=64.0,
                storage=500.0,
                created_at=now,
                updated_at=now,
            )
        )

    page = select(srv).where(srv.c.project_id == PLATFORM_PROJECT).order_by(srv.c.id)

    def list_first(conn: Connection, _i: int) -> None:
        conn.execute(page.limit(PAGE + 1)).all()

    def list_deep(conn: Connection, i: int) -> None:
        cursor = cursors_deep[i % len(cursors_deep)]
        conn.execute(page.where(srv.c.id > cursor).limit(PAGE + 1)).all()

    def route(conn: Connection, _i: int) -> None:
        fresh_after = utcnow() - timedelta(seconds=settings.metrics_max_age_s)
        under = and_(
            or_(srv.c.cpu_percent.is_(None), srv.c.cpu_percent < settings.route_max_cpu),
            or_(srv.c.memory_percent.is_(None), srv.c.memory_percent < settings.route_max_memory),
            or_(
                srv.c.storage_percent.is_(None),
                srv.c.storage_percent < settings.route_max_storage,
            ),
        )
        offering = and_(
            svc.c.project_id == srv.c.project_id,
            svc.c.server_id == srv.c.id,
            svc.c.type == "cdn",
        )
        server_ok = and_(
            srv.c.status == "active",
            or_(srv.c.metrics_at.is_(None), srv.c.metrics_at < fresh_after, under),
        )
        usable = and_(
            server_ok, select(literal(1)).where(offering, svc.c.status == "active").exists()
        )

        def site_has(*extra: Any) -> Any:
            return (
                select(literal(1))
                .where(
                    srv.c.project_id == PLATFORM_PROJECT,
                    srv.c.location == reg.c.code,
                    *extra,
                )
                .exists()
            )

        offered = select(literal(1)).where(offering).exists()
        rows = conn.execute(
            select(reg.c.code, reg.c.latitude, reg.c.longitude, site_has(usable).label("ok")).where(
                site_has(offered)
            )
        ).all()
        site = next((code for code, _, _, ok in rows if ok), None)
        load = srv.c.cpu_percent + srv.c.memory_percent
        best = conn.execute(
            select(srv)
            .where(srv.c.project_id == PLATFORM_PROJECT, srv.c.location == site, usable)
            .order_by(load.is_(None), load, srv.c.id)
            .limit(1)
        ).first()
        if best is None:
            raise RuntimeError("the reference routing query found no candidate site")

    try:
        out["list_first"] = timed(counts["list_first"], list_first)
        out["list_deep"] = timed(counts["list_deep"], list_deep)
        out["route"] = timed(counts["route"], route)
        out["create"] = timed(counts["create"], create, write=True)
    finally:
        engine.dispose()
    return out


# One backend ---------------------------------------------------------------------------------


@dataclasses.dataclass
class BackendReport:
    backend: str
    database: str
    server_mode: str
    load: LoadReport
    counts: dict[str, int]
    api: dict[str, list[float]]
    reference: dict[str, list[float]]
    route_sites: Counter[str]
    deep_pages: int
    server_maxrss_kib: int | None
    bench_maxrss_kib: int
    traced_peak: int | None
    traced_requests: int
    traced_route_p50: float | None
    seconds: float


class _Analyzer(Protocol):
    def __call__(self, final: bool = False) -> None: ...


def _analyzer(db: Database) -> _Analyzer:
    """ANALYZE after batches 1, 2, 4, 8, ... and at the end: what autovacuum does for tables
    that grow, soon enough that plans are made with row counts close to the real ones."""
    batches = 0

    def analyze(final: bool = False) -> None:
        nonlocal batches
        batches += 0 if final else 1
        if final or batches & (batches - 1) == 0:
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")

    return analyze


def describe_database(db: Database, backend: str, *, analyzed: bool) -> str:
    if backend == "sqlite":
        return (
            "SQLite (WAL, synchronous=NORMAL, no ANALYZE statistics: as Edgeplane runs it), "
            "file in a temporary directory"
        )
    with db.engine.connect() as conn:
        version = conn.exec_driver_sql("SHOW server_version").scalar_one()
    stats = (
        "ANALYZE after load batches 1, 2, 4, 8, 16 and at the end (autovacuum's job; "
        "included in the load time)"
        if analyzed
        else "no ANALYZE while loading (--no-analyze)"
    )
    return (
        f"PostgreSQL {str(version).split()[0]} on loopback TCP, throwaway cluster of "
        f"tests/pgcluster.py (fsync=off, synchronous_commit=off); {stats}"
    )


def run_backend(
    backend: str, args: argparse.Namespace, counts: dict[str, int], stack: contextlib.ExitStack
) -> BackendReport:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"edgeplane-bench-{backend}-"))
    stack.callback(shutil.rmtree, tmp, True)
    home = tmp / "home"
    home.mkdir()
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'edgeplane.db'}"
    else:
        cluster = PostgresCluster(tmp / "pg")
        stack.callback(cluster.stop)
        log("  starting PostgreSQL")
        cluster.start()
        url = cluster.create_database("edgeplane_bench")

    settings = Settings(home=home, database_url=url, metrics_max_age_s=METRICS_MAX_AGE_S)
    db = Database(url, secrets=SecretBox.from_settings(settings))
    try:
        upgrade(db.engine)
        token = ensure_admin_token(db, home / "admin-token")
        log(f"  loading {args.servers:,} servers through the service layer")
        analyze = None
        if backend == "postgresql" and not args.no_analyze:
            analyze = _analyzer(db)
        load = load_inventory(db, args.servers, random.Random(args.seed), settings, analyze)
        if analyze is not None:
            analyze(final=True)
        database = describe_database(db, backend, analyzed=analyze is not None)
        with db.read(LOCAL, PLATFORM_PROJECT) as tx:
            locations = [(r.code, r.area) for r in tx.session.scalars(select(RegionRow))]
    finally:
        db.dispose()

    server_cls = SubprocessServer if args.server_mode == "subprocess" else ThreadServer
    server = server_cls(url, home)
    stack.callback(server.stop)
    wait_ready(server)
    log(f"  API on {server.url} ({server.description})")

    rng = random.Random(args.seed + 1)
    route_sites: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60.0) as client:
        cursors = walk_listing(client)
        deep = cursors[len(cursors) // 2 :] or cursors
        if not deep:
            raise RuntimeError("the listing has a single page: load more servers")
        work = Workload(cursors_deep=deep, rng=rng, locations=locations)
        measurer = Measurer(client)
        api: dict[str, list[float]] = {}
        for op in ("floor", "list_first", "list_deep", "route", "create"):
            if counts[op] <= 0:
                continue
            measurer.run(op, WARMUP, work)
            log(f"  timing {OPERATIONS[op]} x {counts[op]}")
            api[op] = measurer.run(op, counts[op], work, route_sites if op == "route" else None)

        # Memory: a separate, shorter pass with tracemalloc on in the server.
        traced: dict[str, list[float]] = {}
        client.post("/__bench/tracemalloc/start").raise_for_status()
        for op, n in TRACED_COUNTS.items():
            if n > 0 and counts.get(op, 0) > 0:
                traced[op] = measurer.run(op, n, work)
        stopped = client.post("/__bench/tracemalloc/stop")
        stopped.raise_for_status()
        traced_peak = int(stopped.json()["peak"])
        server_maxrss = int(client.get("/__bench/memory").json()["maxrss_kib"])
    server.stop()

    log("  reference: bare SQLAlchemy Core on the same database")
    reference = run_reference(url, counts, deep, locations)
    bench_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return BackendReport(
        backend=backend,
        database=database,
        server_mode=server.description,
        load=load,
        counts=counts,
        api=api,
        reference=reference,
        route_sites=route_sites,
        deep_pages=len(deep),
        server_maxrss_kib=server_maxrss if args.server_mode == "subprocess" else None,
        bench_maxrss_kib=bench_maxrss,
        traced_peak=traced_peak,
        traced_requests=sum(len(v) for v in traced.values()),
        traced_route_p50=percentile(traced["route"], 50) if "route" in traced else None,
        seconds=time.perf_counter() - started,
    )


# Output --------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


def table_rows(report: BackendReport) -> list[list[str]]:
    rows = []
    for op, samples in report.api.items():
        p50 = percentile(samples, 50)
        ref = report.reference.get(op)
        ref_p50 = percentile(ref, 50) if ref else math.nan
        ratio = f"{p50 / ref_p50:.1f}x" if ref else "-"
        rows.append(
            [OPERATIONS[op], str(len(samples)), _ms(p50), _ms(percentile(samples, 99)),
             _ms(ref_p50), ratio]
        )  # fmt: skip
    return rows


HEADER = ["operation", "n", "p50 ms", "p99 ms", "reference p50 ms", "ratio"]


def notes(report: BackendReport) -> list[str]:
    load = report.load
    lines = [
        f"database: {report.database}",
        f"load: {load.servers:,} servers in {load.seconds:.1f} s "
        f"({load.servers / load.seconds:,.0f} servers/s through the service layer, "
        f"batches of {LOAD_BATCH}); {load.cdn:,} with a cdn service, {load.with_metrics:,} "
        f"with metrics ({load.over_threshold:,} over the CPU/memory threshold), "
        f"{load.not_active:,} not active, over {load.regions} regions",
        f"server: {report.server_mode}; deep pages: {report.deep_pages} cursors from the second "
        f"half of a {PAGE}-per-page walk",
    ]
    sites = {k: v for k, v in report.route_sites.items() if k != "__skipped__"}
    routed = sum(sites.values())
    if routed:
        top = ", ".join(f"{k} {v}" for k, v in sorted(sites.items(), key=lambda kv: -kv[1]))
        lines.append(
            f"routes: {len(CLIENT_IPS)} client IPs -> {len(sites)} sites ({top}); "
            f"{report.route_sites['__skipped__'] / routed:.1f} skipped servers listed per answer"
        )
    memory = []
    if report.server_maxrss_kib is not None:
        memory.append(f"server process peak RSS {_mib(report.server_maxrss_kib)}")
    memory.append(
        f"benchmark process peak RSS {_mib(report.bench_maxrss_kib)} (load, client, reference;"
        " the maximum so far in this process)"
    )
    if report.traced_peak is not None:
        slow = ""
        if report.traced_route_p50 and "route" in report.api:
            factor = report.traced_route_p50 / percentile(report.api["route"], 50)
            slow = f"; tracing made route p50 {factor:.1f}x slower, so it is off while timing"
        where = (
            "in the server"
            if report.server_maxrss_kib is not None
            else "in this process (server and client)"
        )
        memory.append(
            f"tracemalloc peak {report.traced_peak / 2**20:.1f} MiB {where} over a "
            f"separate traced pass of {report.traced_requests} requests{slow}"
        )
    lines.append("memory: " + "; ".join(memory))
    lines.append("reference: " + "; ".join(f"{op}: {REFERENCES[op]}" for op in report.api))
    lines.append(f"time for this backend: {report.seconds:.0f} s")
    return lines


def render_text(report: BackendReport) -> str:
    rows = table_rows(report)
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return " | ".join([first, *rest])

    title = f"{report.backend}: {report.load.servers:,} servers"
    out = [title, "=" * len(title), line(HEADER), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    out.append("")
    out += [f"  {n}" for n in notes(report)]
    return "\n".join(out)


def render_markdown(report: BackendReport) -> str:
    rows = table_rows(report)
    out = [f"#### {report.backend}, {report.load.servers:,} servers", ""]
    out.append("| " + " | ".join(HEADER) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|")
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out.append("")
    out += [f"- {n}" for n in notes(report)]
    return "\n".join(out)


# Main ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_serve"]:
        return serve_main(argv[1:])
    if "--concurrency" in argv:  # the concurrency mode has options of its own (api_load.py)
        from api_load import main as concurrency_main

        return concurrency_main([a for a in argv if a != "--concurrency"])
    parser = argparse.ArgumentParser(
        prog="bench/api.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--servers", type=int, default=DEFAULT_SERVERS)
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="timed requests per operation (default: "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_COUNTS.items())
        + ")",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--server-mode",
        choices=["subprocess", "thread"],
        default="subprocess",
        help="uvicorn in a child process (default) or in a thread of this process",
    )
    parser.add_argument("--markdown", action="store_true", help="also print markdown tables")
    parser.add_argument(
        "--concurrency",
        action="store_true",
        help="the concurrency mode instead: reads and writes per second with `edgeplane serve "
        "--workers 1,2,4` and replicas (bench/api.py --concurrency --help)",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: no ANALYZE while loading (a freshly imported database before "
        "autovacuum has run; the load becomes quadratic)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the short mode: 250 servers, 10 requests per operation, both backends (about "
        "30 s); the tests run it",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.servers, args.samples = 250, 10
    if args.servers < 2 * PAGE + 1:
        parser.error(f"--servers must be at least {2 * PAGE + 1}")
    counts = dict(DEFAULT_COUNTS)
    if args.samples is not None:
        if args.samples < 1:
            parser.error("--samples must be at least 1")
        counts = dict.fromkeys(DEFAULT_COUNTS, args.samples)

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and find_pg_bin() is None:
        if args.backend == "postgresql":
            parser.error("PostgreSQL is not installed (scripts/bootstrap --with-test installs it)")
        log("PostgreSQL is not installed: SQLite only")
        backends.remove("postgresql")

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Even when started with SIGINT ignored (a background job of a script), Ctrl-C / kill -INT
    # must stop the run and clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    log(
        f"{args.servers:,} servers; timed requests per operation: "
        + ", ".join(f"{OPERATIONS[k]} {v}" for k, v in counts.items())
        + f"; {WARMUP} warm-up requests each; {os.cpu_count()} CPUs"
    )
    started = time.perf_counter()
    reports: list[BackendReport] = []
    run = BenchRun("api")
    try:
        for backend in backends:
            log(f"{backend}:")
            stack = contextlib.ExitStack()
            run.cleanup.add(stack.close)
            try:
                reports.append(run_backend(backend, args, counts, stack))
            finally:
                with signals_ignored():
                    stack.close()
            print(render_text(reports[-1]), end="\n\n", flush=True)
    except KeyboardInterrupt:
        log("interrupted; everything started has been stopped")
        return 130
    finally:
        run.close()
    if args.markdown:
        for report in reports:
            print(render_markdown(report), end="\n\n")
    if args.quick:
        print("- short mode (--quick): 250 servers, 10 timed requests per operation")
    log(f"total {time.perf_counter() - started:.0f} s")
    return run.status()


if __name__ == "__main__":
    sys.exit(main())
