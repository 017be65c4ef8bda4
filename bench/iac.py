"""Infrastructure as code, measured: plan, apply and export of 1,000 domains and 100 load
balancers, from the file to every edge node serving it.

Run from the repository root::

    .venv/bin/python bench/iac.py [--domains 1000] [--records 5] [--lbs 100] [--backends 3]
        [--nodes 3] [--samples 3] [--rounds 3] [--markdown] [--quick]

What runs: ``edgeplane up --no-edge`` (the control plane, SQLite) and ``--nodes`` edge nodes
(``edgeplane edge``: nginx and PowerDNS each) in eu-central, us-east and ap-northeast on
127.0.0.2-4, started as the integration tests start them (``tests/integration/processes.py``,
``edge_agents.py``). Everything happens in the project ``default``, empty at the start.

The file (``version: 1``): ``--domains`` domains ``iac-00001.test`` ... (reserved names:
verified at once, so the edge serves them and gives each its internal certificate), each with
``--records`` RRsets (the apex and ``www`` proxied, ``api`` A, an MX and a TXT at the apex;
more are ``hostN`` A records), and ``--lbs`` load balancers ``lb-000`` ... with ``--backends``
backends each on 127.0.1.x ports (nothing listens there: the figures need no origin, and
with more than one load balancer and no CDN config the domains have no origin either, so the
edge answers them with 502 "no origin is configured", and an unknown host with 404).

"Every node serves it" is checked on the data plane, each node polled in its own thread every
~5 ms: a domain is served when the node's nginx answers ``Host: <domain>`` with anything but
its "unknown host" 404 *and* the node's DNS answers ``api.<domain>`` A with the file's value
(dnspython, UDP); a changed record when the node's DNS answers its new value; a deleted domain
when nginx says "unknown host" and the DNS refuses the name (REFUSED or NXDOMAIN: not the
SERVFAIL of a busy server). Also polled, on the control plane: the time until every node
reports the apply's revision as applied (``GET /api/v1/edge/nodes``). The last domain is the
last in name order, not the last zone a node loads: the nodes' "zones loaded" line (below) is
the moment every zone is served, and can come a little later. Where the time goes:
a timeline of each apply from the control plane's log (the revision's snapshot built) and the
nodes' (received, objects fetched, nginx applied, zones loaded, with their durations), the
slowest node each time.

Timed, in this order (``--samples`` times for what changes nothing, median):

1. **read the file**: ``edgeplane.iac.template.parse`` of the YAML text, the CLI's first step;
2. **plan, everything to create**: ``POST /api/v1/iac/plan`` of the whole file on the empty
   project (the answer must count one create per object); then once ``edgeplane plan -f FILE
   --json`` (the CLI in its own process: start, YAML, plan over REST, printing);
3. **apply -> every node serves it**: ``POST /api/v1/iac/apply`` until every node serves the
   last domain (one revision: every domain is served at once); the call's answer (the commit)
   and the nodes' report (applied revision) are shown too;
4. **plan again**: the same file, which must now report 0 changes (printed);
5. ``--rounds`` rounds of **one change among the N domains**: the file with one domain's
   ``api`` record changed, planned (exactly one update) and applied until every node's DNS
   answers the new value;
6. **export** (``GET /api/v1/iac/export``) of the whole project; its plan (a round trip) must
   report 0 changes;
7. **apply --prune of a file with both sections empty**: every object deleted, until no node
   serves the last domain; this also empties the project for the reference.

The reference, in the same process on the same stack, is what a user without the file does:
the same calls the apply makes through the services, one REST call each, as the API and the
dashboard make them. It is the fair comparison because it produces the same end state on the
same control plane and nodes, and a user can do nothing cheaper without the file:

- for 3 (creation), run last, once 7 has emptied the project and the nodes: ``POST
  /loadbalancer`` per load balancer, then per domain ``POST /domains`` and ``PUT
  /domains/{d}/records`` (the apply's own steps), until every node serves the last domain
  (the nodes apply revisions as the calls go); the file's plan must then report 0 changes
  (the same end state);
- for 5 (one change): ``PATCH /domains/{d}/records`` of another domain's ``api`` record (the
  file is updated to agree), until every node's DNS answers the new value;
- for 6 (export): the same state read one call at a time: ``GET /domains`` pages of 1,000,
  ``GET /domains/{d}/records`` per domain and ``GET /loadbalancer`` pages;
- for 1 (reading the file): the same YAML text read by PyYAML's C loader (``CSafeLoader``,
  libyaml): the same format and library, the parser the CLI could use.

The plans have no reference but the issue's aims (plan < 2 s, apply until every node serves
< 10 s), printed beside them. Progress goes to stderr, results to stdout. Everything started is
stopped and the temporary directory removed on exit, error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
ROOT = _HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.append(str(_HERE))  # after site-packages: bench/dns.py must not hide dnspython

import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402
import httpx  # noqa: E402
import yaml  # noqa: E402
from common import BenchRun, Cleanup, log, signals_raise, table  # noqa: E402
from edge_agents import Api, EdgeAgent, new_agent, wait_for  # noqa: E402
from processes import ControlPlane, clean_env, free_port, free_udp_port, start_up  # noqa: E402

INV = "/api/v1/infrastructure"
IAC = "/api/v1/iac"
NODES = [
    ("eu", "eu-central", "127.0.0.2"),
    ("us", "us-east", "127.0.0.3"),
    ("ap", "ap-northeast", "127.0.0.4"),
]
POLL_S = 0.005
WAIT_S = 180.0
PLAN_AIM_S = 2.0  # issue 15
APPLY_AIM_S = 10.0  # issue 15: apply until every node serves
UNKNOWN_HOST = "unknown host"

Doc = dict[str, Any]


# The file ----------------------------------------------------------------------------------


def domain_name(i: int) -> str:
    return f"iac-{i:05d}.test"


def api_value(i: int) -> str:
    return f"192.0.2.{i % 250 + 1}"


def records_of(name: str, i: int, count: int) -> list[Doc]:
    base: list[Doc] = [
        {"name": "@", "type": "A", "proxied": True},
        {"name": "www", "type": "A", "proxied": True},
        {"name": "api", "type": "A", "ttl": 60, "values": [api_value(i)]},
        {"name": "@", "type": "MX", "values": [f"10 mail.{name}."]},
        {"name": "@", "type": "TXT", "values": ['"v=spf1 -all"']},
    ]
    more = [
        {"name": f"host{k}", "type": "A", "values": [f"198.18.{k % 250}.{i % 250 + 1}"]}
        for k in range(max(0, count - len(base)))
    ]
    return (base + more)[: max(count, 3)]  # api is always there: it is what the nodes answer


def make_document(domains: int, records: int, lbs: int, backends: int) -> Doc:
    return {
        "version": 1,
        "load_balancers": [
            {
                "id": f"lb-{j:03d}",
                "algorithm": "round_robin",
                "backends": [
                    {"address": f"127.0.1.{j % 250 + 1}:{8000 + k}", "weight": 100}
                    for k in range(backends)
                ],
                "health_check": {"path": "/healthz", "interval_s": 10},
            }
            for j in range(lbs)
        ],
        "domains": [
            {"name": domain_name(i), "records": records_of(domain_name(i), i, records)}
            for i in range(1, domains + 1)
        ],
    }


def set_api_record(doc: Doc, name: str, value: str) -> None:
    for item in doc["domains"]:
        if item["name"] == name:
            for r in item["records"]:
                if r["name"] == "api" and r["type"] == "A":
                    r["values"] = [value]
                    return
    raise KeyError(name)


# Watching the nodes ------------------------------------------------------------------------


def dns_a(agent: EdgeAgent, name: str) -> tuple[str, list[str]] | None:
    """The node's DNS answer for ``name`` A: its rcode and values (None: no answer)."""
    query = dns.message.make_query(name, "A")
    try:
        msg = dns.query.udp(query, agent.bind, port=agent.dns_port, timeout=0.5)
    except (dns.exception.DNSException, OSError):
        return None
    values = sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)
    return dns.rcode.to_text(msg.rcode()), values


