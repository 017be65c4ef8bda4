"""Edge functions, measured end to end: a real ``edgeplane up`` with its local edge node (real
nginx, the real function runtime: Node.js + isolated-vm), functions deployed through the API.

Run from the repository root::

    .venv/bin/python bench/functions.py [--quick] [--markdown]

What runs: ``edgeplane up`` (the control plane, SQLite, and its local edge node) on free
loopback ports; an origin (a plain nginx answering ``ok`` with ``Cache-Control: public``) behind
one CDN site (``fn.localhost``, every path cached for an hour); and, for the reference rows, a
bare nginx with Debian's njs module and the node's worker count. Everything runs in this
process's temporary directory and is stopped when the bench ends.

Figures (the issue's: "requests per second through a trivial function against the same route
without it (aim >= 0.8), cold start of a new version, and memory per node per 100 functions"):

1. throughput: wrk (keep-alive, ``--connections`` over ``--threads``, ``--duration`` s) through
   the node's HTTP port, one target after the other in each of ``--rounds`` rounds: ``/fn`` (a
   function answering ``new Response("ok")``), ``/plain`` (no function: the origin's ``ok``
   from the node's cache, a HIT: the same body size), ``/dyn`` (no function, a bypass rule: the
   origin's ``ok`` through the edge, what a dynamic route costs without a function; the origin
   is a local nginx, faster than any application) and ``/pass`` (a function answering
   ``fetch(request)``: its own path through the node's internal fetch server and cache, a HIT).
   The paths are on the same site, so they share its location chain (a site with
   functions always looks its routes up); only the function differs. req/s is the median of
   the rounds, the ratio that of the medians; p50 / p99 as wrk reports them, median of rounds;
2. njs reference: the same trivial handler in nginx's own JavaScript module (``js_content``
   answering ``ok``) against ``return 200 "ok"`` on a bare nginx with the node's worker count,
   measured the same way in the same rounds: what an in-worker engine costs without time or
   memory limits or isolation between functions (Debian 12's njs has none: that is why
   Edgeplane runs functions in a runtime of their own);
3. cold start of a new version: (i) in the runtime alone (a runtime of this bench's own, the
   same program the node runs): ``cold_ms`` of its ``PUT /config`` answer for each of
   ``--versions`` new versions of a function (the module compiled and instantiated in a new
   isolate), against the ``cold_ms`` of the runtime's first function; (ii) end to end: the API
   call deploying a new version of ``/fn``'s function (``PUT .../functions/fn``: canary, then
   active on the single node) until the edge answers with it (``X-Edge-Function: fn@N``,
   polled every 10 ms), p50 / max over ``--versions`` versions;
4. memory: the runtime's RSS and the node's total (PSS of nginx's master and workers + PSS of
   the runtime) once ``--functions`` trivial functions (100) were added through the API, each
   on a route of its own (``*/f/<i>``) and invoked once, to ``fn`` and ``pass``; against no
   function (the node's runtime is not running then: the runtime's figure is the bench's own
   runtime with an empty config) and against ``fn`` and ``pass`` alone, measured just before
   the additions. MiB per 100 functions is the growth over the functions added (x 10 from
   --quick's 10): the runtime's own start and what the load stage left in its heaps are not
   in it (they are in the figure against none).

Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.append(str(_HERE))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from common import BenchRun, log, pct, signals_raise, table  # noqa: E402
from edge import (  # noqa: E402
    PlainNginx,
    WrkResult,
    free_port,
    rss_mib,
    stop_process,
    wait_port,
    wait_until,
    wrk,
)
from edge_agents import Api  # noqa: E402
from processes import ControlPlane, clean_env, start_up  # noqa: E402

from edgeplane.node.agent.paths import nginx_prefix  # noqa: E402
from edgeplane.node.functions.find import find_runtime  # noqa: E402
from edgeplane.node.functions.process import FunctionRuntime  # noqa: E402
from edgeplane.node.nginx.local import find_js_module  # noqa: E402
from edgeplane.node.nginx.memory import pss_kib, tree_pss_mib  # noqa: E402

INV = "/api/v1/infrastructure"
FN = f"{INV}/functions"
SITE = "fn.localhost"
TRIVIAL = 'export default {\n  async fetch(request) {\n    return new Response("ok");\n  },\n};\n'
PASS = "export default {\n  async fetch(request) {\n    return fetch(request);\n  },\n};\n"
NJS = 'function hello(r) {\n    r.return(200, "ok");\n}\nexport default { hello };\n'


def _ratio(a: float, b: float, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}" if b and a == a and b == b else ""


def _mib(kib: int) -> float:
    return kib / 1024


# --------------------------------------------------------------------------- the stack


def deploy(api: Api, name: str, code: str, routes: list[str]) -> int:
    """A new version of ``name`` (the API's 202): its number."""
    body: dict[str, Any] = {"code": code, "routes": [{"pattern": p} for p in routes]}
    out = api.ok("PUT", f"{FN}/{name}", json=body)
    return int(out["version"]["version"])


def edge_get(client: httpx.Client, port: int, path: str) -> httpx.Response:
    return client.get(f"http://127.0.0.1:{port}{path}", headers={"Host": SITE})


def wait_answers(client: httpx.Client, port: int, path: str, function: str | None,
                 timeout: float = 60, every: float = 0.01) -> float:  # fmt: skip
    """Seconds until ``path`` answers 200 with ``X-Edge-Function: function`` (None: without
    the header, and a cache HIT)."""
    started = time.monotonic()

    def ok() -> bool:
        r = edge_get(client, port, path)
        if r.status_code != 200:
            return False
        if function is None:
            return "x-edge-function" not in r.headers and r.headers.get(
                "x-cache-status") == "HIT"  # fmt: skip
        return bool(r.headers.get("x-edge-function") == function)

    wait_until(ok, timeout, f"{path} answers with {function or 'a cache HIT'}", every=every)
    return time.monotonic() - started


def runtime_pid(prefix: Path) -> int | None:
    """The node's runtime process (its ``--listen`` socket is under the node's prefix)."""
    needle = f"{prefix}/fn.sock".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"runtime.mjs" in cmd and needle in cmd:
            return int(d.name)
    return None


def nginx_masters(prefix: Path) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"nginx: master") and str(prefix).encode() in cmd:
            out.append(int(d.name))
    return out


