"""The edge node, measured end to end: a real control plane, two real agents, real nginx.

Run from the repository root::

    .venv/bin/python bench/edge.py [--quick] [--domains 10,1000,10000] [--markdown]

What runs: ``edgeplane up --no-edge`` (the control plane, SQLite) and two edge nodes
(``edgeplane edge``, each driving its own nginx), all on free loopback ports; a fast origin (an
nginx answering a 1 KiB body) and, for failover, origin processes that can be killed and
frozen (``tests/integration/origins.py``). The reference is a minimal hand-written nginx
``proxy_cache`` config in front of the same origin, run in the same process, interleaved with
the edge round by round.

Figures:

1. cached hits: req/s through edge node 1 and through the reference (wrk, keep-alive), every target
   once per round, rounds interleaved; ratio edge / reference of the same rounds. One site per
   feature on the same node (``FEATURES``: bare, + cache rules of four kinds, + HSTS, + rate limit,
   + the WAF blocking with the CRS (when ModSecurity is installed: misses are inspected in the
   origin hop, hits never reach it), all), for 1 KiB and 100 KiB objects; the reference with the
   JSON access log shows what logging costs plain nginx. TLS: keep-alive req/s of the "all" site
   against a TLS reference serving the node's certificate of that name, and full / resumed
   handshakes per second (one Python client with that TLS name: the same certificate on both);
   whether a TLS session (ticket) of node 1 resumes on node 2; and the requests (HTTP and HTTPS
   keep-alive threads) that failed while the API changed the "all" site ``--reloads`` times (100; 5
   with --quick), each change a reload of both nodes;
2. failover: steady GET traffic through a load balancer of two backends with health checks
   every second; one backend SIGKILLed, then (after recovery) one SIGSTOPped: failed requests,
   requests slower than 0.9 s, time until the frozen backend is out of rotation (last request
   it received, and the health API's "down");
3. purge propagation: ``POST /cdn/purge`` until the next request is a MISS on both nodes;
4. config propagation with 10, 1,000 and 10,000 domains configured: adding a domain through the
   API until every node serves it (HTTP through its nginx, and its PowerDNS answering the new
   zone), with the node's own apply time and the control plane's commit-to-acknowledgement
   figure; each size beside the first (smallest) size of the same run as the reference;
5. memory: agent RSS and nginx PSS (master + workers, once the processes of the
   configurations before the last reload have exited) of each node, at each size and before
   and after ``--config-changes`` config changes (100) at the largest size;
6. many nodes (``--nodes 10,50,200``): the two real nodes and simulated ones
   (``bench/pollers.py``: each registers with its own edge token, long-polls its manifest,
   fetches the objects it lacks, acknowledges, heartbeats every second) up to each count, in
   five regions: how long they take to join (live and in sync), the propagation of a DNS
   record change over every node (commit -> acknowledgement, p50 / p99) and the control
   plane's CPU (its processes' CPU seconds per second, from /proc) idle and per change; beside
   the smallest count of the same run as the reference;
7. the nginx apply of one change (``--stages apply``, no control plane: ``bench/nginx_apply.py``):
   N synthetic sites (``--apply-sites``, 10,000) each with its domain and certificate on one
   real nginx through ``NginxEngine``, as an agent applies them; each step's ms (render, files,
   stage, check, reload, forget: p50 over ``--apply-samples`` applies, 20) for one domain
   added, the same removed and a certificate renewed, and the total, beside 10 sites measured
   the same way in the same run as the reference; nginx PSS after the changes.

``--stages reloads`` runs only the requests-during-reloads part of the hits stage (which runs
it too).

Everything started is stopped and the temporary directory removed on exit, error, Ctrl-C or
SIGTERM. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# This folder holds dns.py: as a script's folder it would come first on sys.path and hide
# dnspython's ``dns`` package from edgeplane. It goes last instead (for common.py).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.append(str(_HERE))
ROOT = _HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import callgrind  # noqa: E402
import nginx_apply  # noqa: E402
from common import (  # noqa: E402
    BenchRun,
    Cleanup,
    add_hosts_line,
    log,
    pct,
    remove_hosts_line,
    signals_raise,
    table,
)
from origins import start_origin  # noqa: E402
from pollers import Pollers, SimNode, address_of  # noqa: E402
from processes import free_udp_port  # noqa: E402

from edgeplane.node.nginx.local import find_waf_engine  # noqa: E402
from edgeplane.node.nginx.memory import children, cmdline, tree_pss_mib  # noqa: E402
from edgeplane.node.nginx.render_tls import link_file  # noqa: E402

DOMAIN = "bench.localhost"
STAGES = ("hits", "instructions", "purge", "failover", "fleet", "config", "apply", "reloads")
STACKLESS = {"apply"}  # stages without the control plane and its two nodes
BODY_BYTES = 1024


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (``VmHWM``: its peak so far)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def wait_until(fn: Callable[[], Any], timeout: float, what: str, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except (OSError, httpx.TransportError, http.client.HTTPException) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise RuntimeError(f"{what}: not within {timeout} s (last: {last!r})")


# --------------------------------------------------------------------------- processes


def stop_process(p: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if p.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(p.pid, signal.SIGCONT)
    p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        args = p.args if isinstance(p.args, list) else [str(p.args)]
        what = " ".join(str(a) for a in args[:5])  # never the whole line: it may hold a token
        raise RuntimeError(f"pid {p.pid} ({what} ...) did not stop within {timeout} s: "
                           "killed") from None  # fmt: skip


NGINX_MAIN = """
worker_processes {workers};
pid {p}/nginx.pid;
error_log {p}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log {access};
    client_body_temp_path {p}/tmp/body; proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fcgi; uwsgi_temp_path {p}/tmp/uwsgi; scgi_temp_path {p}/tmp/scgi;
{body}
}}
"""


class PlainNginx:
    """An nginx of the benchmark's own (the origin, the reference) in a prefix."""

    def __init__(self, prefix: Path, body: str, *, workers: int = 2, access: str = "off") -> None:
        self.prefix = prefix
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        root = os.geteuid() == 0
        if root:
            shutil.chown(prefix / "tmp", "www-data")
        conf = NGINX_MAIN.format(
            p=prefix,
            workers=workers,
            user="user www-data;" if root else "",
            access=access,
            body=body,
        )
        (prefix / "nginx.conf").write_text(conf)
        self.process = subprocess.Popen(
            ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def stop(self) -> None:
        stop_process(self.process, signal.SIGQUIT)


def wait_port(port: int, timeout: float = 10) -> None:
    import socket

    def ok() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    wait_until(ok, timeout, f"port {port}", every=0.02)


@dataclass
class Node:
    name: str
    http_port: int
    https_port: int
    home: Path
    process: subprocess.Popen[Any]
    dns_port: int = 0

    def nginx_pids(self) -> list[int]:
        out = []
        needle = str(self.home).encode()
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"nginx") and needle in cmd:
                out.append(int(d.name))
        return out

    def nginx_prefix(self) -> Path:
        """The node's nginx prefix (``-p`` of its master)."""
        for pid in self.nginx_pids():
            # the process title ("nginx: master process nginx -p PREFIX -c ..."), one string
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
            if b"-p" in args:
                return Path(args[args.index(b"-p") + 1].decode())
        raise RuntimeError(f"no nginx of {self.name}")

    def nginx_pss_mib(self) -> float:
        return sum(tree_pss_mib(pid)[0] for pid in self.nginx_pids())

    def settled_nginx_pss_mib(self, timeout_s: float = 15.0) -> float:
        """``nginx_pss_mib`` once the processes of the configurations before the last reload
        have exited (up to ``timeout_s``). Each reload starts new workers and a new cache
        manager and cache loader; the previous ones (about 6 MiB of PSS each) take a moment
        to go, and measured right after a change they were 12-23 MiB of the figure in some
        runs and nothing in others."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(
            _one_generation(pid) for pid in self.nginx_pids()
        ):
            time.sleep(0.1)
        return self.nginx_pss_mib()


def _one_generation(master: int) -> bool:
    """The master's children are one configuration's: no worker shutting down, at most one
    cache manager and one cache loader."""
    titles = [cmdline(k) for k in children(master)]
    return (
        not any("shutting down" in t for t in titles)
        and sum("cache manager" in t for t in titles) <= 1
        and sum("cache loader" in t for t in titles) <= 1
    )


@dataclass
class Stack:
    tmp: Path
    cleanup: Cleanup
    url: str = ""
    token: str = ""
    api: httpx.Client | None = None
    nodes: list[Node] = field(default_factory=list)
    cp: subprocess.Popen[Any] | None = None

    stapling: bool = False  # the internal CA's certificates name its OCSP responder

    def start_control_plane(self, stapling: bool, env_extra: dict[str, str] | None = None) -> None:
        """With ``stapling`` (the hits stages' stapling rows) the internal CA's certificates
        are stapled, as they are not by default: every stapled certificate is a ``server``
        block of its own (up to ``--max-stapled``, 100), about 5 ms of every ``nginx -t`` and
        reload and 0.4 MiB of every nginx process, which the config stage would measure."""
        home = self.tmp / "cp"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
        self.stapling = stapling
        if stapling:
            env["EDGEPLANE_STAPLE_INTERVAL"] = "2"  # the staple of a new site within seconds
            env["EDGEPLANE_INTERNAL_OCSP"] = "1"
        env.update(env_extra or {})  # e.g. EDGEPLANE_ALERT_INTERVAL (bench/observability.py)
        with (self.tmp / "cp.log").open("w") as logf:
            cp = self.cp = subprocess.Popen(
                [sys.executable, "-m", "edgeplane", "up", "--no-edge", "--home", str(home),
                 "--api-port", str(port)],
                stdout=logf, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        self.cleanup.add(functools.partial(stop_process, cp, timeout=60))
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200, 60,
                   "control plane")  # fmt: skip
        self.token = (home / "admin-token").read_text().strip()
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=120
        )
        self.cleanup.add(self.api.close)

    def call(self, method: str, path: str, **kw: Any) -> Any:
        assert self.api is not None
        r = self.api.request(method, path, **kw)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def start_node(self, name: str, extra: tuple[str, ...] = ()) -> Node:
        """``extra``: more ``edgeplane edge`` options (a repeated option: the last one wins)."""
        token = self.call("POST", "/api/v1/tokens", json={"name": name, "scope": "edge"})["token"]
        home = self.tmp / f"node-{name}"
        http_port, https_port = free_port(), free_port()
        dns_port = free_udp_port()  # a node runs its PowerDNS too: a port of its own
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
        env["EDGEPLANE_TOKEN"] = token  # in the environment, not on the command line
        with (self.tmp / f"{name}.log").open("w") as logf:
            process = subprocess.Popen(
                [sys.executable, "-m", "edgeplane", "edge", "--control-plane", self.url,
                 "--region", "us-east", "--name", name,
                 "--http-port", str(http_port), "--https-port", str(https_port),
                 "--dns-port", str(dns_port), "--home", str(home), "--analytics-interval", "5",
                 *extra],
                stdout=logf, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        node = Node(name, http_port, https_port, home, process, dns_port)
        # at 10,000 domains an agent may be in the middle of an apply of several seconds
        self.cleanup.add(functools.partial(stop_process, process, timeout=60))
        self.nodes.append(node)
        wait_port(http_port, 60)
        return node

    def node_doc(self, name: str) -> dict[str, Any]:
        for doc in self.call("GET", "/api/v1/edge/nodes"):
            if doc["name"] == name:
                return dict(doc)
        raise RuntimeError(f"no node {name}")

    def wait_in_sync(self, timeout: float = 120) -> None:
        def synced() -> bool:
            docs = self.call("GET", "/api/v1/edge/nodes")
            return bool(docs) and all(d["in_sync"] for d in docs)

        wait_until(synced, timeout, "nodes in sync", every=0.05)


class _NamedHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with the TLS name ``sni``."""

    def __init__(self, sni: str, port: int, ctx: ssl.SSLContext) -> None:
        super().__init__("127.0.0.1", port, timeout=10, context=ctx)
        self.sni = sni

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.sni)  # type: ignore[attr-defined]


