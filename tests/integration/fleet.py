"""A fleet of real edge nodes on this one machine: one control plane and N edge nodes (each
``edgeplane edge``: the agent, its nginx, its PowerDNS behind dnsdist), every
node in a network namespace of its own (``netns.hosts``) with an address of its own, located
in one of five regions, all registered with the one control plane
(``tests/integration/test_edge_fleet.py``).

``with edge_fleet(tmp, per_region=2) as fleet:`` makes the namespaces, starts the control plane
on the first namespace's gateway (a root-namespace address every node reaches), creates an
edge token per node, starts every agent at once (each starts its engines), and waits until
every node is live, in sync and answering DNS. On the way out, whatever happens,
every agent is stopped (its engines with it), then the control plane, then the namespaces are
removed with anything still running in them.

Inside its namespace each node listens on fixed ports (every port is free there):
``HTTP_PORT`` and ``DNS_PORT`` at its host's address; no HTTPS, no metrics port. Clients
(the tests) reach a node at ``node.address``; where a client is, for GeoDNS, is said with
EDNS Client Subnet (``CLIENTS``: a network per region whose nearest region among ``REGIONS``
is that region, by the packaged GeoLite2 data the nodes rank with).

``FleetNode.freeze`` stops a node dead (SIGSTOP to every process of its namespace: the agent,
nginx, PowerDNS, dnsdist) and ``thaw`` lets it run again; ``FleetNode.footprint`` is the PSS
of each of its programs. Measured here: about 140 MiB a node (agent 53, PowerDNS 47, dnsdist
33, nginx 6-7 with the agent's two workers; a worker is about 2 MiB, and the agent has no option
to run one), 1.4 GiB for ten; started at once, ten nodes are live and in sync in 14-25 s on two
cores (up to about 50 s when the machine is busy).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import httpx
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from netns import Host, hosts
from processes import ControlPlane, clean_env, start_up

from edgeplane.node.nginx.memory import cmdline, pss_kib

# Five shipped locations, one per area (``edgeplane region list``).
REGIONS: tuple[str, ...] = ("us-east", "eu-central", "ap-southeast", "sa-east", "af-south")
# A client network (/24, for EDNS Client Subnet) per region, whose nearest region of REGIONS is
# that region: Kansas (GeoLite2's US centre), London, Singapore, Rio de Janeiro, Johannesburg.
CLIENTS: dict[str, str] = {
    "us-east": "8.8.8.0",
    "eu-central": "81.2.69.0",
    "ap-southeast": "203.116.0.0",
    "sa-east": "200.160.2.0",
    "af-south": "41.0.0.0",
}
HTTP_PORT, DNS_PORT = 8080, 8053
START_TIMEOUT_S = 90.0


@dataclass
class FleetNode:
    agent: EdgeAgent
    host: Host
    http: httpx.Client  # the fleet's (one client for all: a new one costs ~30 ms)

    @property
    def name(self) -> str:
        return self.agent.name

    @property
    def region(self) -> str:
        return self.agent.region

    @property
    def address(self) -> str:
        return self.host.address

    def a(self, name: str, ecs: str | None = None, timeout: float = 2.0) -> list[str] | None:
        """The addresses this node's DNS server answers for ``name`` (A), sorted; ``ecs``:
        the client's network (a /24). None when it does not answer within ``timeout``."""
        options = [dns.edns.ECSOption(ecs, 24)] if ecs else []
        q = dns.message.make_query(name, "A", use_edns=0, options=options, payload=4096)
        try:
            msg = dns.query.udp(q, self.address, port=DNS_PORT, timeout=timeout)
        except (dns.exception.Timeout, OSError):
            return None
        return sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)

    def get(self, host: str, path: str = "/", timeout: float = 5.0) -> httpx.Response:
        """``GET path`` for the site ``host`` through this node's nginx."""
        return self.http.get(
            f"http://{self.address}:{HTTP_PORT}{path}", headers={"Host": host}, timeout=timeout
        )

    def geo_serves(self, *names: str) -> bool:
        """The node's PowerDNS answers ``names`` from its geoip backend, which knows which
        nodes are live: they are in the zones file it read last. Until then (a new zone
        waits for ``ADD_QUIET_S`` without an apply, ``edgeplane.node.powerdns.geo``) their
        LUA records answer, from every addressed node, live or not."""
        folder = self.agent.home / "edge" / self.name / "pdns"
        try:
            text = (folder / "geo.yaml").read_text()
            status = json.loads((folder / "geo-status.json").read_text())
        except (OSError, ValueError):
            return False
        if status.get("zones_sha") != hashlib.sha256(text.encode()).hexdigest():
            return False  # written, not read yet
        return all(f"\n    '{n.rstrip('.')}.': *" in text for n in names)

    def pids(self) -> list[int]:
        """Every process of the node (what runs in its namespace)."""
        return self.host.pids()

    def freeze(self) -> None:
        """SIGSTOP the agent first (no heartbeat after this), then its engines."""
        self._signal(signal.SIGSTOP, agent_first=True)

    def thaw(self) -> None:
        """SIGCONT the engines first, then the agent (which finds them running)."""
        self._signal(signal.SIGCONT, agent_first=False)

    def _signal(self, sig: int, *, agent_first: bool) -> None:
        agent = self.agent.process.pid if self.agent.process else None
        others = [p for p in self.pids() if p != agent]
        order = [agent, *others] if agent_first else [*others, agent]
        for pid in order:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def footprint(self) -> dict[str, float]:
        """PSS (MiB) of the node's processes by program: agent, nginx (master and workers),
        pdns_server, dnsdist, other."""
        out: dict[str, float] = {}
        for pid in self.pids():
            out[_program(pid)] = out.get(_program(pid), 0.0) + pss_kib(pid) / 1024
        return out


