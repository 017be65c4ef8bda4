"""Auto-scaling: how fast a scaling group follows a load through the edge, and what the
clients see of it.

Run from the repository root::

    .venv/bin/python bench/scaling.py [--quick] [--cycles 3] [--rate-connections 5]
        [--markdown]

Real processes: ``edgeplane up`` with its local edge node (nginx), a scaling group on the
local driver (``edgeplane demo-origin`` instances), wrk through the edge at about 125
requests/s (5 connections, 38 ms between requests, ``Connection: close``) against a target of
50 requests/s per instance, so the load needs 3 instances.

Each **cycle**: the group at its minimum (1); the load starts; the times from the load rising
to the first new instance serving (its ``serving_at``: every edge node's check passed) and to
all 3 serving; the load holds 5 s more and stops; the time back to 1 instance (the
stabilisation window is 15 s; ``--quick`` uses 5 s, a 5-s metric window and a 1-s drain).
Requests failed over the whole cycle (wrk's socket errors and non-2xx answers) and the latency
percentiles of the cycle are printed beside the **reference**: the same load for the same
time on a group held at 3 instances (min = max = 3), which never scales.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.append(str(_HERE))

from common import BenchRun, log, pct, signals_raise, table  # noqa: E402

INV = "/api/v1/infrastructure"
SG = f"{INV}/scaling-groups"
SITE = "scale.localhost"
TARGET = 50.0


@dataclass
class Cycle:
    first_s: float = 0.0  # load start -> first new instance serving
    all_s: float = 0.0  # load start -> the size the load needs, all serving
    down_s: float = 0.0  # load stopped -> back at the minimum
    requests: int = 0
    failed: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rate: float = 0.0


@dataclass
class Figures:
    cycles: list[Cycle] = field(default_factory=list)
    reference: Cycle = field(default_factory=Cycle)
    window_s: float = 15.0


def _group(api: Any, gid: str, lb: str, **kw: Any) -> None:
    api.ok("POST", f"{INV}/loadbalancer", json={
        "id": lb, "backends": [],
        "health_check": {"path": "/health", "interval_s": 1, "timeout_s": 0.5,
                         "healthy_threshold": 1, "unhealthy_threshold": 2},
    })  # fmt: skip
    body = {
        "id": gid, "load_balancer": lb, "data_center": "dc1",
        "template": {"command": f"{sys.executable} -m edgeplane demo-origin --port {{port}}",
                     "stop_grace_s": 5},
        "min_size": 1, "max_size": 4, "metric_window_s": 10, "cooldown_s": 3,
        "scale_in_stabilization_s": 15, "health_timeout_s": 30, "drain_s": 2,
        "policies": [{"type": "target_tracking", "metric": "requests_per_second",
                      "target": TARGET}],
    }  # fmt: skip
    body.update(kw)
    api.ok("POST", SG, json=body)


def _settled(api: Any, gid: str, size: int) -> bool:
    g = api.ok("GET", f"{SG}/{gid}")
    return bool(
        g["desired"] == size
        and len(g["instances"]) == size
        and all(i["state"] == "serving" for i in g["instances"])
    )


def _serving_since(api: Any, gid: str, after: float) -> list[float]:
    """The wall-clock times the group's instances started serving, those after ``after``."""
    out = []
    for inst in api.ok("GET", f"{SG}/{gid}")["instances"]:
        if inst.get("serving_at"):
            at = datetime.fromisoformat(inst["serving_at"].replace("Z", "+00:00")).timestamp()
            if at > after:
                out.append(at)
    return sorted(out)


def _cycle(api: Any, url: str, gid: str, connections: int, hold_s: float) -> Cycle:
    from edge_agents import wait_for
    from wrk_load import Wrk

    c = Cycle()
    wait_for(lambda: _settled(api, gid, 1), 120, "the group at its minimum")
    with Wrk(url, SITE, connections=connections, delay_ms=38) as load:
        wall, started = time.time(), time.monotonic()
        first = wait_for(lambda: _serving_since(api, gid, wall), 120, "a new instance serving")
        c.first_s = first[0] - wall
        wait_for(lambda: _settled(api, gid, 3), 120, "three instances serving")
        c.all_s = max(_serving_since(api, gid, wall)) - wall
        time.sleep(hold_s)
        result = load.stop()
        stopped = time.monotonic()
    wait_for(lambda: _settled(api, gid, 1), 120, "back at the minimum")
    c.down_s = time.monotonic() - stopped
    c.requests, c.failed, c.seconds = result.requests, result.failed, time.monotonic() - started
    c.p50_ms, c.p99_ms, c.rate = result.p50_ms, result.p99_ms, result.rate
    log(f"cycle: first new instance serving {c.first_s:.1f} s, 3 serving {c.all_s:.1f} s, "
        f"back to 1 {c.down_s:.1f} s after the load; {c.requests} requests at "
        f"{c.rate:.0f}/s, {c.failed} failed")  # fmt: skip
    return c