def knows_host(http: httpx.Client, agent: EdgeAgent, host: str) -> bool | None:
    """Whether the node's nginx serves ``host`` (None: no answer)."""
    try:
        r = http.get(f"{agent.url}/", headers={"Host": host})
    except httpx.HTTPError:
        return None
    return not (r.status_code == 404 and r.text.strip() == UNKNOWN_HOST)


Check = Callable[[httpx.Client, EdgeAgent], bool]


def serves(domain: str, value: str) -> Check:
    """nginx knows the host and the DNS answers ``api.<domain>`` with ``value``."""
    return lambda http, a: (
        bool(knows_host(http, a, domain)) and dns_a(a, f"api.{domain}") == ("NOERROR", [value])
    )


def answers(domain: str, value: str) -> Check:
    return lambda _http, a: dns_a(a, f"api.{domain}") == ("NOERROR", [value])


def forgot(domain: str) -> Check:
    """nginx says unknown host and the DNS refuses the name (no zone: not a busy server's
    SERVFAIL)."""
    return lambda http, a: (
        knows_host(http, a, domain) is False
        and dns_a(a, f"api.{domain}") in (("REFUSED", []), ("NXDOMAIN", []))
    )


class Watch(threading.Thread):
    """Polls one node until ``check`` holds (for ``WAIT_S`` at most); ``at``: seconds since
    ``started``."""

    def __init__(self, agent: EdgeAgent, check: Check, started: float) -> None:
        super().__init__(daemon=True)
        self.agent, self.check, self.started = agent, check, started
        self.deadline = time.monotonic() + WAIT_S
        self.at: float | None = None

    def run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while time.monotonic() < self.deadline:
                if self.check(http, self.agent):
                    self.at = time.monotonic() - self.started
                    return
                time.sleep(POLL_S)


