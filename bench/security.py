"""The WAF's cost on cached hits and misses: one real edge nginx (``NginxEngine``, with njs
as on an edge node: misses go through the origin hop), WAF off / detect / block.

Run from the repository root::

    .venv/bin/python bench/security.py [--quick] [--seconds 5] [--rounds 3] [--markdown]

What runs: a fast origin (an nginx answering a 1 KiB body, cacheable) and one edge nginx
rendered by Edgeplane from a snapshot of sites that differ only by their WAF: ``off`` (the
reference: the same edge, the same request, no ModSecurity), ``detect`` and ``block`` (the
CRS at paranoia 1), ``block-pl2`` (paranoia 2), and ``transaction`` (ModSecurity on with the
profile's rules and none of the CRS: what a transaction costs by itself). Every site has a
``/*`` rule of an hour, so after a warm-up every request is a cached hit; and a ``/miss/*``
rule that honours the origin, which answers ``no-store`` there, so every request of it is a
miss (the caching location, the origin hop, where a WAF site is inspected, the origin). The
request is a browser's GET (user agent, Accept, Accept-Language, a cookie, a query string of
three arguments): the CRS inspects all of it. wrk (keep-alive) hits every site once per round,
rounds interleaved; each figure is the median of the rounds, and its cost is against the
``off`` site of the same rounds and kind (hit or miss). The edge's nginx CPU per request
(its workers, from /proc: the hop is the same nginx) is printed beside it.

Everything started is stopped and the temporary directory removed on exit, error, Ctrl-C or
SIGTERM. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.append(str(_HERE))

from common import BenchRun, log, signals_raise  # noqa: E402
from edge import PlainNginx, free_port, wait_port  # noqa: E402

from edgeplane.node.nginx.engine import NginxEngine  # noqa: E402
from edgeplane.node.nginx.local import (  # noqa: E402
    LocalHealth,
    NodeLocal,
    WafEngine,
    find_js_module,
    find_waf_engine,
)
from edgeplane.node.nginx.memory import children  # noqa: E402
from edgeplane.protocol.config import (  # noqa: E402
    BackendSpec,
    CacheRuleSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
    WafSpec,
)

BODY_BYTES = 1024
PATH = "/products/item?id=42&sort=price&lang=en"
MISS_PATH = "/miss/item?id=42&sort=price&lang=en"  # the origin answers no-store
MISS_SITES = ("off", "transaction", "block")
HEADERS = (
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language: en-US,en;q=0.9",
    "Cookie: session=4f2a9c1b8d3e7f60a5b4c3d2e1f00112; consent=necessary%2Canalytics",
)
SITES: dict[str, WafSpec | None] = {
    "off": None,
    "transaction": WafSpec(mode="block"),  # on a node whose CRS folder is empty: see below
    "detect": WafSpec(mode="detect"),
    "block": WafSpec(mode="block"),
    "block-pl2": WafSpec(mode="block", paranoia_level=2),
}


def snapshot(origin_port: int, names: list[str]) -> EdgeConfig:
    pool = PoolSpec(
        id="origin.bench",
        algorithm="round_robin",
        backends=(BackendSpec(key="o", host="127.0.0.1", port=origin_port),),
    )
    rule = CacheRuleSpec(id="all", pattern="/*", ttl=3600)
    miss = CacheRuleSpec(id="miss", pattern="/miss/*", ttl=3600, origin_cache_control="honour")
    sites = tuple(
        SiteSpec(
            id=name,
            domains=(f"{name}.bench.localhost",),
            pool=pool.id,
            cache_rules=(miss, rule),
            waf=SITES[name],
        )
        for name in names
    )
    return EdgeConfig(
        revision=1, node=NodeSpec(id="n1", name="bench", region="local"), sites=sites, pools=(pool,)
    )


def wrk(
    port: int, host: str, seconds: float, connections: int, path: str = PATH
) -> tuple[float, int, int]:
    """(req/s, requests, non-2xx)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-H", f"Host: {host}"]
    for header in HEADERS:
        cmd += ["-H", header]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, requests, int(non.group(1)) if non else 0


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def start_edge(run: BenchRun, name: str, waf: WafEngine, origin_port: int,
               names: list[str], workers: int) -> tuple[NginxEngine, int]:  # fmt: skip
    local = NodeLocal(
        prefix=run.tmp / name,
        node_name=name,
        http_port=free_port(),
        waf=waf,
        workers=workers,
        js_module=find_js_module(),  # the origin hop, as on an edge node
    )
    engine = NginxEngine(local)
    run.cleanup.add(engine.stop)
    result = engine.apply(snapshot(origin_port, names), LocalHealth())
    if not result.ok:
        raise RuntimeError(f"{name}: {result.error}")
    wait_port(local.http_port)
    return engine, local.http_port