def node_memory(prefix: Path) -> tuple[float, float]:
    """(nginx PSS MiB, runtime PSS MiB; 0 when not running) of the node."""
    time.sleep(1.0)  # the workers of the configuration before the last reload go
    nginx = sum(tree_pss_mib(pid)[0] for pid in nginx_masters(prefix))
    pid = runtime_pid(prefix)
    return nginx, (_mib(pss_kib(pid)) if pid else 0.0)


def workers_of(prefix: Path) -> str:
    text = (prefix / "nginx.conf").read_text() if (prefix / "nginx.conf").exists() else ""
    for line in text.splitlines():
        if line.strip().startswith("worker_processes"):
            return line.split()[1].rstrip(";")
    return "auto"


# --------------------------------------------------------------------------- the parts


def runtime_alone(tmp: Path, versions: int, functions: int) -> dict[str, Any]:
    """A runtime of the bench's own, never loaded with traffic: its RSS with no function,
    ``cold_ms`` of new versions, then its RSS with ``functions`` trivial functions (each
    invoked once through its listening socket) against one."""
    prefix = tmp / "rt"
    rt = FunctionRuntime(prefix, prefix / "logs" / "console.json")
    rt.start()
    try:
        assert rt._child is not None
        pid = rt._child.pid
        rt.load({"functions": []})
        time.sleep(0.5)
        empty_rss = rss_mib(pid)
        colds: list[float] = []
        for v in range(versions + 1):  # the first: the runtime's first function
            code = TRIVIAL.replace("ok", f"ok {v}")
            answer = rt.load({"functions": [{"key": "bench/fn", "version": v + 1, "code": code}]})
            result = answer["functions"][f"bench/fn@{v + 1}"]
            if not result.get("ok"):
                raise RuntimeError(f"the runtime refused version {v + 1}: {result}")
            colds.append(float(result["cold_ms"]))
        with httpx.Client(transport=httpx.HTTPTransport(uds=rt.listen_socket)) as client:

            def loaded(n: int) -> float:
                specs = [{"key": f"bench/m{i}", "version": 1, "code": TRIVIAL} for i in range(n)]
                answer = rt.load({"functions": specs})
                assert all(r.get("ok") for r in answer["functions"].values()), answer
                for i in range(n):
                    headers = {"Host": SITE, "X-Edgeplane-Function": f"bench/m{i}"}
                    r = client.get("http://rt/", headers=headers)
                    assert r.status_code == 200, (r.status_code, r.text)
                time.sleep(0.5)
                return rss_mib(pid)

            one = loaded(1)
            many = loaded(functions + 1)
        return {"empty_rss": empty_rss, "first": colds[0], "cold": colds[1:], "one_rss": one,
                "many_rss": many}  # fmt: skip
    finally:
        rt.stop()