class Conn:
    """One keep-alive HTTP/1.1 connection to an edge port (reopened when closed)."""

    def __init__(self, port: int, tls: bool = False, sni: str = DOMAIN) -> None:
        self.port = port
        self.tls = tls
        self.sni = sni  # the TLS name sent (the edge refuses a handshake naming no site)
        self.c: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if not self.tls:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        return _NamedHTTPS(self.sni, self.port, ctx)

    def get(self, path: str, host: str = DOMAIN) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(2):
            if self.c is None:
                self.c = self._connect()
            try:
                self.c.request("GET", path, headers={"Host": host})
                r = self.c.getresponse()
                body = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a keep-alive connection closed by a reload: retry once on a new one
                self.c.close()
                self.c = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.c is not None:
            self.c.close()


def is_hit(conn: Conn, path: str) -> bool:
    return conn.get(path)[1].get("x-cache-status") == "HIT"


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non2xx: int


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def wrk(url: str, host: str, seconds: float, connections: int, threads: int) -> WrkResult:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
         "-H", f"Host: {host}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in errs.groups()) if errs else 0
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(rps, _ms(lat.get("50", "")), _ms(lat.get("99", "")), requests, errors,
                     int(non.group(1)) if non else 0)  # fmt: skip


# --------------------------------------------------------------------------- parts


REF_LOG_FORMAT = (
    'log_format ref_json escape=json \'{"ts":"$time_iso8601","host":"$host",'
    '"uri":"$request_uri","status":$status,"bytes_sent":$bytes_sent,'
    '"request_time":$request_time,"upstream_response_time":"$upstream_response_time",'
    '"cache":"$upstream_cache_status","remote_addr":"$remote_addr"}\';'
)
BIG_BYTES = 100 * 1024
SIZES = {"1 KiB": "/static/v1/app.css", "100 KiB": "/static/v1/big.css"}  # paths on the origin
# The sites of the hits stage, one project each: (label, host, CDN config). Every one is served
# by the same node, origin and cache; each adds a feature to the one before ("all" has all).
RULES = [
    {"pattern": "/api/*", "bypass": True},
    {"pattern": "/static/v1/*", "ttl": 86400},
    {"pattern": "*.css", "ttl": 3600, "cache_key": {"query": "none"}},
    {"pattern": "/index.html", "ttl": 60},
    {"pattern": "/*", "ttl": 600},
]
HSTS = {"hsts_max_age": 31_536_000, "hsts_include_subdomains": True}
RATE = {"rate_limit": {"rate": 1_000_000, "burst": 1_000_000}}  # on, never reached by wrk
WAF = {"waf": {"mode": "block"}}  # inspected in the origin hop: hits never reach it
FEATURES: list[tuple[str, str, dict[str, Any]]] = [
    ("edge: bare site (no rule)", "bare", {}),
    ("edge: + cache rules (5, of 4 kinds)", "rules", {"cache_rules": RULES}),
    ("edge: + HSTS header", "hsts", {"security": HSTS}),
    ("edge: + rate limit", "ratelimit", {"security": RATE}),
    *([("edge: + WAF blocking (CRS, paranoia 1)", "waf", {"security": WAF})]
      if find_waf_engine() is not None else []),
    ("edge: all (rules, HSTS, rate limit)", "all",
     {"cache_rules": RULES, "security": {**HSTS, **RATE}}),
]  # fmt: skip
QUICK_FEATURES = ("bare", "all")


def feature_host(key: str) -> str:
    return f"hits-{key}.localhost"


def add_feature_sites(stack: Stack, origin_port: int, keys: list[str]) -> None:
    for _label, key, cdn in FEATURES:
        if key not in keys:
            continue
        project = f"hits-{key}"
        stack.call("POST", "/api/v1/projects", json={"id": project})
        q = {"project": project}
        stack.call("POST", "/api/v1/infrastructure/domains", params=q,
                   json={"domain": feature_host(key)})  # fmt: skip
        body = {"origins": [{"url": f"http://127.0.0.1:{origin_port}"}], **cdn}
        body["security"] = {"force_https": False, **cdn.get("security", {})}
        stack.call("POST", "/api/v1/infrastructure/cdn", params=q, json=body)


def reference_body(prefix: Path, port: int, origin_port: int, logged: bool,
                   tls: tuple[Path, Path] | None = None,
                   staple: Path | None = None) -> str:  # fmt: skip
    """The ``http`` body of the reference: a minimal hand-written proxy_cache configuration in
    front of the origin on ``port`` (with ``tls``, the same settings an operator would write;
    with ``staple``, it staples that OCSP response file)."""
    access = f"access_log {prefix}/access.json ref_json buffer=32k flush=1s;" if logged else ""
    listen = f"listen 127.0.0.1:{port}"
    if tls is not None:
        listen += f""" ssl;
        ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};
        ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:ref_tls:10m"""
        if staple is not None:
            listen += f"; ssl_stapling on; ssl_stapling_file {staple}"
    return f"""
    {REF_LOG_FORMAT}
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=ref:50m max_size=1g inactive=1d
                     use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 16; }}
    server {{
        {listen};
        {access}
        location / {{
            proxy_cache ref;
            proxy_cache_valid 200 1h;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            add_header X-Cache-Status $upstream_cache_status always;
            proxy_pass http://origin;
        }}
    }}"""


def reference_prefix(stack: Stack, name: str) -> Path:
    prefix = stack.tmp / name
    (prefix / "cache").mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(prefix / "cache", "www-data")
        shutil.chown(prefix / "tmp", "www-data")
    return prefix


def reference(stack: Stack, origin_port: int, name: str, logged: bool,
              tls: tuple[Path, Path] | None = None, staple: Path | None = None) -> int:  # fmt: skip
    """A minimal hand-written proxy_cache nginx in front of the origin; its port. With ``tls``
    (certificate, key), it listens with TLS (the same settings an operator would write); with
    ``staple``, it staples that OCSP response file."""
    port = free_port()
    prefix = reference_prefix(stack, name)
    ref = PlainNginx(prefix, reference_body(prefix, port, origin_port, logged, tls, staple))
    stack.cleanup.add(ref.stop)
    wait_port(port)
    return port