class Watches:
    def __init__(self, nodes: list[EdgeAgent], check: Check, started: float) -> None:
        self.watches = [Watch(a, check, started) for a in nodes]
        for w in self.watches:
            w.start()

    def done(self, what: str) -> float:
        for w in self.watches:
            w.join()
        late = [w.agent.name for w in self.watches if w.at is None]
        if late:
            raise RuntimeError(f"{what}: not seen on {', '.join(late)} within {WAIT_S:.0f} s")
        return max(w.at or 0.0 for w in self.watches)


def nodes_applied(api: Api, revision: int, started: float) -> float:
    """Seconds since ``started`` until every node reports ``revision`` applied."""

    def applied() -> bool:
        nodes = api.nodes()
        return bool(nodes) and all((n["applied_revision"] or 0) >= revision for n in nodes)

    wait_for(applied, WAIT_S, f"every node reports revision {revision}", every=0.02)
    return time.monotonic() - started


# The stack and the API ---------------------------------------------------------------------


class Stack:
    def __init__(self, tmp: Path, cleanup: Cleanup, nodes: int) -> None:
        self.tmp, self.cleanup, self.count = tmp, cleanup, nodes
        self.cp: ControlPlane | None = None
        self.nodes: list[EdgeAgent] = []

    def start(self) -> Api:
        self.cp = start_up(self.tmp / "cp", env=clean_env())
        self.cleanup.add(lambda: self.cp.stop() if self.cp else None)
        api = Api(self.cp)
        self.cleanup.add(api.close)
        http_port = free_port()
        for key, region, address in NODES[: self.count]:
            agent = new_agent(self.cp, api, self.tmp, f"edge-{key}")
            agent.http_port, agent.https_port = http_port, 0
            agent.region, agent.bind, agent.dns_port = region, address, free_udp_port(address)
            self.cleanup.add(agent.stop)
            self.nodes.append(agent.start())
        wait_for(
            lambda: len([n for n in api.nodes() if n["live"]]) == self.count or None,
            60,
            "live edge nodes",
        )
        return api


def call(api: Api, method: str, path: str, **kw: Any) -> Any:
    r = api.http.request(method, path, timeout=600, **kw)
    if r.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:3000]}")
    return r.json() if r.content else None


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def plan(api: Api, doc: Doc, prune: bool = False) -> tuple[float, Doc]:
    return timed(lambda: call(api, "POST", f"{IAC}/plan", json={"document": doc, "prune": prune}))


def changed(result: Doc) -> int:
    return sum(result["summary"].values())


