"""What bot protection costs cached hits: one real nginx (with njs) through ``NginxEngine``.

Run from the repository root::

    .venv/bin/python bench/bots.py [--quick] [--duration 5] [--rounds 3] [--markdown]

Two snapshots of the same node, applied in turn each round: the reference, where no site has
bot protection, and one where ``bots.test`` has all of it (known-bad challenged, HTTP libraries
detected, behaviour flags checked, a good bot). The same cached 1 KiB object is asked for by wrk
(keep-alive, one thread, 16 connections; nginx with one worker) as:

- a browser on ``plain.test``, a site without bot protection beside one with it (what other
  sites pay: a map lookup, a ``set`` and a failed ``stat`` per request);
- a browser on ``bots.test`` (the class maps: the user agent against the CRS's lists, the flag
  file's ``stat``; no JavaScript);
- a scanner with a valid challenge cookie (njs verifies its HMAC per request, then the hit);
- a scanner without one (njs answers the challenge: a 307 and a signed cookie);

each beside the browser on ``plain.test`` of the reference snapshot in the same round; then,
with valgrind, the instructions per request of each (but the challenge) beside the reference's
(``bench/callgrind.py``: the same figure whatever else the machine is doing).
Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.append(str(_HERE))
sys.path.insert(0, str(_HERE.parent / "tests" / "integration"))

import callgrind  # noqa: E402
import httpx  # noqa: E402
from common import BenchRun, log, signals_raise, table  # noqa: E402
from origins import start_origin  # noqa: E402
from processes import free_port  # noqa: E402

from edgeplane.node.nginx import bot_cookie  # noqa: E402
from edgeplane.node.nginx.engine import NginxEngine  # noqa: E402
from edgeplane.node.nginx.local import LocalHealth, NodeLocal  # noqa: E402
from edgeplane.node.nginx.render_bots import NJS_MODULE  # noqa: E402
from edgeplane.protocol.bots import BehaviourSpec, BotSpec, GoodBotSpec  # noqa: E402
from edgeplane.protocol.config import (  # noqa: E402
    BackendSpec,
    CacheRuleSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
)

KEY = "5e" * 32
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
SCANNER = "sqlmap/1.7.2#stable (https://sqlmap.org)"
PATH = "/static/app.css?bytes=1024"


def snapshot(port: int, *, bots: bool) -> EdgeConfig:
    pool = PoolSpec(
        id="origin.o",
        algorithm="round_robin",
        backends=(BackendSpec(key="o", host="127.0.0.1", port=port),),
    )
    rules = (CacheRuleSpec(id="all", pattern="/*", ttl=3600),)
    spec = BotSpec(
        key=KEY,
        mode="challenge",
        automated="detect",
        challenge="cookie",
        behaviour=BehaviourSpec(action="challenge"),
        good_bots=(GoodBotSpec(name="g", user_agent="Googlebot", addresses=("192.0.2.0/24",)),),
    )
    sites = (
        SiteSpec(id="plain", domains=("plain.test",), pool=pool.id, cache_rules=rules),
        SiteSpec(
            id="bots", domains=("bots.test",), pool=pool.id, cache_rules=rules,
            bots=spec if bots else None,
        ),
    )  # fmt: skip
    return EdgeConfig(
        revision=2 if bots else 1,
        node=NodeSpec(id="b", name="bench-bots", region="local"),
        sites=sites,
        pools=(pool,),
    )


def wrk(url: str, seconds: float, headers: dict[str, str]) -> tuple[float, int]:
    """(requests per second, responses that were not 2xx / 3xx)."""
    args = ["wrk", "-t1", "-c16", f"-d{max(1, round(seconds))}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(non.group(1)) if non else 0


def instructions(
    engine: NginxEngine,
    local: NodeLocal,
    origin_port: int,
    tmp: Path,
    targets: dict[str, tuple[str, str, str | None]],
    quick: bool,
) -> list[list[str]]:
    """Instructions per request (callgrind: the same whatever else the machine does) of each
    target that is served (not the challenge), beside the reference's browser."""
    requests = 100 if quick else 1000
    counts: dict[str, float] = {}
    for bots in (False, True):
        engine.apply(snapshot(origin_port, bots=bots), LocalHealth())
        release = (local.prefix / "current").resolve()
        for name, (host, ua, cookie) in targets.items():
            if (bots and cookie is None and ua == SCANNER) or (not bots and host != "plain.test"):
                continue
            port = free_port()
            where = tmp / f"cg-{int(bots)}-{len(counts)}"
            conf = callgrind.release_copy(release, local.prefix, where, {local.http_port: port})
            headers = {"User-Agent": ua}
            if cookie is not None:
                headers["Cookie"] = f"{bot_cookie.COOKIE}={cookie}"
            label = name if bots else "reference"
            log(f"instructions: {label}")
            counts[label] = callgrind.count(
                conf, where, port, host, PATH, requests=requests, out=where / "cg.out",
                headers=headers,
            )  # fmt: skip
    base = counts.pop("reference")
    return [
        [f"{name} (instructions/request)", f"{n:.0f}", f"{base:.0f}", f"{n / base:.2f}"]
        for name, n in counts.items()
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 s per target, one round")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument(
        "--no-instructions", action="store_true", help="skip the callgrind counts (valgrind)"
    )
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds = 1.0, 1
    run = BenchRun("bots")
    try:
        with signals_raise():
            origin = start_origin("bench-origin")
            run.cleanup.add(origin.terminate)
            local = NodeLocal(
                prefix=run.tmp / "nginx", node_name="bench-bots", http_port=free_port(), workers=1
            )
            engine = NginxEngine(local)
            run.cleanup.add(engine.stop)
            url = f"http://127.0.0.1:{local.http_port}{PATH}"
            cookie = bot_cookie.cookie_value(KEY, int(time.time()) + 3000, "127.0.0.1", SCANNER)
            targets = {
                "plain site beside a bots site, browser": ("plain.test", BROWSER, None),
                "bots site, browser": ("bots.test", BROWSER, None),
                "bots site, scanner with a valid cookie": ("bots.test", SCANNER, cookie),
                "bots site, scanner challenged (307)": ("bots.test", SCANNER, None),
            }
            got: dict[str, list[float]] = {name: [] for name in targets}
            ref: dict[str, list[float]] = {name: [] for name in targets}
            for n in range(args.rounds):
                log(f"round {n + 1} of {args.rounds}")
                for bots in (False, True):
                    result = engine.apply(snapshot(origin.port, bots=bots), LocalHealth())
                    if not result.ok:
                        raise SystemExit(f"nginx refused the snapshot: {result.error}")
                    for host in ("plain.test", "bots.test"):  # warm the cache
                        httpx.get(url, headers={"Host": host, "User-Agent": BROWSER})
                    if not bots:
                        rps, _ = wrk(
                            url, args.duration, {"Host": "plain.test", "User-Agent": BROWSER}
                        )
                        for name in targets:
                            ref[name].append(rps)
                        continue
                    for name, (host, ua, value) in targets.items():
                        headers = {"Host": host, "User-Agent": ua}
                        if value is not None:
                            headers["Cookie"] = f"{bot_cookie.COOKIE}={value}"
                        rps, _ = wrk(url, args.duration, headers)
                        got[name].append(rps)
            if callgrind.available() and not args.no_instructions:
                rows_cg = instructions(engine, local, origin.port, run.tmp, targets, args.quick)
            else:
                rows_cg = []
            rows = []
            for name in targets:
                mine, base = (
                    sorted(got[name])[len(got[name]) // 2],
                    sorted(ref[name])[len(ref[name]) // 2],
                )
                rows.append([f"{name} (req/s)", f"{mine:.0f}", f"{base:.0f}", f"{mine / base:.2f}"])
            print(table(rows + rows_cg, args.markdown))
            print(
                "(reference: a browser on plain.test with no site using bots; median of "
                f"{args.rounds} round(s) of {args.duration:.0f} s; nginx 1 worker, wrk 1 thread "
                "x 16 connections)"
            )
    except KeyboardInterrupt:
        run.close()
        return 130
    finally:
        run.close()
    return run.status()


if __name__ == "__main__":
    if not Path(NJS_MODULE).exists() or shutil.which("wrk") is None:
        print("bench/bots.py needs nginx's njs module and wrk: scripts/bootstrap --with-test")
        sys.exit(2)
    sys.exit(main())