@dataclass(frozen=True)
class Target:
    label: str
    port: int
    host: str
    path: str
    tls: bool = False

    @property
    def url(self) -> str:
        # TLS: the name in the URL, as wrk takes its TLS name (SNI) from it (``hosts_for``)
        host = self.host if self.tls else "127.0.0.1"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{self.path}"


def warm(target: Target) -> None:
    c = Conn(target.port, tls=target.tls, sni=target.host)
    wait_until(lambda: c.get(target.path, target.host)[1].get("x-cache-status") == "HIT", 10,
               f"HIT on {target.label} {target.path}")  # fmt: skip
    c.close()


def node_cert(node: Node, host: str) -> tuple[Path, Path]:
    """The certificate the node serves for the TLS name ``host``: the TLS reference serves the
    same one, so both do the same cryptography."""
    link = node.nginx_prefix() / "certs" / "names" / link_file(host)
    pem = wait_until(lambda: link.resolve() if link.exists() else None, 30, f"{host}'s certificate")
    return pem, pem  # key and chain in one file


def handshakes(port: int, host: str, seconds: float, reuse: bool) -> float:
    """TLS handshakes per second of one sequential client with the TLS name ``host`` (Python's
    ssl: ``openssl s_time`` sends no name, which the edge refuses); ``reuse``: resumed sessions
    (the session of a first connection, whose ticket is read after its handshake)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    session = None
    if reuse:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:  # fmt: skip
            tls.settimeout(0.2)
            with contextlib.suppress(TimeoutError, ssl.SSLError):
                tls.recv(1)  # the TLS 1.3 ticket comes after the handshake
            session = tls.session
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=host, session=session) as tls:  # fmt: skip
            if reuse and not tls.session_reused:
                raise RuntimeError(f"TLS session not resumed on port {port}")
        count += 1
    return count / (time.perf_counter() - start)


def stapling_files(node: Node, host: str) -> tuple[Path, Path] | None:
    """The certificate file and OCSP staple file of the node's stapling ``server`` for
    ``host`` (None: the node has no such block)."""
    release = node.nginx_prefix() / "current"
    text = (release / "servers.conf").read_text()
    for block in re.findall(r"(?ms)^server \{\n.*?^\}\n", text):
        names = re.search(r"server_name ([^;]+);", block)
        if names and host in names.group(1).split():
            cert = re.search(r"ssl_certificate (\S+);", block)
            staple = re.search(r"ssl_stapling_file (\S+);", block)
            if cert and staple:
                return (release / cert.group(1)).resolve(), (release / staple.group(1)).resolve()
    return None


def nginx_workers_cpu_s(needle: str) -> float:
    """CPU seconds (user + system) so far of the workers of the nginx masters whose command
    line holds ``needle`` (a prefix path)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    masters = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(d.name)] = stat
        if cmd.startswith(b"nginx") and needle.encode() in cmd:
            masters.add(int(d.name))
    return sum(
        (int(st[11]) + int(st[12])) / ticks for st in stats.values() if int(st[1]) in masters
    )


def stapled_handshakes(port: int, host: str, seconds: float) -> tuple[float, bool]:
    """Full handshakes per second of one sequential client with SNI ``host`` that asks for the
    certificate status (pyOpenSSL: Python's ssl cannot), and whether a staple came."""
    from OpenSSL import SSL

    stapled: list[bool] = []

    def on_status(_conn: Any, data: bytes, _x: Any) -> bool:
        stapled.append(bool(data))
        return True

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_ocsp_client_callback(on_status)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.settimeout(None)
            conn = SSL.Connection(ctx, sock)
            conn.set_tlsext_host_name(host.encode())
            conn.request_ocsp()
            conn.set_connect_state()
            conn.do_handshake()
            conn.shutdown()
        count += 1
    return count / (time.perf_counter() - start), bool(stapled) and all(stapled)


def bench_stapling(stack: Stack, origin_port: int, args: argparse.Namespace) -> list[list[str]]:
    """The "all" site's internal certificate names the control plane's OCSP responder: the
    control plane fetches its staple and the node staples it from a ``server`` of its own.
    Beside it, a hand-written nginx with the same certificate and staple files."""
    node, host = stack.nodes[0], feature_host("all")
    files = wait_until(lambda: stapling_files(node, host), 60, f"a stapling server for {host}")
    ref = reference(stack, origin_port, "reference-stapling", logged=False,
                    tls=(files[0], files[0]), staple=files[1])  # fmt: skip
    rates: dict[str, list[float]] = {"edge": [], "reference": []}
    cpu_ms: dict[str, list[float]] = {"edge": [], "reference": []}
    stapled = {"edge": True, "reference": True}
    targets = (("edge", node.https_port, str(node.home)),
               ("reference", ref, str(stack.tmp / "reference-stapling")))  # fmt: skip
    for i in range(args.rounds):
        for label, port, needle in targets:
            before = nginx_workers_cpu_s(needle)
            started = time.perf_counter()
            rate, ok = stapled_handshakes(port, host, args.duration)
            count = rate * (time.perf_counter() - started)
            cpu_ms[label].append((nginx_workers_cpu_s(needle) - before) * 1000 / max(count, 1))
            rates[label].append(rate)
            stapled[label] = stapled[label] and ok
            log(f"hits round {i + 1} stapled handshakes {label}: {rate:,.0f}/s stapled={ok} "
                f"nginx CPU {cpu_ms[label][-1]:.3f} ms per handshake")  # fmt: skip

    def med(values: dict[str, list[float]], label: str) -> float:
        return float(statistics.median(values[label]))

    def yes(label: str) -> str:
        return "yes" if stapled[label] else "NO"

    edge, reference_rate = med(rates, "edge"), med(rates, "reference")
    edge_cpu, reference_cpu = med(cpu_ms, "edge"), med(cpu_ms, "reference")
    return [
        ["OCSP staple on handshake (internal CA certificate, SNI)", yes("edge"),
         yes("reference"), ""],
        ["TLS full handshakes/s, SNI + status request, stapled (pyOpenSSL, one client, wall)",
         f"{edge:,.0f}", f"{reference_rate:,.0f}", f"{edge / reference_rate:.2f}"],
        ["nginx CPU ms per stapled full handshake",
         f"{edge_cpu:.3f}", f"{reference_cpu:.3f}", f"{edge_cpu / max(reference_cpu, 1e-9):.2f}"],
    ]  # fmt: skip