def show(result: Doc, limit: int = 5) -> str:
    parts = []
    for c in result["changes"][:limit]:
        fields = ", ".join(f["path"] for f in c["fields"][:4])
        parts.append(f"{c['action']} {c['section']}[{c['key']}] ({fields})")
    more = len(result["changes"]) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def in_sync(api: Api) -> None:
    """Wait until every node has applied the newest revision (the stages do not overlap)."""
    wait_for(
        lambda: all(n["in_sync"] and n["live"] for n in api.nodes()),
        WAIT_S,
        "every node in sync",
        every=0.05,
    )


@dataclass
class Applied:
    """One timed apply: seconds from the call to its answer, to every node serving what it
    changed (the data plane), to every node reporting its revision (the API)."""

    called: float  # wall clock
    answered: float
    served: float
    reported: float
    result: Doc

    @property
    def revision(self) -> int:
        return int(self.result["revision"])


def apply_until(api: Api, nodes: list[EdgeAgent], body: Doc, check: Check, what: str) -> Applied:
    t0, called = time.monotonic(), time.time()
    watches = Watches(nodes, check, t0)
    result = call(api, "POST", f"{IAC}/apply", json=body)
    answered = time.monotonic() - t0
    reported = nodes_applied(api, result["revision"], t0)
    return Applied(called, answered, watches.done(what), reported, result)


def per_call_create(api: Api, doc: Doc) -> int:
    """The reference: the file's objects created one REST call at a time; the calls made."""
    calls = 0
    for lb in doc["load_balancers"]:
        call(api, "POST", f"{INV}/loadbalancer", json=lb)
        calls += 1
    for item in doc["domains"]:
        call(api, "POST", f"{INV}/domains", json={"domain": item["name"]})
        call(api, "PUT", f"{INV}/domains/{item['name']}/records", json={"records": item["records"]})
        calls += 2
    return calls