def _reference(api: Any, url: str, seconds: float, connections: int) -> Cycle:
    from edge_agents import wait_for
    from wrk_load import Wrk

    # the edge checks the backends of the pools it serves: the site moves to it first
    api.ok("POST", f"{INV}/cdn", json={"origins": [{"load_balancer": "fixed"}],
                                       "security": {"force_https": False}})  # fmt: skip
    wait_for(lambda: _settled(api, "fixed", 3), 120, "the fixed group serving")
    time.sleep(2)
    with Wrk(url, SITE, connections=connections, delay_ms=38) as load:
        time.sleep(seconds)
        result = load.stop()
    return Cycle(requests=result.requests, failed=result.failed, seconds=result.seconds,
                 p50_ms=result.p50_ms, p99_ms=result.p99_ms, rate=result.rate)  # fmt: skip


def measure(run: BenchRun, cycles: int, connections: int, quick: bool) -> Figures:
    from edge_agents import Api, wait_for
    from processes import clean_env, start_up

    env = clean_env(
        EDGEPLANE_SCALING_INTERVAL="0.5",
        EDGEPLANE_ANALYTICS_INTERVAL="1",
        EDGEPLANE_BACKUP_SCHEDULE="off",
    )
    cp = start_up(run.tmp / "cp", env=env, edge=True)
    run.cleanup.add(cp.stop)
    api = Api(cp)
    run.cleanup.add(api.close)
    wait_for(lambda: [n for n in api.nodes() if n["live"]], 60, "the local node is live")
    api.ok("POST", f"{INV}/datacenters", json={
        "id": "dc1", "name": "Local", "tier": 3, "location": "us-east",
        "capacity": {"cpu": 64, "memory": 256, "storage": 2000},
    })  # fmt: skip
    api.ok("POST", f"{INV}/domains", json={"domain": SITE})
    f = Figures(window_s=5 if quick else 15)
    # the short mode proves the bench runs: a shorter metric window and drain bring it back sooner
    short = {"metric_window_s": 5, "drain_s": 1} if quick else {}
    _group(api, "web", "web", scale_in_stabilization_s=f.window_s, **short)
    api.ok("POST", f"{INV}/cdn", json={"origins": [{"load_balancer": "web"}],
                                       "security": {"force_https": False}})  # fmt: skip
    url = f"http://127.0.0.1:{cp.http_port}/"
    for n in range(cycles):
        log(f"cycle {n + 1}/{cycles}")
        f.cycles.append(_cycle(api, url, "web", connections, 1 if quick else 5))
    _group(api, "fixed", "fixed", min_size=3, max_size=3)
    seconds = 3.0 if quick else sum(c.seconds for c in f.cycles) / len(f.cycles)
    f.reference = _reference(api, url, seconds, connections)
    return f


def rows_of(f: Figures) -> list[list[str]]:
    firsts = [c.first_s for c in f.cycles]
    alls = [c.all_s for c in f.cycles]
    downs = [c.down_s for c in f.cycles]
    requests = sum(c.requests for c in f.cycles)
    failed = sum(c.failed for c in f.cycles)
    ref = f.reference
    n = len(f.cycles)
    p50 = pct([c.p50_ms for c in f.cycles], 50)
    p99 = max(c.p99_ms for c in f.cycles)
    rate = sum(c.rate for c in f.cycles) / n
    return [
        [f"load rising -> new instance serving, p50 / max ({n} cycles)",
         f"{pct(firsts, 50):.1f} / {max(firsts):.1f} s", "-", "-"],
        ["load rising -> 3 instances serving, p50 / max",
         f"{pct(alls, 50):.1f} / {max(alls):.1f} s", "-", "-"],
        [f"load stopped -> back to 1 (window {f.window_s:g} s), p50 / max",
         f"{pct(downs, 50):.1f} / {max(downs):.1f} s", "-", "-"],
        ["load, req/s (scaling group vs 3 fixed instances)", f"{rate:.0f}", f"{ref.rate:.0f}",
         f"{rate / ref.rate:.2f}" if ref.rate else "-"],
        ["requests failed over whole cycles (of all sent)", f"{failed} of {requests}",
         f"{ref.failed} of {ref.requests}", "-"],
        ["latency p50, ms", f"{p50:.2f}", f"{ref.p50_ms:.2f}",
         f"{p50 / ref.p50_ms:.2f}" if ref.p50_ms else "-"],
        ["latency p99 (worst cycle), ms", f"{p99:.2f}", f"{ref.p99_ms:.2f}",
         f"{p99 / ref.p99_ms:.2f}" if ref.p99_ms else "-"],
    ]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=3, help="up-and-down cycles measured")
    ap.add_argument("--rate-connections", type=int, default=5,
                    help="wrk connections, each a request every ~40 ms")  # fmt: skip
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="the short mode: 1 cycle, 5-s windows, 3 s of reference")
    args = ap.parse_args()
    if args.quick:
        args.cycles = 1
    run = BenchRun("scaling")
    try:
        with signals_raise():
            figures = measure(run, args.cycles, args.rate_connections, args.quick)
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()
    print(table(rows_of(figures), args.markdown))
    return run.status()


if __name__ == "__main__":
    sys.exit(main())