def bench_hits(stack: Stack, origin_port: int, args: argparse.Namespace) -> list[list[str]]:
    """Cached hits: one wrk run per target and round, every target in every round."""
    node = stack.nodes[0]
    keys = list(QUICK_FEATURES) if args.quick else [k for _, k, _ in FEATURES]
    sizes = ["1 KiB"] if args.quick else list(SIZES)
    ref = reference(stack, origin_port, "reference", logged=False)
    ref_log = reference(stack, origin_port, "reference-log", logged=True)
    ref_tls = reference(stack, origin_port, "reference-tls", logged=False,
                        tls=node_cert(node, feature_host("all")))  # fmt: skip
    groups: dict[str, list[Target]] = {}
    for size in sizes:
        path = SIZES[size]
        host = feature_host("all")
        group = [Target(f"reference, {size}", ref, host, path),
                 Target(f"reference + JSON access log, {size}", ref_log, host, path)]  # fmt: skip
        group += [Target(f"{label}, {size}", node.http_port, feature_host(key), path)
                  for label, key, _ in FEATURES if key in keys]  # fmt: skip
        groups[size] = group
    tls_group = [Target("reference, TLS keep-alive, 1 KiB", ref_tls, feature_host("all"),
                        SIZES["1 KiB"], tls=True),
                 Target("edge: bare, TLS keep-alive, 1 KiB", node.https_port,
                        feature_host("bare"), SIZES["1 KiB"], tls=True),
                 Target("edge: all, TLS keep-alive, 1 KiB", node.https_port, feature_host("all"),
                        SIZES["1 KiB"], tls=True)]  # fmt: skip
    groups["tls"] = tls_group
    for name in sorted({t.host for t in tls_group}):  # wrk takes its TLS name from the URL
        if os.geteuid() != 0:
            raise SystemExit(f"the TLS rows need {name} in /etc/hosts: run as root")
        if add_hosts_line(name):
            stack.cleanup.add(functools.partial(remove_hosts_line, name))
    targets = [t for group in groups.values() for t in group]
    for t in targets:  # warm every cache: MISS then HIT
        warm(t)
    runs: dict[str, list[WrkResult]] = {t.label: [] for t in targets}
    shakes: dict[str, list[float]] = {}
    for i in range(args.rounds):
        for t in targets:
            r = wrk(t.url, t.host, args.duration, args.connections, args.threads)
            runs[t.label].append(r)
            log(f"hits round {i + 1} {t.label}: {r.rps:,.0f} req/s p99 {r.p99_ms:.2f} ms "
                f"errors {r.errors} non-2xx {r.non2xx}")  # fmt: skip
        for label, port in (("reference", ref_tls), ("edge", node.https_port)):
            for reuse in (False, True):
                rate = handshakes(port, feature_host("all"), args.duration, reuse)
                shakes.setdefault(f"{label} {reuse}", []).append(rate)
                log(f"hits round {i + 1} TLS handshakes {label} reuse={reuse}: {rate:,.0f}/s")

    def med(label: str, attr: str = "rps") -> float:
        return float(statistics.median(getattr(r, attr) for r in runs[label]))

    def row(label: str, edge: float, reference: float, fmt: str = ",.0f") -> list[str]:
        return [label, f"{edge:{fmt}}", f"{reference:{fmt}}", f"{edge / reference:.2f}"]

    rows: list[list[str]] = []
    for size in sizes:
        ref_label = groups[size][0].label
        for t in groups[size][1:]:
            name = t.label.removeprefix("edge: ").rsplit(", ", 1)[0]
            rows.append(row(f"cached hits {size}, req/s: {name}", med(t.label), med(ref_label)))
        all_label = groups[size][-1].label
        if size == "1 KiB":  # the figure the test of the bench looks for
            rows.append(row("cached hits, req/s (vs reference)", med(all_label), med(ref_label)))
        rows.append(row(f"cached hits {size}, p99 ms (all vs reference)",
                        med(all_label, "p99_ms"), med(ref_label, "p99_ms"), ".2f"))  # fmt: skip
    # The bare site's row says what TLS itself costs the edge; the "all" row adds the features'
    # per-request work, which the cached hits' rows measure without TLS.
    ref_tls_label, bare_tls_label, edge_tls_label = (t.label for t in tls_group)
    rows.append(row("TLS keep-alive, 1 KiB, req/s (bare site)", med(bare_tls_label),
                    med(ref_tls_label)))  # fmt: skip
    rows.append(row("TLS keep-alive, 1 KiB, req/s (all)", med(edge_tls_label), med(ref_tls_label)))

    def shake(label: str) -> float:
        return float(statistics.median(shakes[label]))

    rows.append(row("TLS full handshakes/s (one client, SNI)",
                    shake("edge False"), shake("reference False")))  # fmt: skip
    rows.append(row("TLS resumed handshakes/s (one client, SNI)",
                    shake("edge True"), shake("reference True")))  # fmt: skip
    errors = sum(r.errors + r.non2xx for t in targets for r in runs[t.label])
    rows.append(["cached hits, errors + non-2xx (all runs)", str(errors), "", ""])
    rows.append(["TLS session of node 1 resumed on node 2 (TLS 1.3 / 1.2 ticket)",
                 " / ".join("yes" if resumed_elsewhere(stack, v) else "NO"
                            for v in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2)),
                 "", ""])  # fmt: skip
    rows += bench_stapling(stack, origin_port, args)
    rows += bench_reloads(stack, args)
    return rows


SWITCHED_OFF: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("no access log", [("base.conf", r"access_log [^;]*;", "access_log off;")]),
    ("only the contract's two headers", [("headers.conf", r"add_header X-Content-Type[^\n]*\n"
                                          r"(.*\n)*", "")]),
]  # fmt: skip


def bench_instructions(stack: Stack, origin_port: int, args: argparse.Namespace) -> list[list[str]]:
    """nginx's user-space instructions per cached 1 KiB hit (callgrind): the node's own
    configuration (a copy of its current release, on ports of its own) for each feature site,
    against the reference, with and without the JSON access log. Unlike req/s, the same whatever
    the load of the machine."""
    title = "nginx instructions per cached 1 KiB hit (callgrind; ratio = edge / reference)"
    if not callgrind.available():
        log("instructions: valgrind is not installed (scripts/bootstrap --with-test); skipped")
        return [[f"{title}: not measured, no valgrind", "", "", ""]]
    path, n = SIZES["1 KiB"], (300 if args.quick else 2000)
    counts: dict[str, float] = {}
    for name, logged in (("reference", False), ("reference + JSON access log", True)):
        prefix = reference_prefix(stack, f"callgrind-{'log' if logged else 'plain'}")
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_MAIN.format(
            p=prefix, workers=1, user="user www-data;" if os.geteuid() == 0 else "",
            access="off", body=reference_body(prefix, port, origin_port, logged)))  # fmt: skip
        out = stack.tmp / "callgrind" / f"reference-{int(logged)}"
        counts[name] = callgrind.count(conf, prefix, port, feature_host("bare"), path,
                                       requests=n, daemon_off=True, out=out)  # fmt: skip
    node = stack.nodes[0]
    node_prefix = node.nginx_prefix()
    release = (node_prefix / "current").resolve()
    keys = list(QUICK_FEATURES) if args.quick else [k for _, k, _ in FEATURES]
    targets: list[tuple[str, str, list[tuple[str, str, str]]]] = [
        (label, key, []) for label, key, _ in FEATURES if key in keys
    ]
    if not args.quick:  # what the parts every site has cost, each switched off
        targets += [(f"edge: bare site, {what}", "bare", edits) for what, edits in SWITCHED_OFF]
    for i, (label, key, edits) in enumerate(targets):
        port, into = free_port(), stack.tmp / f"callgrind-edge-{i}"
        conf = callgrind.release_copy(release, node_prefix, into,
                                      {node.http_port: port, node.https_port: free_port()},
                                      edits)  # fmt: skip
        out = stack.tmp / "callgrind" / f"edge-{i}"
        counts[label] = callgrind.count(conf, into, port, feature_host(key), path,
                                        requests=n, out=out)  # fmt: skip
    ref = counts["reference"]

    def row(label: str) -> list[str]:
        return [f"{title}: {label}", f"{counts[label]:,.0f}", f"{ref:,.0f}",
                f"{counts[label] / ref:.2f}"]  # fmt: skip

    return [row(label) for label in counts if label != "reference"]


def resumed_elsewhere(stack: Stack, version: ssl.TLSVersion) -> bool:
    """A session (ticket) from node 1 offered to node 2: resumed?"""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    session = None
    reused = []
    for node in stack.nodes[:2]:
        with (
            socket.create_connection(("127.0.0.1", node.https_port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=feature_host("all"), session=session) as tls,
        ):
            tls.sendall(f"GET {SIZES['1 KiB']} HTTP/1.1\r\nHost: {feature_host('all')}\r\n"
                        "Connection: close\r\n\r\n".encode())  # fmt: skip
            while tls.recv(65536):
                pass
            reused.append(tls.session_reused)
            session = tls.session
    return reused == [False, True]


class ReloadLoad:
    """Keep-alive GETs of a cached object (HTTP and HTTPS threads) until stopped. A request on
    a reused connection that a reload closed before any answer is retried once (``Conn``), as
    browsers do; anything else counts as failed."""

    def __init__(self, node: Node, threads: int = 3) -> None:
        self.node, self.stop = node, threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: dict[str, int] = {}
        self.threads = [threading.Thread(target=self._run, args=(tls,), daemon=True)
                        for tls in (False, True) for _ in range(threads)]  # fmt: skip

    def _run(self, tls: bool) -> None:
        host = feature_host("all")
        conn = Conn(self.node.https_port if tls else self.node.http_port, tls=tls, sni=host)
        while not self.stop.is_set():
            try:
                status = conn.get(SIZES["1 KiB"], feature_host("all"))[0]
                what = "" if status == 200 else str(status)
            except Exception as exc:
                what = type(exc).__name__
                conn.close()
                conn = Conn(conn.port, tls=tls, sni=host)
            with self.lock:
                if what:
                    self.failures[what] = self.failures.get(what, 0) + 1
                else:
                    self.ok += 1
        conn.close()

    def __enter__(self) -> ReloadLoad:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def bench_reloads(stack: Stack, args: argparse.Namespace) -> list[list[str]]:
    """Requests through node 1 while the API changes the "all" site ``args.reloads`` times
    (each change: a new release on both nodes, a reload of each nginx)."""
    node = stack.nodes[0]
    q = {"project": "hits-all"}
    cdn = dict(FEATURES[-1][2])
    started = time.monotonic()
    with ReloadLoad(node) as load:
        time.sleep(0.5)
        for i in range(args.reloads):
            security = {**cdn["security"], "force_https": False, "hsts_max_age": 1000 + i}
            stack.call("POST", "/api/v1/infrastructure/cdn", params=q, json={
                "origins": [{"url": f"http://127.0.0.1:{args.origin_port}"}],
                "cache_rules": cdn["cache_rules"], "security": security})  # fmt: skip
            stack.wait_in_sync()
        time.sleep(0.5)
    took = time.monotonic() - started
    log(f"reloads: {args.reloads} in {took:.1f}s, ok {load.ok}, failures {load.failures}")
    failed = sum(load.failures.values())
    return [[f"requests during {args.reloads} reloads under load (HTTP + HTTPS keep-alive): "
             "failed / total", f"{failed} / {failed + load.ok}", "", ""]]  # fmt: skip


class Traffic:
    """Client threads doing keep-alive GETs until stopped; counts failures and slow requests."""

    def __init__(self, port: int, host: str, threads: int = 8) -> None:
        self.port, self.host = port, host
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.slow = 0
        self.by_origin: dict[str, int] = {}
        self.last_seen: dict[str, float] = {}
        self.failures: dict[str, int] = {}  # status (or the exception) -> count
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)

    def _run(self) -> None:
        conn = Conn(self.port)
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            try:
                status, headers, _ = conn.get("/lb", self.host)
            except Exception as exc:
                status, headers = 0, {"x-error": type(exc).__name__}
                conn.close()
                conn = Conn(self.port)
            took = time.monotonic() - t0
            with self.lock:
                if status == 200:
                    self.ok += 1
                    name = headers.get("x-origin", "?")
                    self.by_origin[name] = self.by_origin.get(name, 0) + 1
                    self.last_seen[name] = time.monotonic()
                else:
                    self.failed += 1
                    kind = headers.get("x-error") or str(status)
                    self.failures[kind] = self.failures.get(kind, 0) + 1
                if took >= 0.9:
                    self.slow += 1
        conn.close()