def _program(pid: int) -> str:
    cmd = cmdline(pid)
    for name in ("nginx", "pdns_server", "dnsdist"):
        if name in cmd.split(" ", 1)[0] or cmd.startswith(f"{name}:"):
            return name
    return "agent" if "edgeplane" in cmd else "other"


@dataclass
class Fleet:
    cp: ControlPlane
    api: Api
    nodes: list[FleetNode]
    gateway: str  # a root-namespace address every node reaches (the control plane's)
    started_s: float  # from the first agent started to every node live and applied

    def in_region(self, region: str) -> list[FleetNode]:
        return [n for n in self.nodes if n.region == region]

    def docs(self) -> dict[str, dict[str, Any]]:
        """``/api/v1/edge/nodes`` by node name."""
        return {d["name"]: d for d in self.api.nodes()}

    def wait_applied(self, revision: int, timeout: float) -> dict[str, dict[str, Any]]:
        """Poll the API until every node has applied ``revision`` or a newer one; each node's
        document as first seen at or past it (its ``propagation_ms`` is for the revision
        it then had applied)."""
        names = {n.name for n in self.nodes}
        seen: dict[str, dict[str, Any]] = {}

        def done() -> bool:
            for name, doc in self.docs().items():
                applied = doc["applied_revision"]
                if name in names and name not in seen and (applied or -1) >= revision:
                    seen[name] = doc
            return seen.keys() >= names

        try:
            wait_for(done, timeout, f"every node applied revision {revision}", every=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; behind: {self.describe(names - seen.keys())}") from None
        return seen

    def describe(self, names: Iterable[str] | None = None) -> str:
        """Each node's liveness and revisions, for a failure's message."""
        wanted = set(names) if names is not None else None
        return "; ".join(
            f"{d['name']} live={d['live']} desired={d['desired_revision']} "
            f"applied={d['applied_revision']} error={d['last_error']!r}"
            for d in self.api.nodes()
            if wanted is None or d["name"] in wanted
        )

    def answers(self, name: str, ecs: str | None = None) -> dict[str, list[str] | None]:
        """What every node's DNS server answers for ``name`` (A), by node name."""
        return {n.name: n.a(name, ecs) for n in self.nodes}

    def wait_answers(
        self, name: str, ecs: str | None, wanted: dict[str, list[str]], timeout: float
    ) -> None:
        """Until each node named in ``wanted`` answers ``name`` (A, from ``ecs``) with its
        addresses; on failure, what each node answered."""
        got: dict[str, list[str] | None] = {}

        def right() -> bool:
            got.update({n.name: n.a(name, ecs) for n in self.nodes if n.name in wanted})
            return all(got[k] == v for k, v in wanted.items())

        try:
            wait_for(right, timeout, f"{name} from {ecs or 'no network'}", every=0.05)
        except AssertionError as exc:
            wrong = {k: v for k, v in got.items() if v != wanted[k]}
            logs = "".join(
                f"\n--- the end of {n.name}'s log:\n" + _tail(n.agent.output(), 15)
                for n in self.nodes
                if n.name in wrong
            )
            raise AssertionError(
                f"{exc}; wanted {wanted}, but {wrong}; {self.describe()}{logs}"
            ) from None

    @contextlib.contextmanager
    def watch_live(self, names: Iterable[str], live: bool) -> Iterator[list[float]]:
        """A thread asking the API every 0.1 s until every node of ``names`` shows ``live``:
        the seconds from entering it to then, appended to the list yielded (empty: not yet;
        the thread stops on the way out)."""
        wanted, seen, stop = set(names), list[float](), threading.Event()
        started = time.monotonic()

        def watch() -> None:
            api = Api(self.cp)  # a client of its own: httpx's are not shared across threads
            try:
                while not stop.wait(0.1):
                    with contextlib.suppress(httpx.HTTPError):
                        docs = api.nodes()
                        if all(d["live"] == live for d in docs if d["name"] in wanted):
                            seen.append(time.monotonic() - started)
                            return
            finally:
                api.close()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield seen
        finally:
            stop.set()
            thread.join(10)

    def revision(self) -> int:
        """The newest revision of the desired state."""
        return max(int(d["desired_revision"]) for d in self.api.nodes())


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p99, max) by nearest rank (as ``bench/common.pct``)."""
    if not values:
        return (float("nan"),) * 3
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]

    return rank(50), rank(99), ordered[-1]


def _start_nodes(
    cp: ControlPlane,
    api: Api,
    tmp: Path,
    made: list[Host],
    regions: Sequence[str],
    per_region: int,
    extra: list[str],
    http: httpx.Client,
) -> list[FleetNode]:
    """Every agent started at once (each ``Popen`` returns at once); node ``i`` of region
    ``r`` is ``<r>-<i>``, its home ``tmp/<r>-<i>``: short, since the node's sockets lie
    ``edge/<name>/pdns/pdns.controlsocket`` below it and a socket's path holds 107
    characters at most (with ``home-edge-ap-southeast-0/edge/edge-ap-southeast-0`` under
    pytest's folders, PowerDNS could not start)."""
    nodes = []
    spots = [(r, i) for i in range(per_region) for r in regions]  # regions interleaved
    for host, (region, i) in zip(made, spots, strict=True):
        agent = new_agent(cp, api, tmp, f"{region}-{i}")
        agent.home = tmp / agent.name
        agent.netns, agent.region = host.name, region
        agent.bind = agent.address = host.address
        agent.http_port, agent.https_port, agent.dns_port = HTTP_PORT, 0, DNS_PORT
        agent.metrics_port, agent.analytics_interval = 0, 30.0
        agent.extra_args = list(extra)
        nodes.append(FleetNode(agent, host, http))
    for node in nodes:
        node.agent.start()
    return nodes


@contextlib.contextmanager
def edge_fleet(
    tmp: Path,
    *,
    regions: Sequence[str] = REGIONS,
    per_region: int = 2,
    env: dict[str, str] | None = None,
    prefix: str = "epf",
    agent_args: Sequence[str] = (),
) -> Iterator[Fleet]:
    """``per_region`` nodes in each of ``regions`` against one control plane (see the
    module's docstring). ``env``: the control plane's environment beyond ``clean_env``;
    ``agent_args``: more ``edgeplane edge`` options for every node."""
    count = len(regions) * per_region
    nodes: list[FleetNode] = []
    cp: ControlPlane | None = None
    api: Api | None = None
    http = httpx.Client()
    with hosts(count, prefix=prefix) as made:
        try:
            gateway = made[0].gateway
            cp = start_up(tmp / "cp", env=clean_env(**(env or {})), host=gateway)
            api = Api(cp)
            started = time.monotonic()
            extra = list(agent_args)
            nodes = _start_nodes(cp, api, tmp, made, regions, per_region, extra, http)
            fleet = Fleet(cp, api, nodes, gateway, 0.0)

            def ready() -> bool:
                for node in nodes:
                    if node.agent.process is not None and node.agent.process.poll() is not None:
                        tail = _tail(node.agent.output(), 20)
                        raise RuntimeError(f"{node.name} exited; its log ends:\n{tail}")
                docs = api.nodes()
                if len(docs) < count or not all(d["live"] and d["in_sync"] for d in docs):
                    return False
                # Each node's DNS server answers (REFUSED: no such zone); an agent whose
                # PowerDNS cannot start is live and in sync all the same.
                return all(n.a("ready.invalid") is not None for n in nodes)

            try:
                what = f"{count} nodes live, in sync and answering DNS"
                wait_for(ready, START_TIMEOUT_S, what, every=0.1)
            except AssertionError as exc:
                silent = [n for n in nodes if n.a("ready.invalid") is None]
                logs = "".join(
                    f"\n--- {n.name}'s DNS server does not answer; its log ends:\n"
                    + _tail(n.agent.output(), 15)
                    for n in silent
                )
                raise AssertionError(f"{exc}; {fleet.describe()}{logs}") from None
            fleet.started_s = time.monotonic() - started
            yield fleet
        finally:
            for node in nodes:  # frozen ones too: a stopped process cannot take SIGTERM
                node.thaw()
            for node in nodes:
                if node.agent.process is not None and node.agent.process.poll() is None:
                    node.agent.process.send_signal(signal.SIGTERM)
            hung = []
            for node in nodes:  # every agent stops its engines at once, in parallel
                try:
                    node.agent.stop()
                except AssertionError as exc:  # killed; the others are stopped all the same
                    hung.append(str(exc))
            http.close()
            if api is not None:
                api.close()
            if cp is not None:
                cp.stop()
            if hung:
                raise AssertionError("\n".join(hung))
