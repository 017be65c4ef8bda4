"""The several-hosts helper (netns.py) proven with real components: a plain HTTP server inside
a namespace, then a real control plane in the root namespace and one real edge node (agent and
nginx) inside each of three namespaces, each with an address of its own and the same ports."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, searchable_tmp, wait_for
from netns import Host, hosts, leftovers
from processes import free_port, start_up

pytestmark = pytest.mark.integration

REGIONS = {"eu": "eu-central", "us": "us-east", "ap": "ap-northeast"}

# Connect to (address, port) from wherever it runs; prints "ok" or the error, exits 0 either way.
PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("ok")
except OSError as exc:
    print(type(exc).__name__, exc)
"""


def reaches(host: Host, address: str, port: int, timeout: float = 1.0) -> bool:
    r = host.run(sys.executable, "-c", PROBE, address, str(port), str(timeout), check=True)
    return r.stdout.strip() == "ok"


@pytest.fixture
def server_in_root() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A TCP listener in the root namespace on every address (for the hosts to reach)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "0.0.0.0", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200 or None,
            10,
            "the root-namespace server",
        )
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_server_in_a_host_answers_on_its_address_only(
    server_in_root: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, root_port = server_in_root
    port = free_port()  # free in the root namespace: nothing of ours listens there on it
    with hosts(2) as made:
        a, b = made
        assert len({a.address, b.address, a.gateway, b.gateway}) == 4
        server = a.popen(
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            "0.0.0.0",
            str(port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            r = wait_for(
                lambda: httpx.get(f"http://{a.address}:{port}/", timeout=1),
                10,
                "the server inside the host, from the root namespace",
            )
            assert r.status_code == 200 and "Directory listing" in r.text
            assert server.pid in a.pids()
            # Isolation: the root namespace's loopback is not the host's.
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            assert reaches(a, "127.0.0.1", port)  # the host's own loopback
            assert not reaches(b, "127.0.0.1", port)  # ... which b does not share
            # Hosts reach the root namespace: their gateway, another host's gateway.
            assert reaches(a, a.gateway, root_port) and reaches(b, b.gateway, root_port)
            assert reaches(b, a.gateway, root_port)
            assert not reaches(a, "127.0.0.1", root_port)
            # Without forwarding, no host reaches another host's address.
            assert not reaches(b, a.address, port, timeout=0.5)
        finally:
            server.terminate()
            server.wait(10)
    assert leftovers(made) == []


def test_hosts_reach_each_other_with_forwarding() -> None:
    port = free_port()
    with hosts(2, forward=True) as (a, b):
        server = a.popen(
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            "0.0.0.0",  # an address would make it look its name up: no DNS in a host
            str(port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: reaches(a, a.address, port) or None, 10, "the server up")
            assert reaches(b, a.address, port)
            r = b.run(
                sys.executable,
                "-c",
                f"import urllib.request as u; print(u.urlopen("
                f"'http://{a.address}:{port}/', timeout=5).status)",
                check=True,
            )
            assert r.stdout.strip() == "200"
            # Nothing else is forwarded: outside the pool, unreachable at once (TEST-NET-2).
            r = b.run(sys.executable, "-c", PROBE, "198.51.100.1", "80", "3", check=True)
            assert "unreachable" in r.stdout, r.stdout
        finally:
            server.terminate()
            server.wait(10)
    assert leftovers([a, b]) == []


def test_edge_nodes_in_three_hosts_register_and_serve() -> None:
    tmp = searchable_tmp("netns-hosts-")
    agents: list[EdgeAgent] = []
    try:
        with hosts(3) as made:
            # The control plane listens on the first host's gateway: an address of the root
            # namespace that every host reaches (and not the machine's real interfaces).
            cp = start_up(tmp / "cp", host=made[0].gateway)
            assert cp.url.startswith(f"http://{made[0].gateway}:")  # new_agent hands it over
            api = Api(cp)
            try:
                by_name: dict[str, Host] = {}
                for (key, region), host in zip(REGIONS.items(), made, strict=True):
                    agent = new_agent(cp, api, tmp, f"edge-{key}")
                    # Inside its namespace every port is free: the same ports for every node.
                    agent.netns, agent.bind, agent.address = host.name, host.address, host.address
                    agent.http_port, agent.https_port, agent.dns_port = 8080, 0, 0
                    agent.region = region
                    agents.append(agent.start())
                    by_name[agent.name] = host

                def all_live() -> list[dict[str, Any]] | None:
                    live = [n for n in api.nodes() if n["live"]]
                    return live if {n["name"] for n in live} == set(by_name) else None

                nodes = wait_for(all_live, 30, "three live edge nodes")
                assert {n["name"]: (n["region"], n["address"]) for n in nodes} == {
                    a.name: (a.region, by_name[a.name].address) for a in agents
                }
                for agent in agents:
                    host = by_name[agent.name]
                    unknown_host = functools.partial(
                        httpx.get,
                        f"http://{host.address}:8080/",
                        headers={"Host": "nobody.example"},
                        timeout=2,
                    )
                    r = wait_for(unknown_host, 10, f"{agent.name} answering on {host.address}")
                    assert r.status_code == 404 and r.text == "unknown host\n", r.text
                    assert r.headers["X-Served-By"] == agent.name
                    # The agent and its nginx run inside the host's namespace.
                    assert agent.process is not None and agent.process.pid in host.pids()
                    assert agent.nginx_pids() and set(agent.nginx_pids()) <= set(host.pids())
            finally:
                for agent in agents:
                    agent.stop()
                api.close()
                cp.stop()
            assert all(host.pids() == [] for host in made)  # nginx stopped with its agent
        assert leftovers(made) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