def bench_failover(stack: Stack, args: argparse.Namespace) -> list[list[str]]:
    project = "failover"
    stack.call("POST", "/api/v1/projects", json={"id": project})
    q = {"project": project}
    backends = [start_origin(n) for n in ("a", "b")]
    for o in backends:
        stack.cleanup.add(o.terminate)
    lb = stack.call("POST", "/api/v1/infrastructure/loadbalancer", params=q, json={
        "name": "bench", "algorithm": "round_robin",
        "backends": [{"address": f"127.0.0.1:{o.port}"} for o in backends],
        "health_check": {"path": "/health", "interval_s": 1, "timeout_s": 0.5,
                         "healthy_threshold": 2, "unhealthy_threshold": 2},
        "read_timeout_s": 2, "connect_timeout_s": 1,
    })  # fmt: skip
    host = "failover.localhost"
    stack.call("POST", "/api/v1/infrastructure/domains", params=q, json={"domain": host})
    stack.call("POST", "/api/v1/infrastructure/cdn", params=q, json={
        "origins": [{"load_balancer": lb["id"]}],
        "cache_rules": [{"pattern": "/*", "bypass": True}],
        "security": {"force_https": False},
    })  # fmt: skip
    stack.wait_in_sync()
    port = stack.nodes[0].http_port
    c = Conn(port)
    wait_until(lambda: c.get("/lb", host)[0] == 200, 30, "failover site")
    c.close()
    rows: list[list[str]] = []

    def health_down(key: str) -> bool:
        doc = stack.call("GET", f"/api/v1/infrastructure/loadbalancer/{lb['id']}/health", params=q)
        items = doc if isinstance(doc, list) else doc.get("backends", [])
        for item in items:
            if str(item.get("address", item.get("backend"))) == key:
                nodes = item.get("nodes", [])
                n1 = [n for n in nodes if n.get("node") in (stack.nodes[0].name,)]
                states = n1 or nodes
                return any(s.get("state") == "down" for s in states)
        return False

    # SIGKILL
    a = backends[0]
    with Traffic(port, host) as tr:
        time.sleep(args.traffic_warmup)
        t_kill = time.monotonic()
        a.kill()
        time.sleep(args.failover_seconds)
    rows.append(["SIGKILL one of two backends: failed / total requests",
                 f"{tr.failed} / {tr.ok + tr.failed}", "", ""])  # fmt: skip
    rows.append(["SIGKILL: requests slower than 0.9 s", str(tr.slow), "", ""])
    last_a = tr.last_seen.get("a", 0) - t_kill
    log(f"sigkill: failed {tr.failed} of {tr.ok + tr.failed}, slow {tr.slow}, "
        f"failures {tr.failures}, by origin {tr.by_origin}, last a {last_a:+.2f}s")  # fmt: skip
    # bring it back on the same port and wait for it to be up again
    backends[0] = start_origin("a", port=a.port)
    stack.cleanup.add(backends[0].terminate)
    wait_until(lambda: not health_down(f"127.0.0.1:{a.port}"), 30, "a back up", every=0.2)
    # SIGSTOP
    b = backends[1]
    key_b = f"127.0.0.1:{b.port}"
    with Traffic(port, host) as tr:
        time.sleep(args.traffic_warmup)
        t_stop = time.monotonic()
        b.stop()
        t_down = wait_until(lambda: health_down(key_b) and time.monotonic(), 30, "b down",
                            every=0.05)  # fmt: skip
        time.sleep(max(0.0, args.failover_seconds - (time.monotonic() - t_stop)))
    b.cont()
    last_b = tr.last_seen.get("b", t_stop) - t_stop
    rows.append(["SIGSTOP one of two backends: failed / total requests",
                 f"{tr.failed} / {tr.ok + tr.failed}", "", ""])  # fmt: skip
    rows.append(["SIGSTOP: requests slower than 0.9 s (held by the frozen backend)",
                 str(tr.slow), "", ""])  # fmt: skip
    rows.append(["SIGSTOP: API reports it down after (s; checks every 1 s, fall 2)",
                 f"{t_down - t_stop:.2f}", "", ""])  # fmt: skip
    rows.append(["SIGSTOP: last answer from it after (s)", f"{last_b:.2f}", "", ""])
    log(f"sigstop: failed {tr.failed}, slow {tr.slow}, down after {t_down - t_stop:.2f}s, "
        f"failures {tr.failures}, by origin {tr.by_origin}")  # fmt: skip
    return rows


def bench_purge(stack: Stack, args: argparse.Namespace) -> list[list[str]]:
    conns = [Conn(n.http_port) for n in stack.nodes]
    to_miss: list[float] = []
    api_wait: list[float] = []
    for i in range(args.samples):
        path = f"/purge/{i}.js"
        for c in conns:
            wait_until(functools.partial(is_hit, c, path), 10, "warm")
        t0 = time.perf_counter()
        stack.call("POST", "/api/v1/infrastructure/cdn/purge", json={"paths": [path]})
        pending = list(conns)
        while pending:
            pending = [c for c in pending if c.get(path)[1].get("x-cache-status") != "MISS"]
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("purge did not reach every node within 30 s")
        to_miss.append((time.perf_counter() - t0) * 1000)
        # the same with wait=true: the API answers when every node has acknowledged
        for c in conns:
            wait_until(functools.partial(is_hit, c, path), 10, "warm")
        t0 = time.perf_counter()
        doc = stack.call("POST", "/api/v1/infrastructure/cdn/purge",
                         json={"paths": [path], "wait": True})  # fmt: skip
        api_wait.append((time.perf_counter() - t0) * 1000)
        assert doc["complete"], doc
    for c in conns:
        c.close()
    return [
        ["purge one path: API call until MISS on both nodes, p50 / p95 / max ms",
         f"{pct(to_miss, 50):.1f} / {pct(to_miss, 95):.1f} / {max(to_miss):.1f}", "", ""],
        ["purge with wait=true: API answer (every node acknowledged), p50 / p95 ms",
         f"{pct(api_wait, 50):.1f} / {pct(api_wait, 95):.1f}", "", ""],
    ]  # fmt: skip


LOAD_CHUNK = 200  # domains per transaction (500, with a certificate each, held the lock > 30 s)


def load_domains(stack: Stack, total: int) -> None:
    """Bring the platform to ``total`` domains in one transaction of the service layer.

    Each domain is added as the API adds it (validated, with its certificate from the internal
    CA), in the control plane's own database and with its secret key.
    """
    from sqlalchemy import func, select

    from edgeplane.secrets import SecretBox
    from edgeplane.services import domains
    from edgeplane.settings import Settings
    from edgeplane.store.actor import LOCAL
    from edgeplane.store.db import Database
    from edgeplane.store.tables import DomainRow

    settings = Settings.from_env(home=stack.tmp / "cp")
    db = Database(settings.effective_database_url, secrets=SecretBox.from_settings(settings))
    try:
        with db.read(LOCAL, "default") as tx:
            have = tx.session.scalar(select(func.count()).select_from(DomainRow)) or 0
        # Transactions of LOAD_CHUNK domains: one transaction of 10,000 held SQLite's write
        # lock for most of a minute, and the control plane's own writes (a poll noting the
        # node was seen, acks, heartbeats) failed or timed out meanwhile; 500 at a time still
        # outlasted its 30 s busy timeout at times on a loaded machine (a poll answered 500).
        for start in range(have, total, LOAD_CHUNK):
            with db.transaction(LOCAL, "default") as tx:
                for i in range(start, min(total, start + LOAD_CHUNK)):
                    domains.add(tx, {"domain": f"d{i}.{DOMAIN}"}, settings)
    finally:
        db.dispose()


def zone_served(port: int, name: str) -> bool:
    """The node's PowerDNS answers the zone's SOA with authority."""
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode

    query = dns.message.make_query(name, "SOA")
    try:
        answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except Exception:
        return False
    return (
        answer.rcode() == dns.rcode.NOERROR
        and bool(answer.flags & dns.flags.AA)
        and bool(answer.answer)
    )


def every_zone_served(stack: Stack, name: str) -> bool:
    return all(zone_served(n.dns_port, name) for n in stack.nodes)