class NjsReference:
    """A bare nginx with Debian's njs module: ``/njs`` (``js_content``, answering ``ok``) and
    ``/ret`` (``return 200 "ok"``), ``workers`` workers, no access log."""

    def __init__(self, prefix: Path, module: str, workers: str) -> None:
        (prefix / "tmp").mkdir(parents=True)
        (prefix / "hello.js").write_text(NJS)
        self.port = free_port()
        user = ""
        if os.geteuid() == 0:
            shutil.chown(prefix / "tmp", "www-data")
            user = "user www-data;"
        (prefix / "nginx.conf").write_text(f"""load_module {module};
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body; proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fcgi; uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    js_import hello from {prefix}/hello.js;
    server {{
        listen 127.0.0.1:{self.port};
        location = /njs {{ js_content hello.hello; }}
        location = /ret {{ return 200 "ok"; }}
    }}
}}
""")
        self.process = subprocess.Popen(
            ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        wait_port(self.port)

    def stop(self) -> None:
        stop_process(self.process, signal.SIGQUIT)


def throughput(port: int, ref_port: int | None, args: argparse.Namespace) -> list[list[str]]:
    targets = {"fn": (port, "/fn", SITE), "plain": (port, "/plain", SITE),
               "dyn": (port, "/dyn", SITE), "pass": (port, "/pass", SITE)}  # fmt: skip
    if ref_port is not None:
        targets |= {"njs": (ref_port, "/njs", "ref"), "ret": (ref_port, "/ret", "ref")}
    got: dict[str, list[WrkResult]] = {k: [] for k in targets}
    for r in range(args.rounds):
        for key, (p, path, host) in targets.items():
            res = wrk(f"http://127.0.0.1:{p}{path}", host, args.duration, args.connections,
                      args.threads)  # fmt: skip
            got[key].append(res)
            log(f"round {r + 1} {key}: {res.rps:,.0f} req/s, p50 {res.p50_ms:.2f} ms, p99 "
                f"{res.p99_ms:.2f} ms, errors {res.errors}, non-2xx {res.non2xx}")  # fmt: skip

    def med(key: str, attr: str) -> float:
        return float(statistics.median(float(getattr(x, attr)) for x in got[key]))

    each = f"median of {args.rounds} x {args.duration:g} s, {args.connections} connections"
    rows: list[list[str]] = []
    pairs = [("fn", "plain", "trivial function / same site's cached HIT (aim >= 0.8)"),
             ("fn", "dyn", "trivial function / same site, not cached: the origin through the edge"),
             ("pass", "plain", "function fetch(request) (a HIT) / cached HIT")]  # fmt: skip
    if ref_port is not None:
        pairs.append(("njs", "ret", f"njs js_content / nginx return 200 (bare nginx, "
                                    f"{args.workers} workers)"))  # fmt: skip
    for a, b, label in pairs:
        rows.append([f"req/s, {label}, {each}", f"{med(a, 'rps'):,.0f}", f"{med(b, 'rps'):,.0f}",
                     _ratio(med(a, "rps"), med(b, "rps"))])  # fmt: skip
        rows.append([f"p50 / p99 ms, {label}",
                     f"{med(a, 'p50_ms'):.2f} / {med(a, 'p99_ms'):.2f}",
                     f"{med(b, 'p50_ms'):.2f} / {med(b, 'p99_ms'):.2f}",
                     _ratio(med(a, "p50_ms"), med(b, "p50_ms"))])  # fmt: skip
    if ref_port is None:
        rows.append(["njs reference: nginx's njs module is not installed (libnginx-mod-http-js)",
                     "", "", ""])  # fmt: skip
    fails = sum(x.errors + x.non2xx for runs in got.values() for x in runs)
    rows.append(["wrk errors + non-2xx, all runs", str(fails), "", ""])
    return rows


def _active(api: Api, version: int) -> bool:
    return bool(api.ok("GET", f"{FN}/fn").get("active_version") == version)


def cold_end_to_end(api: Api, client: httpx.Client, port: int, versions: int) -> list[float]:
    out = []
    for v in range(versions):
        code = TRIVIAL.replace("ok", f"ok {v}")
        t0 = time.monotonic()
        n = deploy(api, "fn", code, [f"{SITE}/fn"])
        wait_answers(client, port, "/fn", f"fn@{n}", timeout=60)
        out.append((time.monotonic() - t0) * 1000)
        log(f"version {n}: the edge answers with it {out[-1]:.0f} ms after the API call")
        # the rollout ends (canary -> active) before the next version is deployed
        wait_until(functools.partial(_active, api, n), 60, f"fn@{n} active", every=0.05)
    return out


# --------------------------------------------------------------------------- main


def run(run_: BenchRun, args: argparse.Namespace) -> list[list[str]]:
    tmp, cleanup = run_.tmp, run_.cleanup
    rows: list[list[str]] = []
    log("the runtime alone: RSS with no function, cold start of new versions, RSS per function")
    alone = runtime_alone(tmp, args.versions, args.functions)

    origin_port = free_port()
    origin = PlainNginx(tmp / "origin", f"""
    server {{
        listen 127.0.0.1:{origin_port};
        location / {{ add_header Cache-Control "public, max-age=3600"; return 200 "ok"; }}
    }}""")  # fmt: skip
    cleanup.add(origin.stop)
    wait_port(origin_port)

    log("starting edgeplane up with its edge node")
    cp: ControlPlane = start_up(tmp / "cp", env=clean_env(), edge=True)
    cleanup.add(lambda: cp.stop(timeout=30))
    assert cp.http_port is not None
    port = cp.http_port
    api = Api(cp)
    cleanup.add(api.close)
    client = httpx.Client(timeout=10)
    cleanup.add(client.close)
    node = wait_until(lambda: [n for n in api.ok("GET", "/api/v1/edge/nodes") if n["live"]], 60,
                      "the node is live", every=0.1)[0]  # fmt: skip
    if node.get("functions") is not True:
        raise RuntimeError(f"the node cannot run functions: {node}")
    api.ok("POST", f"{INV}/domains", json={"domain": SITE})
    api.ok("POST", f"{INV}/cdn", json={
        "origins": [{"url": f"http://127.0.0.1:{origin_port}"}],
        "cache_rules": [{"pattern": "/dyn", "ttl": 0, "bypass": True},
                        {"pattern": "/*", "ttl": 3600}],
        "security": {"force_https": False},
    })  # fmt: skip
    prefix = nginx_prefix((cp.home / "edge" / "local").resolve(), "local")
    wait_until(lambda: edge_get(client, port, "/plain").status_code == 200, 60,
               "the site is served", every=0.05)  # fmt: skip
    wait_answers(client, port, "/plain", None)
    nginx0, runtime0 = node_memory(prefix)
    log(f"no function: nginx PSS {nginx0:.1f} MiB, runtime {'running' if runtime0 else 'absent'}")

    log("deploying the trivial and the pass-through functions")
    deploy(api, "fn", TRIVIAL, [f"{SITE}/fn"])
    deploy(api, "pass", PASS, [f"{SITE}/pass"])
    wait_answers(client, port, "/fn", "fn@1")
    wait_answers(client, port, "/pass", "pass@1")
    args.workers = workers_of(prefix)
    module = find_js_module()
    ref = NjsReference(tmp / "njs", module, args.workers) if module else None
    if ref is not None:
        cleanup.add(ref.stop)
    log(f"throughput: {args.rounds} rounds of {args.duration:g} s per target")
    rows += throughput(port, ref.port if ref is not None else None, args)

    log(f"cold start: {args.versions} new versions through the API")
    e2e = cold_end_to_end(api, client, port, args.versions)
    rows.append([f"cold start in the runtime, cold_ms p50 / max of {args.versions} new versions "
                 "(vs the runtime's first function)",
                 f"{pct(alone['cold'], 50):.1f} / {max(alone['cold']):.1f}",
                 f"{alone['first']:.1f}",
                 _ratio(pct(alone["cold"], 50), alone["first"])])  # fmt: skip
    rows.append([f"new version: API call -> the edge answers with it, ms p50 / max of "
                 f"{args.versions}", f"{pct(e2e, 50):.0f} / {max(e2e):.0f}", "", ""])  # fmt: skip

    n = args.functions
    nginx2, runtime2 = node_memory(prefix)  # fn and pass, after the load and the versions
    pid = runtime_pid(prefix)
    rss2 = rss_mib(pid) if pid else float("nan")
    log(f"memory: {n} more functions through the API, each invoked once")
    for i in range(n):
        deploy(api, f"m{i}", TRIVIAL, [f"*/f/{i}"])
    for i in range(n):
        wait_answers(client, port, f"/f/{i}", f"m{i}@1", timeout=120, every=0.05)
    loaded = n + 2
    nginx1, runtime1 = node_memory(prefix)
    pid = runtime_pid(prefix)
    rss1 = rss_mib(pid) if pid else float("nan")
    scale = f", x {100 / n:.2f}" if n != 100 else ""
    rows.append([f"runtime RSS MiB: {loaded} functions (fn, pass and {n} on */f/<i>, each "
                 "invoked) / none (the bench's runtime, empty config)", f"{rss1:.1f}",
                 f"{alone['empty_rss']:.1f}", _ratio(rss1, alone["empty_rss"])])  # fmt: skip
    rows.append([f"runtime RSS MiB: {loaded} functions / 2 (fn and pass, after the throughput "
                 "and cold-start stages)", f"{rss1:.1f}", f"{rss2:.1f}",
                 _ratio(rss1, rss2)])  # fmt: skip
    rows.append([f"runtime MiB per 100 functions: RSS growth over the {n} added{scale}",
                 f"{(rss1 - rss2) * 100 / n:.1f}", "", ""])  # fmt: skip
    rows.append([f"the bench's runtime, no traffic: RSS MiB with {n + 1} functions (each "
                 "invoked once) / 1", f"{alone['many_rss']:.1f}", f"{alone['one_rss']:.1f}",
                 _ratio(alone["many_rss"], alone["one_rss"])])  # fmt: skip
    rows.append([f"the bench's runtime, no traffic: MiB per 100 functions{scale}",
                 f"{(alone['many_rss'] - alone['one_rss']) * 100 / n:.1f}", "", ""])  # fmt: skip
    total0, total2, total1 = nginx0 + runtime0, nginx2 + runtime2, nginx1 + runtime1
    rows.append([f"node MiB (nginx PSS + runtime PSS): {loaded} functions / none (no runtime "
                 "running)", f"{nginx1:.1f} + {runtime1:.1f} = {total1:.1f}",
                 f"{nginx0:.1f} + {runtime0:.1f} = {total0:.1f}",
                 _ratio(total1, total0)])  # fmt: skip
    rows.append([f"node MiB (nginx PSS + runtime PSS): {loaded} functions / 2",
                 f"{total1:.1f}", f"{nginx2:.1f} + {runtime2:.1f} = {total2:.1f}",
                 _ratio(total1, total2)])  # fmt: skip
    rows.append([f"node MiB per 100 functions: PSS growth over the {n} added{scale}",
                 f"{(total1 - total2) * 100 / n:.1f}", "", ""])  # fmt: skip
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="the short mode: 1 round of 1 s, 3 versions, 10 functions")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--versions", type=int, default=10, help="new versions timed (cold start)")
    ap.add_argument("--functions", type=int, default=100,
                    help="functions added for the memory figures (to fn and pass)")  # fmt: skip
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration, args.versions, args.functions = 1, 1.0, 3, 10
    if not (shutil.which("wrk") and shutil.which("nginx")):
        print("bench/functions.py needs nginx and wrk: run scripts/bootstrap --with-test",
              file=sys.stderr)  # fmt: skip
        return 2
    if find_runtime() is None:
        print("bench/functions.py needs the function runtime (Node.js, isolated-vm): run "
              "scripts/bootstrap --with-test", file=sys.stderr)  # fmt: skip
        return 2
    run_ = BenchRun("functions")
    rows: list[list[str]] = []
    try:
        with signals_raise():
            rows = run(run_, args)
    except KeyboardInterrupt:
        log("interrupted")
        run_.close()
        return 130
    except BaseException:
        for path in sorted(run_.tmp.rglob("*.log")):
            if path.name.endswith("up.log") or path.name == "functions-runtime.log":
                lines = path.read_text(errors="replace").splitlines()[-40:]
                log(f"the end of {path.name}:\n" + "\n".join(lines))
        raise
    finally:
        run_.close()
    print(table(rows, args.markdown))
    short = "short mode (--quick): 1 round of 1 s, 3 versions, 10 functions added (x 10); "
    print(f"\n- {short if args.quick else ''}"
          f"time for the whole bench: {time.monotonic() - run_.started:.0f} s")  # fmt: skip
    return run_.status()


if __name__ == "__main__":
    raise SystemExit(main())