def per_call_read(api: Api) -> tuple[int, int, int]:
    """The reference of export: the same state read one call at a time; (calls, domains, LBs)."""
    calls, names, cursor = 0, [], None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = call(api, "GET", f"{INV}/domains", params=params)
        calls += 1
        names += [d["domain"] for d in page["domains"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    for name in names:
        call(api, "GET", f"{INV}/domains/{name}/records")
        calls += 1
    lbs, cursor = 0, None
    while True:
        params = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = call(api, "GET", f"{INV}/loadbalancer", params=params)
        calls += 1
        lbs += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return calls, len(names), lbs


def cli_plan(cp: ControlPlane, path: Path) -> tuple[float, int]:
    """``edgeplane plan -f FILE --json`` in its own process: (seconds, creates it printed)."""
    t0 = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeplane",
            "--url",
            cp.url,
            "--token",
            cp.token,
            "plan",
            "-f",
            str(path),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=600,
        check=False,
    )
    took = time.monotonic() - t0
    if out.returncode != 0:
        raise RuntimeError(f"edgeplane plan exited {out.returncode}: {out.stderr[-3000:]}")
    return took, int(json.loads(out.stdout)["summary"]["create"])


# What the logs say -------------------------------------------------------------------------

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
PHASES = [
    ("the apply call answered (committed)", "answered"),
    ("the control plane built the revision's snapshot", "built"),
    ("every node received it (its fetch started)", "received"),
    ("every node has fetched its objects", "fetched"),
    ("every node's nginx serves it (applied: render, check, reload)", "nginx"),
    ("every node's DNS serves it (zones loaded)", "dns"),
    ("every node serves it (polled by the bench)", "served"),
    ("every node reports it applied (GET /api/v1/edge/nodes)", "reported"),
]


def stamped(text: str) -> list[tuple[float, str]]:
    """A log's lines with their time (``%(asctime)s``: local time, milliseconds)."""
    out = []
    for line in text.splitlines():
        m = STAMP.match(line)
        if m:
            at = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"))
            _logger, _, message = line[m.end() :].partition(" ")
            out.append((at + int(m.group(2)) / 1000, message))
    return out


def node_phases(lines: list[tuple[float, str]], revision: int, since: float) -> dict[str, float]:
    """When one node received ``revision`` (or the first newer one it took instead: another
    commit can follow the apply's before the node asks), had fetched its objects, applied it
    to nginx, and served its zones by DNS (the first ``DNS:`` line after it was received, or
    after ``since`` when the log does not say: those lines name no revision), wall clock; and
    the durations those lines give. A phase not in the log is left out (nginx has nothing to
    do when only zones changed; deletes fetch nothing)."""
    named = r"(?:revision|fetched \d+ objects for revision|applied revision) (\d+)"
    seen = [int(m.group(1)) for _at, msg in lines if (m := re.match(named, msg))]
    taken = revision if revision in seen else min((r for r in seen if r > revision), default=0)
    out: dict[str, float] = {}
    for at, msg in lines:
        if re.match(rf"revision {taken} received as changes", msg):
            out.setdefault("received", at)
        elif m := re.match(rf"fetched (\d+) objects for revision {taken} in (\d+) ms", msg):
            out.setdefault("fetched", at)
            out.setdefault("received", at - int(m.group(2)) / 1000)
            out["objects"], out["fetch_ms"] = int(m.group(1)), int(m.group(2))
        elif m := re.match(rf"applied revision {taken} \(\S+\) in (\d+) ms", msg):
            out.setdefault("nginx", at)
            out.setdefault("nginx_ms", int(m.group(1)))
    after = out.get("received", since)
    for at, msg in lines:
        m = re.match(r"DNS: (\d+) zones served \((\d+) ms\)", msg)
        if m and at >= after:
            out["dns"], out["zones"], out["dns_ms"] = at, int(m.group(1)), int(m.group(2))
            break
    return out


WALL = ("received", "fetched", "nginx", "dns")
SPANS = ("objects", "fetch_ms", "nginx_ms", "dns_ms", "zones")


def timeline(done: Applied, cp_log: str, node_logs: list[str]) -> dict[str, float]:
    """Seconds from the apply call to each phase's end on every node (the slowest node), and
    the largest of the nodes' own durations; what a log lacks is left out."""
    out = {"answered": done.answered, "served": done.served, "reported": done.reported}
    since = done.called
    for at, msg in stamped(cp_log):
        m = re.match(r"snapshot of revision (\d+) built in (\d+) ms", msg)
        if m and int(m.group(1)) >= done.revision:
            out["built"], out["build_ms"], since = at - done.called, int(m.group(2)), at
            break
    nodes = [node_phases(stamped(text), done.revision, since) for text in node_logs]
    for key in (*WALL, *SPANS):
        if nodes and all(key in node for node in nodes):
            out[key] = max(node[key] for node in nodes) - (done.called if key in WALL else 0)
    return out


# Figures -----------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> str:
    """Milliseconds: the median (min-max) of several, or the one value."""
    if not values:
        return "-"
    digits = 1 if med(values) < 0.1 else 0
    one = [f"{x * 1000:,.{digits}f}" for x in (med(values), min(values), max(values))]
    return one[0] if len(values) == 1 else f"{one[0]} ({one[1]}-{one[2]})"


def ratio(a: list[float], b: list[float] | float) -> str:
    ref = med(b) if isinstance(b, list) else b
    if not a or not ref or ref != ref:
        return "-"
    return f"{med(a) / ref:.2f}x"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--records", type=int, default=5, help="RRsets per domain (at least 3)")
    ap.add_argument("--lbs", type=int, default=100)
    ap.add_argument("--backends", type=int, default=3, help="backends per load balancer")
    ap.add_argument("--nodes", type=int, default=3, choices=(1, 2, 3))
    ap.add_argument("--samples", type=int, default=3, help="plans and exports timed, each")
    ap.add_argument("--rounds", type=int, default=3, help="single changes timed")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="the short mode: 50 domains, 5 load balancers, one node, one sample "
                    "and one round; the tests run it")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.domains, args.lbs, args.nodes, args.samples, args.rounds = 50, 5, 1, 1, 1
    missing = [b for b in ("nginx", "pdns_server") if shutil.which(b) is None]
    if missing:
        print(f"bench/iac.py needs {', '.join(missing)}", file=sys.stderr)
        return 2
    run = BenchRun("iac")
    tmp, cleanup = run.tmp, run.cleanup
    n, m = args.domains, args.lbs
    objects = n + m
    last = domain_name(n)
    t: dict[str, list[float]] = {}
    facts: dict[str, Any] = {}
    lines: dict[str, dict[str, float]] = {}

    def add(key: str, value: float) -> None:
        t.setdefault(key, []).append(value)

    try:
        with signals_raise():
            doc = make_document(n, args.records, m, args.backends)
            yaml_text = yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False)
            path = tmp / "project.yaml"
            path.write_text(yaml_text)
            facts["yaml_kb"] = len(yaml_text) / 1024
            from edgeplane.iac import template

            for _ in range(max(args.samples, 3)):
                add("parse", timed(lambda: template.parse(yaml_text, str(path)))[0])
                add("libyaml", timed(lambda: yaml.load(yaml_text, Loader=yaml.CSafeLoader))[0])
            assert template.parse(yaml_text) == doc == yaml.load(yaml_text, yaml.CSafeLoader)

            stack = Stack(tmp, cleanup, args.nodes)
            log(f"starting the control plane and {args.nodes} edge node(s)")
            api = stack.start()
            nodes = stack.nodes

            # 2. plan, everything to create
            for i in range(args.samples):
                took, result = plan(api, doc)
                add("plan_all", took)
                if result["summary"]["create"] != objects or changed(result) != objects:
                    raise RuntimeError(f"plan on the empty project: {result['summary']}")
                log(f"plan {i + 1}: {took * 1000:.0f} ms, {result['summary']}")
            facts["plan_kb"] = len(json.dumps(result)) / 1024
            took, creates = cli_plan(stack.cp, path)  # type: ignore[arg-type]
            add("cli_plan", took)
            log(f"edgeplane plan -f FILE: {took * 1000:.0f} ms, {creates} creates")

            # 3. apply -> every node serves
            big = apply_until(api, nodes, {"document": doc}, serves(last, api_value(n)), "apply")
            add("apply_answer", big.answered)
            add("apply", big.served)
            add("apply_reported", big.reported)
            facts["apply_summary"] = big.result["summary"]
            in_sync(api)
            log(
                f"apply: revision {big.revision}, answered {big.answered * 1000:.0f} ms, every "
                f"node serves {last} at {big.served * 1000:.0f} ms, reported at "
                f"{big.reported * 1000:.0f} ms"
            )

            # 4. plan again: nothing to change
            for _ in range(args.samples):
                took, result = plan(api, doc)
                add("plan_same", took)
                facts.setdefault("same_changes", []).append(changed(result))
                if changed(result):
                    log(f"plan again reports changes: {show(result)}")
            log(f"plan again: {med(t['plan_same']) * 1000:.0f} ms, {facts['same_changes']}")

            # 5. one change among the N domains, and the reference's PATCH
            ones: list[Applied] = []
            for r in range(args.rounds):
                name = domain_name(n // 2 + r)
                value = f"198.51.100.{r + 1}"
                set_api_record(doc, name, value)
                took, result = plan(api, doc)
                add("plan_one", took)
                facts.setdefault("one_changes", []).append(changed(result))
                log(f"plan of one change: {show(result)}")
                in_sync(api)
                one = apply_until(
                    api, nodes, {"document": doc}, answers(name, value), "apply of one change"
                )
                ones.append(one)
                add("one_answer", one.answered)
                add("one", one.served)
                add("one_reported", one.reported)
                in_sync(api)
                other = domain_name(n // 3 + r)
                value = f"203.0.113.{r + 1}"
                t0 = time.monotonic()
                watches = Watches(nodes, answers(other, value), t0)
                patch = {"set": [{"name": "api", "type": "A", "ttl": 60, "values": [value]}]}
                call(api, "PATCH", f"{INV}/domains/{other}/records", json=patch)
                add("patch_answer", time.monotonic() - t0)
                add("patch", watches.done("PATCH of one record"))
                set_api_record(doc, other, value)
                in_sync(api)
                log(
                    f"round {r + 1}: plan {t['plan_one'][-1] * 1000:.0f} ms, apply -> served "
                    f"{one.served * 1000:.0f} ms; PATCH -> served {t['patch'][-1] * 1000:.0f} ms"
                )

            # 6. export, its round trip, and the per-call read
            for _ in range(args.samples):
                took, exported = timed(lambda: call(api, "GET", f"{IAC}/export"))
                add("export", took)
                took, (calls, got_domains, got_lbs) = timed(lambda: per_call_read(api))
                add("read", took)
            facts["export_kb"] = len(json.dumps(exported)) / 1024
            facts["read_calls"] = calls
            facts["exported"] = (
                len(exported.get("domains", [])),
                len(exported.get("load_balancers", [])),
            )
            if facts["exported"] != (n, m) or (got_domains, got_lbs) != (n, m):
                raise RuntimeError(
                    f"export holds {facts['exported']}, the API {got_domains, got_lbs}; "
                    f"expected {n, m}"
                )
            took, result = plan(api, exported)
            facts["roundtrip_changes"] = changed(result)
            if changed(result):
                log(f"plan of the export reports changes: {show(result)}")
            log(
                f"export {med(t['export']) * 1000:.0f} ms; "
                f"read by calls {med(t['read']) * 1000:.0f} ms"
            )

            # 7. apply --prune of empty sections: everything deleted
            empty = {"version": 1, "load_balancers": [], "domains": []}
            prune = apply_until(
                api, nodes, {"document": empty, "prune": True}, forgot(last), "prune"
            )
            add("prune_answer", prune.answered)
            add("prune", prune.served)
            facts["prune_summary"] = prune.result["summary"]
            in_sync(api)
            log(
                f"prune: answered {prune.answered * 1000:.0f} ms, "
                f"gone from every node {prune.served * 1000:.0f} ms"
            )

            # the reference of 3: the same objects one REST call at a time
            fresh = make_document(n, args.records, m, args.backends)
            t0 = time.monotonic()
            facts["create_calls"] = per_call_create(api, fresh)
            add("calls_answer", time.monotonic() - t0)
            # watched from the last call on: its domain is served after it, never before
            add("calls", Watches(nodes, serves(last, api_value(n)), t0).done("created by calls"))
            in_sync(api)
            log(
                f"reference: {facts['create_calls']} calls in {t['calls_answer'][0]:.1f} s, "
                f"every node serves {last} at {t['calls'][0]:.1f} s"
            )
            took, result = plan(api, fresh)
            facts["calls_vs_file"] = changed(result)
            if changed(result):
                log(f"the file's plan on the objects made by calls: {show(result)}")

            # where the time went, from the control plane's and the nodes' logs
            cp_log = stack.cp.output() if stack.cp else ""
            node_logs = [a.output() for a in nodes]
            lines = {
                "big": timeline(big, cp_log, node_logs),
                "prune": timeline(prune, cp_log, node_logs),
            }
            some = [timeline(o, cp_log, node_logs) for o in ones]
            keys = {k for x in some for k in x}
            lines["one"] = {k: med([x[k] for x in some if k in x]) for k in keys}
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()

    s = args.samples
    rows = [
        [f"read the file: YAML, {facts['yaml_kb']:,.0f} KiB, template.parse (vs libyaml's "
         "CSafeLoader), ms", spread(t["parse"]), spread(t["libyaml"]),
         ratio(t["parse"], t["libyaml"])],
        [f"plan, {objects:,} objects to create (empty project), ms, median of {s}",
         spread(t["plan_all"]), f"< {PLAN_AIM_S * 1000:,.0f}", ratio(t["plan_all"], PLAN_AIM_S)],
        ["  edgeplane plan -f FILE --json (CLI process: start, YAML, plan, print), ms",
         spread(t["cli_plan"]), f"< {PLAN_AIM_S * 1000:,.0f}", ratio(t["cli_plan"], PLAN_AIM_S)],
        ["apply -> every node serves the last domain (vs the same objects by "
         f"{facts['create_calls']:,} API calls), ms", spread(t["apply"]), spread(t["calls"]),
         ratio(t["apply"], t["calls"])],
        ["  the same against the aim of issue 15, ms", spread(t["apply"]),
         f"< {APPLY_AIM_S * 1000:,.0f}", ratio(t["apply"], APPLY_AIM_S)],
        ["  the apply call answered (committed) / the last API call answered, ms",
         spread(t["apply_answer"]), spread(t["calls_answer"]),
         ratio(t["apply_answer"], t["calls_answer"])],
        ["  every node reports the revision applied (GET /edge/nodes), ms",
         spread(t["apply_reported"]), "", ""],
        [f"plan again, no change: ms, median of {s}", spread(t["plan_same"]),
         f"< {PLAN_AIM_S * 1000:,.0f}", ratio(t["plan_same"], PLAN_AIM_S)],
        ["  changes it reported (must be 0)",
         " / ".join(str(c) for c in facts["same_changes"]), "0", ""],
        [f"plan of one record changed among {n:,} domains, ms, {args.rounds} round(s)",
         spread(t["plan_one"]), f"< {PLAN_AIM_S * 1000:,.0f}", ratio(t["plan_one"], PLAN_AIM_S)],
        ["  changes it reported (must be 1)",
         " / ".join(str(c) for c in facts["one_changes"]), "1", ""],
        ["apply of that change -> every node's DNS answers it (vs PATCH of one record), ms",
         spread(t["one"]), spread(t["patch"]), ratio(t["one"], t["patch"])],
        ["  the apply call answered / the PATCH answered, ms", spread(t["one_answer"]),
         spread(t["patch_answer"]), ratio(t["one_answer"], t["patch_answer"])],
        ["  every node reports the revision applied, ms", spread(t["one_reported"]), "", ""],
        [f"export of the whole project, {facts['export_kb']:,.0f} KiB JSON (vs "
         f"{facts['read_calls']:,} GET calls), ms, median of {s}", spread(t["export"]),
         spread(t["read"]), ratio(t["export"], t["read"])],
        ["  plan of the export (round trip): changes reported (must be 0)",
         str(facts["roundtrip_changes"]), "0", ""],
        [f"apply --prune of empty sections: {objects:,} deletes -> no node serves, ms",
         spread(t["prune"]), "", ""],
        ["  the apply call answered, ms", spread(t["prune_answer"]), "", ""],
    ]  # fmt: skip
    titles = {
        "big": f"timeline of the apply of the file ({objects:,} creates)",
        "one": "timeline of the apply of one change (median of the rounds)",
        "prune": f"timeline of the apply --prune ({objects:,} deletes)",
    }
    for key, title in titles.items():
        line = lines.get(key, {})
        rows.append([f"{title}, at, ms", "", "", ""])
        rows += [
            [f"  {label}", f"{line[k] * 1000:,.0f}" if k in line else "-", "", ""]
            for label, k in PHASES
        ]
        spans = [
            ("the control plane's build of the snapshot, ms", line.get("build_ms")),
            (f"a node's fetch of {line.get('objects', 0):,.0f} objects, ms (the slowest)",
             line.get("fetch_ms")),
            ("a node's nginx apply (render, files, check, reload), ms (the slowest)",
             line.get("nginx_ms")),
            (f"a node's DNS load of {line.get('zones', 0):,.0f} zones, ms (the slowest)",
             line.get("dns_ms")),
        ]  # fmt: skip
        rows += [[f"  {label}", f"{ms:,.0f}", "", ""] for label, ms in spans if ms is not None]
    print(
        f"\n{n:,} domains x {args.records} RRsets and {m:,} load balancers x {args.backends} "
        f"backends, {args.nodes} edge node(s), SQLite; reference: the same work by REST calls, "
        "one object at a time\n"
    )
    print(table(rows, args.markdown))
    print(
        f"\n- apply summary: {facts['apply_summary']}; prune summary: {facts['prune_summary']}; "
        f"the file's plan on the objects made by calls: {facts['calls_vs_file']} changes; "
        f"plan answer (everything to create): {facts['plan_kb']:,.0f} KiB"
    )
    print(
        f"- {'short mode (--quick); ' if args.quick else ''}cores: {os.cpu_count()}; load "
        f"average {os.getloadavg()[0]:.1f}; time for the whole bench: "
        f"{time.monotonic() - run.started:.0f} s"
    )
    return run.status()


if __name__ == "__main__":
    raise SystemExit(main())