def wait_served(
    stack: Stack, conns: list[Conn], name: str, t0: float, timeout: float = 60
) -> float:
    """Until every node serves ``name`` over HTTP (not 404) and its DNS answers the zone; the
    ms since ``t0``."""
    http = list(range(len(conns)))
    dns_left = [n.dns_port for n in stack.nodes if n.dns_port]
    while True:
        http = [i for i in http if conns[i].get("/asset.css", name)[0] == 404]
        dns_left = [p for p in dns_left if not zone_served(p, name)]
        if not (http or dns_left):
            return (time.perf_counter() - t0) * 1000
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{name} not served on every node within {timeout:.0f} s")
        # Not a busy loop: on 2 cores the asking took CPU from the nodes being measured.
        time.sleep(SERVED_POLL_S)


@dataclass
class Sizes:
    served: list[float] = field(default_factory=list)
    applied: list[float] = field(default_factory=list)
    propagated: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)  # per node
    pss: list[float] = field(default_factory=list)
    missed: int = 0  # samples not served within SAMPLE_TIMEOUT_S (counted at that figure)


def config_sample(stack: Stack, conns: list[Conn], total: int, i: int, into: Sizes) -> None:
    name = f"probe{total}-{i}.{DOMAIN}"
    t0 = time.perf_counter()
    stack.call("POST", "/api/v1/infrastructure/domains", json={"domain": name})
    try:
        into.served.append(wait_served(stack, conns, name, t0, SAMPLE_TIMEOUT_S))
    except RuntimeError as exc:  # counted, and the run goes on: one slow sample is a figure
        log(str(exc))
        into.missed += 1
        into.served.append(SAMPLE_TIMEOUT_S * 1000)
        wait_served(stack, conns, name, t0, 900)
    stack.wait_in_sync(600)  # both nodes acknowledged, before the next sample
    doc = stack.node_doc(stack.nodes[0].name)
    into.applied.append(float(doc.get("apply_ms") or 0))
    into.propagated.append(float(doc.get("propagation_ms") or 0))


SAMPLE_TIMEOUT_S = 60.0
SERVED_POLL_S = 0.01  # between two looks at every node (the figures' resolution)
LOAD_DNS_TIMEOUT_S = 2400.0


def _fig(values: list[float]) -> str:
    return f"{pct(values, 50):.0f} / {pct(values, 99):.0f} / {max(values):.0f}"


def _missed(got: Sizes) -> str:
    return f" ({got.missed} over {SAMPLE_TIMEOUT_S:.0f} s)" if got.missed else ""


def _ratio(value: float, ref: float) -> str:
    return f"{value / ref:.1f}x" if ref else ""


def bench_config(stack: Stack, args: argparse.Namespace) -> list[list[str]]:
    """Per size: API call -> served on every node; the first size is the reference column."""
    rows: list[list[str]] = [
        ["internal CA certificates stapled (with the hits stages: Stack.start_control_plane)",
         "yes" if stack.stapling else "no", "", ""]
    ]  # fmt: skip
    conns = [Conn(n.http_port) for n in stack.nodes]
    ref: Sizes | None = None
    for total in args.domains:
        t0 = time.perf_counter()
        load_domains(stack, total)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        stack.wait_in_sync(900)
        sync_s = time.perf_counter() - t0
        # DNS is applied beside nginx: wait for every node to answer the newest loaded zone
        last = max(f"d{i}.{DOMAIN}" for i in range(total)) if total else DOMAIN
        # A node creates the zones new to its running PowerDNS one by one through its API
        # (tens of ms each: 10,000 took over 15 minutes at a load average of 10).
        wait_until(functools.partial(every_zone_served, stack, last), LOAD_DNS_TIMEOUT_S,
                   "every node's DNS serving the loaded zones", every=0.1)  # fmt: skip
        dns_s = time.perf_counter() - t0
        log(f"{total} domains: loaded in {load_s:.1f}s, nodes in sync {sync_s:.1f}s later, "
            f"DNS of every node {dns_s:.1f}s later")  # fmt: skip
        # The first change after the load waits for whatever the nodes still apply of it (DNS
        # changes of thousands of zones go through PowerDNS's API): shown apart.
        name = f"warmup{total}.{DOMAIN}"
        t0 = time.perf_counter()
        stack.call("POST", "/api/v1/infrastructure/domains", json={"domain": name})
        first_s = wait_served(stack, conns, name, t0, timeout=900) / 1000
        stack.wait_in_sync(600)
        log(f"{total} domains: the first change after the load served in {first_s:.1f}s")
        rows.append([f"{total:,} domains: loaded ({load_s:.0f} s), every node serving all "
                     "(HTTP, DNS) after / first change served after (s)",
                     f"{sync_s:.0f}, {dns_s:.0f} / {first_s:.1f}", "", ""])  # fmt: skip
        got = Sizes()
        for i in range(args.config_samples):
            config_sample(stack, conns, total, i, got)
        got.rss = [rss_mib(n.process.pid) for n in stack.nodes]
        got.pss = [n.settled_nginx_pss_mib() for n in stack.nodes]
        ref = ref or got
        rows += [
            [f"{total:,} domains: add a domain -> served on every node (HTTP and DNS), "
             "p50 / p99 / max ms", _fig(got.served) + _missed(got), _fig(ref.served),
             _ratio(pct(got.served, 99), pct(ref.served, 99))],
            [f"{total:,} domains: node apply / commit-to-ack p50 ms (reported)",
             f"{pct(got.applied, 50):.0f} / {pct(got.propagated, 50):.0f}",
             f"{pct(ref.applied, 50):.0f} / {pct(ref.propagated, 50):.0f}",
             _ratio(pct(got.propagated, 50), pct(ref.propagated, 50))],
        ]  # fmt: skip
        for k, n in enumerate(stack.nodes):
            rows.append([f"{total:,} domains: {n.name} agent RSS / nginx PSS MiB",
                         f"{got.rss[k]:.1f} / {got.pss[k]:.1f}",
                         f"{ref.rss[k]:.1f} / {ref.pss[k]:.1f}",
                         _ratio(got.rss[k], ref.rss[k])])  # fmt: skip
    total = args.domains[-1]
    before = [(rss_mib(n.process.pid), n.settled_nginx_pss_mib()) for n in stack.nodes]
    log(f"{args.config_changes} config changes at {total} domains (memory before and after)")
    many = Sizes()
    for i in range(args.config_changes):
        config_sample(stack, conns, total, 1000 + i, many)
    after = [(rss_mib(n.process.pid), n.settled_nginx_pss_mib()) for n in stack.nodes]
    rows.append([f"{total:,} domains, {args.config_changes} changes: add -> served on every node, "
                 "p50 / p99 / max ms", _fig(many.served) + _missed(many), "", ""])  # fmt: skip
    for k, n in enumerate(stack.nodes):
        rows.append([f"{n.name}: agent RSS MiB before / after {args.config_changes} changes",
                     f"{before[k][0]:.1f} / {after[k][0]:.1f}", "",
                     _ratio(after[k][0], before[k][0])])  # fmt: skip
        rows.append([f"{n.name}: nginx PSS MiB before / after {args.config_changes} changes",
                     f"{before[k][1]:.1f} / {after[k][1]:.1f}", "",
                     _ratio(after[k][1], before[k][1])])  # fmt: skip
        # What the loading phase peaked at: the allocator may keep part of it.
        rows.append([f"{n.name}: agent peak RSS MiB (VmHWM, the whole run)",
                     f"{rss_mib(n.process.pid, 'VmHWM'):.1f}", "", ""])  # fmt: skip
    for c in conns:
        c.close()
    return rows


# --------------------------------------------------------------------------- many nodes