def grid(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r) for r in [head, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s x 1 round")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk run per site and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="nginx workers of the edge")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 1.0, 1
    waf = find_waf_engine()
    tools = all(subprocess.run(["which", t], capture_output=True).returncode == 0
                for t in ("nginx", "wrk"))  # fmt: skip
    if waf is None or find_js_module() is None or not tools:
        print("bench/security.py needs nginx, wrk, libnginx-mod-http-modsecurity, "
              "modsecurity-crs and libnginx-mod-http-js: run scripts/bootstrap --with-test",
              file=sys.stderr)  # fmt: skip
        return 2
    run = BenchRun("security")
    rows: list[list[str]] = []
    try:
        with signals_raise():
            origin_port = free_port()
            origin = PlainNginx(run.tmp / "origin", f"""
    server {{
        listen 127.0.0.1:{origin_port};
        location / {{ add_header Cache-Control "public, max-age=3600";
                     return 200 "{'x' * (BODY_BYTES - 1)}\\n"; }}
        location /miss/ {{ add_header Cache-Control "no-store";
                          return 200 "{'x' * (BODY_BYTES - 1)}\\n"; }}
    }}""")  # fmt: skip
            run.cleanup.add(origin.stop)
            wait_port(origin_port)
            # The edge of the figures; the "transaction" site on a second edge whose CRS folder
            # holds no rule (the same rendering, ModSecurity's own cost without the CRS).
            names = [n for n in SITES if n != "transaction"]
            main_edge, port = start_edge(run, "edge", waf, origin_port, names, args.workers)
            empty = run.tmp / "no-crs"
            empty.mkdir()
            (empty / "REQUEST-000-NONE.conf").write_text("# no rules\n")
            bare = WafEngine(waf.modules, str(empty))
            bare_edge, bare_port = start_edge(
                run, "bare", bare, origin_port, ["transaction"], args.workers
            )
            targets = {n: (port, main_edge) for n in names} | {
                "transaction": (bare_port, bare_edge)
            }
            for name, (p, _) in targets.items():  # warm-up: the object is cached
                wrk(p, f"{name}.bench.localhost", 1, 2)
            runs = [("hit", n, PATH) for n in SITES] + [("miss", n, MISS_PATH) for n in MISS_SITES]
            results: dict[tuple[str, str], list[tuple[float, float, int]]] = {
                (kind, n): [] for kind, n, _ in runs
            }
            for r in range(args.rounds):
                log(f"round {r + 1}/{args.rounds}")
                for kind, name, path in runs:
                    p, engine = targets[name]
                    master = engine.process.pid
                    pids = children(master) if master else []
                    before = cpu_ticks(pids)
                    rps, requests, non2xx = wrk(
                        p, f"{name}.bench.localhost", args.seconds, args.connections, path
                    )
                    ticks = cpu_ticks(pids) - before
                    us = ticks / os.sysconf("SC_CLK_TCK") / max(1, requests) * 1e6
                    results[(kind, name)].append((rps, us, non2xx))
            for kind, name, _ in runs:
                ref = statistics.median(r[0] for r in results[(kind, "off")])
                rps = statistics.median(r[0] for r in results[(kind, name)])
                us = statistics.median(r[1] for r in results[(kind, name)])
                cost = "reference" if name == "off" else f"{(1 - rps / ref) * 100:.1f} %"
                bad = sum(r[2] for r in results[(kind, name)])
                rows.append([kind, name, f"{rps:,.0f}", cost, f"{us:.0f}", str(bad)])
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()
    print(f"a 1 KiB object, cached hits and misses (through the origin hop), wrk "
          f"-c{args.connections} keep-alive, {args.seconds:g} s x {args.rounds} rounds, "
          f"{args.workers} nginx worker(s)")  # fmt: skip
    head = ["request", "site (WAF)", "req/s", "cost vs off", "edge CPU us/req", "non-2xx"]
    print(grid(head, rows, args.markdown))
    return run.status()


if __name__ == "__main__":
    sys.exit(main())
