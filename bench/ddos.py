"""L7 DDoS: a well-behaved client's latency while one address holds 1,000 connections open.

Run from the repository root::

    .venv/bin/python bench/ddos.py [--quick] [--connections 1000] [--samples 500] [--markdown]

What runs: one real nginx through ``NginxEngine`` (as an edge agent applies it) in front of an
origin process (``tests/integration/origins.py``, a thread per connection), with two sites:
``limits.test`` with client limits (10 requests at once per client, a 3-s header timeout,
which nginx applies node-wide) and ``open.test`` with none (the reference; not with
``--quick``). The attacker (127.0.0.2) opens ``--connections`` connections at once, in two
ways:

1. **held requests**: each sends a whole request for a slow page (the origin answers after
   3 s) and waits;
2. **unfinished headers** (slowloris): each sends a request line and a Host header, then
   nothing.

Meanwhile a well-behaved client (127.0.0.3, one keep-alive connection) sends ``--samples``
GETs of a cached page. Figures, per site and attack: the client's p50 / p99 before and during
the attack (ratio during / before: the issue's "within 2x"), and the attacker's connections:
refused (answered 503 by the connection limit), closed by the edge (at the header timeout)
and still open after the attack's first seconds, plus the attacker's requests that reached the
origin. The latency ratio of the limited site is the figure to read; ``open.test`` shows what
the same attack does without limits.

Everything started is stopped and the temporary directory removed on exit, error, Ctrl-C or
SIGTERM. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from common import BenchRun, log, signals_raise, table  # noqa: E402
from flood import Held, Latency, full_request, hold, measure, partial_header  # noqa: E402
from origins import Origin, start_origin  # noqa: E402
from processes import free_port  # noqa: E402

from edgeplane.node.nginx.engine import NginxEngine  # noqa: E402
from edgeplane.node.nginx.local import LocalHealth, NodeLocal  # noqa: E402
from edgeplane.protocol.config import (  # noqa: E402
    BackendSpec,
    CacheRuleSpec,
    ClientLimitsSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
)

ATTACKER = "127.0.0.2"
CLIENT = "127.0.0.3"
LIMITS = ClientLimitsSpec(max_connections=10, header_timeout_s=3)
HOLD_S = 3  # the slow page's delay at the origin
WATCH_S = 4.5  # how long the attacker's connections are watched (past the header timeout)


def config(origin: Origin) -> EdgeConfig:
    pool = PoolSpec(
        id="origin.bench",
        algorithm="round_robin",
        backends=(BackendSpec(key="o", host="127.0.0.1", port=origin.port),),
        read_timeout_s=30,
    )
    rules = (CacheRuleSpec(id="page", pattern="/page", ttl=3600),)
    return EdgeConfig(
        revision=1,
        node=NodeSpec(id="n1", name="edge-1", region="local"),
        sites=(
            SiteSpec(id="p1", domains=("limits.test",), pool=pool.id, cache_rules=rules,
                     client_limits=LIMITS),
            SiteSpec(id="p2", domains=("open.test",), pool=pool.id, cache_rules=rules),
        ),
        pools=(pool,),
    )  # fmt: skip


def attack(port: int, host: str, n: int, samples: int, slow: bool) -> tuple[Latency, Held, int]:
    """The client's latency during the attack, the attacker's connections, and how many of
    them were still open (neither answered nor closed) after ``WATCH_S``."""
    payload = partial_header(host) if slow else full_request(host, f"/hold?sleep={HOLD_S}")
    held = hold(port, n, payload, source=ATTACKER)
    try:
        during = measure(port, host, "/page", samples, source=CLIENT)
        left = WATCH_S - (time.monotonic() - held.opened_at)
        if left > 0:
            held.poll(left)
        held.poll(0.05)
        still_open = held.open_count()
    finally:
        held.close()
    return during, held, still_open


def run_site(port: int, host: str, n: int, samples: int, origin: Origin) -> list[list[str]]:
    rows: list[list[str]] = []
    measure(port, host, "/page", 50, source=CLIENT)  # warm: the page cached
    before = measure(port, host, "/page", samples, source=CLIENT)
    for slow in (False, True):
        kind = "unfinished headers" if slow else "held requests"
        hits = origin.hits()
        during, held, still_open = attack(port, host, n, samples, slow)
        time.sleep(0.2)
        reached = origin.hits() - hits
        refused = held.statuses().get(503, 0)
        closed = sum(1 for fd in held.closed if fd not in held.answers)
        log(f"{host}, {n:,} {kind}: p50 {before.p50:.2f} -> {during.p50:.2f} ms, p99 "
            f"{before.p99:.2f} -> {during.p99:.2f} ms; refused {refused}, closed {closed}, "
            f"open {still_open}, failed {held.failed}, at the origin {reached}")  # fmt: skip
        name = f"{host} ({n:,} {kind})"
        rows.append([f"{name}: client p50 ms, during vs before", f"{during.p50:.2f}",
                     f"{before.p50:.2f}", f"{during.p50 / before.p50:.2f}"])  # fmt: skip
        rows.append([f"{name}: client p99 ms, during vs before", f"{during.p99:.2f}",
                     f"{before.p99:.2f}", f"{during.p99 / before.p99:.2f}"])  # fmt: skip
        rows.append([f"{name}: attacker refused (503) / closed / open after {WATCH_S:.0f} s",
                     f"{refused} / {closed} / {still_open}", "-", "-"])  # fmt: skip
        rows.append([f"{name}: attacker requests at the origin", f"{reached}", "-", "-"])
        bad = {s: c for s, c in during.statuses.items() if s != 200}
        if bad:
            rows.append([f"{name}: client requests not 200", str(bad), "-", "-"])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=1000, help="the attacker's connections")
    ap.add_argument("--samples", type=int, default=500, help="the client's requests per phase")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument(
        "--quick", action="store_true", help="200 connections, 100 samples, limits.test only"
    )
    args = ap.parse_args()
    if args.quick:
        args.connections, args.samples = 200, 100
    run = BenchRun("ddos")
    rows: list[list[str]] = []
    try:
        with signals_raise():
            origin = start_origin("ddos-bench")
            run.cleanup.add(origin.terminate)
            local = NodeLocal(prefix=run.tmp / "nginx", node_name="edge-1", http_port=free_port())
            engine = NginxEngine(local)
            run.cleanup.add(engine.stop)
            result = engine.apply(config(origin), LocalHealth())
            if not result.ok:
                raise RuntimeError(f"nginx did not apply the config: {result.error}")
            hosts = ["limits.test"] if args.quick else ["limits.test", "open.test"]
            for i, host in enumerate(hosts):
                if i:
                    time.sleep(HOLD_S)  # the held requests of the last site end at the origin
                rows += run_site(local.http_port, host, args.connections, args.samples, origin)
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()
    print(table(rows, args.markdown))
    return run.status()


if __name__ == "__main__":
    sys.exit(main())