REAL_NODES = 2  # the stack's own (bench-1, bench-2)
FLEET_REGIONS = ("us-east", "eu-central", "ap-southeast", "sa-east", "af-south")
FLEET_CHANGE_TIMEOUT_S = 60.0
FLEET_MAX_MISSED = 3  # changes not acknowledged in time before a count's changes stop


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and every live process below it, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # the command may hold spaces
        parents[int(d.name)] = int(fields[1])
        used[int(d.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += used.get(p, 0.0)
        todo += [c for c, parent in parents.items() if parent == p]
    return total


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class FleetFigures:
    join_s: float = 0.0
    not_joined: str = ""  # what was seen when not every node was live and in sync in time
    idle_cpu: float = 0.0  # the control plane's CPU-s per s
    bench_cpu: float = 0.0  # this process's (the simulated nodes') CPU-s per s, idle
    change_cpu: float = 0.0  # the control plane's CPU-s per change
    change_s: list[float] = field(default_factory=list)  # API call -> every node acknowledged
    propagation_ms: list[float] = field(default_factory=list)  # per node and change
    other_revision: int = 0  # acks of a newer revision than the change's (not counted)
    missed: int = 0  # changes not acknowledged by every node in time
    changes: int = 0  # changes made
    revisions: int = 0  # revisions committed during the changes (liveness changes add some)
    failed: int = 0  # the simulated nodes' failed calls (join, idle and changes)


def _revision(stack: Stack) -> int:
    """The newest revision (the desired revision of the first real node)."""
    return int(stack.node_doc(stack.nodes[0].name)["desired_revision"])


def _fleet_docs(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.call("GET", "/api/v1/edge/nodes"))


def _fleet_join(stack: Stack, pollers: Pollers, total: int, timeout: float) -> tuple[float, str]:
    """Simulated nodes up to ``total`` nodes in all; the seconds until every node is live and
    in sync (``timeout`` when they were not, with what was seen then)."""
    first = len(pollers.nodes)
    new = []
    for i in range(first, total - REAL_NODES):
        name = f"sim-{i}"
        token = stack.call("POST", "/api/v1/tokens", json={"name": name, "scope": "edge"})
        region = FLEET_REGIONS[i % len(FLEET_REGIONS)]
        new.append(SimNode(name, region, token["token"], address_of(i)))
    real = [stack.node_doc(n.name)["id"] for n in stack.nodes]
    t0 = time.perf_counter()
    pollers.add(new)
    seen = ""
    while time.perf_counter() - t0 < timeout:
        # Cheap first (this process's nodes, the real ones one by one); the whole list, which
        # builds every node's snapshot to tell whether it is in sync, when those agree.
        docs = [stack.call("GET", f"/api/v1/edge/nodes/{i}") for i in real]
        revision = int(docs[0]["desired_revision"])
        if pollers.acked(revision) == len(pollers.nodes) and all(
            (d["applied_revision"] or -1) >= revision for d in docs
        ):
            every = _fleet_docs(stack)
            live = sum(1 for d in every if d["live"])
            synced = sum(1 for d in every if d["in_sync"])
            seen = f"{len(every)} registered, {live} live, {synced} in sync"
            if len(every) == total and live == synced == total:
                return time.perf_counter() - t0, ""
        else:
            seen = f"revision {revision}: {pollers.acked(revision)} simulated nodes acknowledged"
        time.sleep(0.5)
    log(f"{total} nodes: not all live and in sync within {timeout:.0f} s ({seen})")
    return timeout, seen


def _fleet_change(stack: Stack, pollers: Pollers, k: int, into: FleetFigures) -> bool:
    """One DNS record changed; until every node acknowledged it (the simulated nodes seen in
    this process, the real ones through the API), then every node's commit -> ack once.
    False when not every node acknowledged it within ``FLEET_CHANGE_TIMEOUT_S``."""
    real = [stack.node_doc(n.name)["id"] for n in stack.nodes]
    t0 = time.perf_counter()
    stack.call("PATCH", f"/api/v1/infrastructure/domains/{DOMAIN}/records",
               json={"set": [{"name": "fleet-probe", "type": "A",
                              "values": [f"192.0.2.{k % 250 + 1}"]}]})  # fmt: skip
    revision = int(stack.call("GET", f"/api/v1/edge/nodes/{real[0]}")["desired_revision"])

    def real_acked() -> bool:
        docs = [stack.call("GET", f"/api/v1/edge/nodes/{i}") for i in real]
        return all((d["applied_revision"] or -1) >= revision for d in docs)

    try:
        if not pollers.wait_acked(revision, FLEET_CHANGE_TIMEOUT_S):
            behind = len(pollers.nodes) - pollers.acked(revision)
            raise RuntimeError(f"{behind} simulated nodes had not acknowledged it")
        left = FLEET_CHANGE_TIMEOUT_S - (time.perf_counter() - t0)
        wait_until(real_acked, max(1.0, left), "the real nodes", every=0.1)
    except RuntimeError as exc:
        log(f"revision {revision}: not acknowledged by every node within "
            f"{FLEET_CHANGE_TIMEOUT_S:.0f} s: {exc}")  # fmt: skip
        into.missed += 1
        return False
    into.change_s.append(time.perf_counter() - t0)
    for doc in _fleet_docs(stack):
        if doc["applied_revision"] == revision and doc["propagation_ms"] is not None:
            into.propagation_ms.append(float(doc["propagation_ms"]))
        else:
            into.other_revision += 1
    return True


def bench_fleet(stack: Stack, args: argparse.Namespace) -> list[list[str]]:
    """Per node count: join, idle CPU, then ``--fleet-changes`` DNS record changes; the
    smallest count is the reference column. The simulated nodes are deleted at the end."""
    assert stack.cp is not None
    cp = stack.cp.pid
    pollers = Pollers(stack.url)
    got: dict[int, FleetFigures] = {}
    try:
        for total in args.nodes:
            f = got[total] = FleetFigures()
            failed0 = pollers.failed
            f.join_s, f.not_joined = _fleet_join(stack, pollers, total, args.fleet_join_timeout)
            time.sleep(min(2.0, args.fleet_idle))  # the joins' last revisions settle
            cpu0, own0, t0 = tree_cpu_s(cp), own_cpu_s(), time.perf_counter()
            time.sleep(args.fleet_idle)
            wall = time.perf_counter() - t0
            f.idle_cpu = (tree_cpu_s(cp) - cpu0) / wall
            f.bench_cpu = (own_cpu_s() - own0) / wall
            cpu0 = tree_cpu_s(cp)
            first = _revision(stack)
            for k in range(args.fleet_changes):
                f.changes += 1
                if not _fleet_change(stack, pollers, k, f) and f.missed >= FLEET_MAX_MISSED:
                    log(f"{total} nodes: {f.missed} changes missed, no more at this count")
                    break
            f.change_cpu = (tree_cpu_s(cp) - cpu0) / max(1, f.changes)
            f.revisions = _revision(stack) - first
            f.failed = pollers.failed - failed0
            log(f"{total} nodes: joined in {f.join_s:.1f} s; control plane idle "
                f"{f.idle_cpu:.3f} CPU-s/s, {f.change_cpu:.3f} CPU-s per change; commit -> "
                f"ack p50 {pct(f.propagation_ms, 50):.0f} ms, p99 "
                f"{pct(f.propagation_ms, 99):.0f} ms; {f.revisions} revisions for {f.changes} "
                f"changes; simulated nodes' failed calls {f.failed}")  # fmt: skip
    finally:
        failures = list(pollers.failures)
        ids = pollers.ids()
        pollers.close()
        for node_id in sorted(ids):  # the later stages run with the two real nodes alone
            stack.call("DELETE", f"/api/v1/edge/nodes/{node_id}")
    stack.wait_in_sync()
    for line in failures[:5]:
        log(f"a simulated node's failed call: {line}")
    ref = got[args.nodes[0]]
    rows: list[list[str]] = []
    for total, f in got.items():
        who = f"{total} nodes ({REAL_NODES} real + {total - REAL_NODES} simulated)"
        p50, p99 = pct(f.propagation_ms, 50), pct(f.propagation_ms, 99)
        rows += [
            [f"{who}: joined (live and in sync), s",
             f"> {f.join_s:.0f} ({f.not_joined})" if f.not_joined else f"{f.join_s:.1f}",
             f"{ref.join_s:.1f}", _ratio(f.join_s, ref.join_s)],
            [f"{who}: DNS change commit -> ack, p50 / p99 ms over nodes x "
             f"{f.changes} changes", f"{p50:.0f} / {p99:.0f}" + (
                 f" ({f.missed} not acknowledged by every node within "
                 f"{FLEET_CHANGE_TIMEOUT_S:.0f} s)" if f.missed else ""),
             f"{pct(ref.propagation_ms, 50):.0f} / {pct(ref.propagation_ms, 99):.0f}",
             _ratio(p99, pct(ref.propagation_ms, 99))],
            [f"{who}: API call -> every node acknowledged, p50 / max s",
             f"{pct(f.change_s, 50):.2f} / {max(f.change_s, default=float('nan')):.2f}",
             f"{pct(ref.change_s, 50):.2f}", _ratio(pct(f.change_s, 50), pct(ref.change_s, 50))],
            [f"{who}: control plane CPU idle (heartbeats, polls), CPU-s per s",
             f"{f.idle_cpu:.3f}", f"{ref.idle_cpu:.3f}", _ratio(f.idle_cpu, ref.idle_cpu)],
            [f"{who}: control plane CPU per change, CPU-s", f"{f.change_cpu:.3f}",
             f"{ref.change_cpu:.3f}", _ratio(f.change_cpu, ref.change_cpu)],
            [f"{who}: revisions committed during the changes (1 a change, the rest liveness)",
             f"{f.revisions} for {f.changes}", f"{ref.revisions} for {ref.changes}", ""],
            [f"{who}: the simulated nodes' failed calls (then retried)", str(f.failed),
             str(ref.failed), ""],
            [f"{who}: the simulated nodes' process (this bench) CPU idle, CPU-s per s",
             f"{f.bench_cpu:.3f}", f"{ref.bench_cpu:.3f}", ""],
        ]  # fmt: skip
        if f.other_revision:
            rows.append([f"{who}: acks of a newer revision than the change's (not counted)",
                         str(f.other_revision), "", ""])  # fmt: skip
    return rows


# --------------------------------------------------------------------------- the nginx apply

APPLY_REFERENCE_SITES = 10


def bench_apply(tmp: Path, args: argparse.Namespace) -> list[list[str]]:
    """The nginx apply of one change among ``args.apply_sites`` sites and among 10."""
    figures: dict[int, nginx_apply.Figures] = {}
    for n in (APPLY_REFERENCE_SITES, args.apply_sites):
        local = nginx_apply.node_local(tmp / f"apply-{n}", free_port(), free_port())
        started = time.monotonic()
        figures[n] = f = nginx_apply.measure(n, args.apply_samples, local)
        log(f"apply: {n:,} sites in {time.monotonic() - started:.0f} s (first apply "
            f"{f.first_ms:,.0f} ms), load average {nginx_apply.load()}: "
            + "; ".join(f"{c} {f.median(c):,.0f} ms ("
                        + ", ".join(f"{s} {f.median(c, s):.0f}" for s in nginx_apply.STEPS) + ")"
                        for c in nginx_apply.CHANGES))  # fmt: skip
    n, ref = figures[args.apply_sites], figures[APPLY_REFERENCE_SITES]
    what = {"add": "one domain added", "remove": "one domain removed",
            "renew": "one certificate renewed"}  # fmt: skip
    samples = len(n.totals["add"])
    rows: list[list[str]] = []
    for change in nginx_apply.CHANGES:
        label = f"apply of {what[change]} among {args.apply_sites:,} sites (vs 10)"
        rows.append([f"{label}, ms p50 of {samples}", f"{n.median(change):,.0f}",
                     f"{ref.median(change):,.0f}", _ratio(n.median(change), ref.median(change))])
        for step in nginx_apply.STEPS:
            rows.append([f"{label}: {step}", f"{n.median(change, step):,.1f}",
                         f"{ref.median(change, step):,.1f}", ""])  # fmt: skip
    rows.append([f"nginx PSS MiB after the changes, {args.apply_sites:,} sites (vs 10)",
                 f"{n.pss_mib:,.1f}", f"{ref.pss_mib:,.1f}", _ratio(n.pss_mib, ref.pss_mib)])
    rows.append(["load average during the apply stage (1 / 5 / 15 min)", nginx_apply.load(),
                 "", ""])  # fmt: skip
    return rows


# --------------------------------------------------------------------------- main


def stack_stages(tmp: Path, cleanup: Cleanup, args: argparse.Namespace,
                 stages: list[str]) -> list[list[str]]:  # fmt: skip
    """The stages that run the control plane and two edge nodes."""
    rows: list[list[str]] = []
    stack = Stack(tmp, cleanup)
    origin_port = args.origin_port = free_port()
    (tmp / "origin" / "www").mkdir(parents=True)
    (tmp / "origin" / "www" / "big.css").write_bytes(b"x" * BIG_BYTES)
    origin = PlainNginx(tmp / "origin", f"""
    server {{
        listen 127.0.0.1:{origin_port};
        location = /static/v1/big.css {{ add_header Cache-Control "public, max-age=3600";
                                        root {tmp / "origin" / "www"};
                                        try_files /big.css =404; }}
        location / {{ add_header Cache-Control "public, max-age=3600";
                     return 200 "{'x' * (BODY_BYTES - 1)}\\n"; }}
    }}""")  # fmt: skip
    cleanup.add(origin.stop)
    wait_port(origin_port)
    log("starting the control plane and two edge nodes")
    stack.start_control_plane(stapling="hits" in stages or "instructions" in stages)
    stack.call("POST", "/api/v1/infrastructure/domains", json={"domain": DOMAIN})
    stack.call("POST", "/api/v1/infrastructure/cdn", json={
        "origins": [{"url": f"http://127.0.0.1:{origin_port}"}],
        "cache_rules": [{"pattern": "/*", "ttl": 3600}],
        "security": {"force_https": False},
    })  # fmt: skip
    if "hits" in stages or "instructions" in stages:
        keys = list(QUICK_FEATURES) if args.quick else [k for _, k, _ in FEATURES]
        add_feature_sites(stack, origin_port, keys)
    elif "reloads" in stages:
        add_feature_sites(stack, origin_port, ["all"])
    for name in ("bench-1", "bench-2"):
        stack.start_node(name)
    stack.wait_in_sync()
    if "hits" in stages:
        log("cached hits (wrk), edge and reference interleaved")
        rows += bench_hits(stack, origin_port, args)
    elif "reloads" in stages:
        log("requests during reloads")
        rows += bench_reloads(stack, args)
    if "instructions" in stages:
        log("instructions per cached hit (callgrind), edge and reference")
        rows += bench_instructions(stack, origin_port, args)
    if "purge" in stages:
        log("purge propagation")
        rows += bench_purge(stack, args)
    if "failover" in stages:
        log("failover")
        rows += bench_failover(stack, args)
    if "fleet" in stages:
        log(f"many nodes: {', '.join(map(str, args.nodes))}")
        started = time.monotonic()
        rows += bench_fleet(stack, args)
        log(f"many nodes: done in {time.monotonic() - started:.0f} s")
    if "config" in stages:
        log("config propagation")
        rows += bench_config(stack, args)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="the short mode: every stage once, small (about 40 s); the tests run it")
    ap.add_argument("--domains", default="10,1000,10000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk round")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=20, help="purge samples")
    ap.add_argument("--config-samples", type=int, default=20)
    ap.add_argument("--config-changes", type=int, default=100,
                    help="config changes at the largest size, memory measured before and after")
    ap.add_argument("--failover-seconds", type=float, default=8.0)
    ap.add_argument("--traffic-warmup", type=float, default=2.0,
                    help="seconds of failover traffic before a backend is killed or frozen")
    ap.add_argument("--reloads", type=int, default=100,
                    help="configuration changes (reloads) under load in the hits stage")
    ap.add_argument("--apply-sites", type=int, default=10_000,
                    help="sites of the apply stage (its reference: 10)")
    ap.add_argument("--apply-samples", type=int, default=20,
                    help="applies of each change (add, remove, renew) in the apply stage")
    ap.add_argument("--nodes", default="10,50,200",
                    help="node counts of the fleet stage (the two real nodes and simulated ones)")
    ap.add_argument("--fleet-changes", type=int, default=20,
                    help="DNS record changes timed at each node count")
    ap.add_argument("--fleet-idle", type=float, default=10.0,
                    help="seconds of the idle CPU measure at each node count")
    ap.add_argument("--fleet-join-timeout", type=float, default=300.0,
                    help="seconds the nodes of a count have to be live and in sync")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help=f"the stages to run, of {','.join(STAGES)} (default: all)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--keep-logs", default=None, metavar="DIR",
                    help="copy the control plane's and the nodes' logs to DIR at the end")
    args = ap.parse_args()
    stages = [s for s in str(args.stages).split(",") if s]
    if unknown := [s for s in stages if s not in STAGES]:
        ap.error(f"--stages: unknown {unknown}; the stages are {','.join(STAGES)}")
    if args.quick:
        args.rounds, args.duration, args.samples, args.config_samples = 1, 1.0, 2, 2
        args.reloads, args.config_changes = 5, 3
        args.failover_seconds, args.traffic_warmup, args.domains = 3.0, 0.5, "10,100"
        args.apply_sites, args.apply_samples = 100, 2
        args.nodes, args.fleet_changes, args.fleet_idle = "10", 2, 1.0
        args.fleet_join_timeout = 60.0
    args.domains = [int(x) for x in str(args.domains).split(",") if x]
    try:
        args.nodes = sorted({int(x) for x in str(args.nodes).split(",") if x.strip()})
    except ValueError:
        ap.error(f"--nodes {args.nodes!r}: node counts separated by commas, e.g. 10,50,200")
    if "fleet" in stages and (not args.nodes or args.nodes[0] < REAL_NODES):
        ap.error(f"--nodes: every count must be at least {REAL_NODES} (the real nodes)")
    if shutil.which("wrk") is None or shutil.which("nginx") is None:
        print(
            "bench/edge.py needs nginx and wrk: run scripts/bootstrap --with-test", file=sys.stderr
        )
        return 2
    run = BenchRun("edge")
    tmp, cleanup = run.tmp, run.cleanup
    rows: list[list[str]] = []
    try:
        with signals_raise():
            if "apply" in stages:
                log("the nginx apply of one change, through NginxEngine")
                rows += bench_apply(tmp, args)
            if any(s not in STACKLESS for s in stages):
                rows += stack_stages(tmp, cleanup, args, stages)
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    except BaseException:
        for path in sorted(tmp.glob("*.log")):  # what the control plane and the nodes said last
            lines = path.read_text(errors="replace").splitlines()[-40:]
            log(f"the end of {path.name}:\n" + "\n".join(lines))
        raise
    finally:
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for path in tmp.glob("*.log"):
                shutil.copy(path, keep / path.name)
        run.close()
    print(table(rows, args.markdown))
    print(f"\n- {'short mode (--quick): small sizes, one round; ' if args.quick else ''}"
          f"time for the whole bench: {time.monotonic() - run.started:.0f} s")  # fmt: skip
    return run.status()


if __name__ == "__main__":
    raise SystemExit(main())
