"""`edgeplane up` and its edge node over their lifetime: quiet, quick stops; a crash of `up`
(SIGKILL) taken over by the next `up` on the same home; one agent per node state.

Every check of "what is left" reads /proc (``homeprocs``): a process counts when its command
line, working directory or open files name the home or the node's nginx prefix, or when it
listens on one of the node's ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import dns.exception
import dns.message
import dns.query
import httpx
import pytest
from edge_agents import Api, EdgeAgent, searchable_tmp, wait_for
from homeprocs import Proc, kinds, local_prefix, processes_of
from processes import ControlPlane, clean_env, free_port, free_udp_port, start_up

from edgeplane.node.agent.paths import nginx_prefix

DOMAIN = "app.localhost"  # verified at once; its zone answers A 127.0.0.1 on the node


def ports_of(cp: ControlPlane) -> list[int]:
    return [urlsplit(cp.url).port or 0, cp.http_port or 0, cp.https_port or 0, cp.dns_port or 0]


def dns_answers(port: int, timeout: float = 0.5, name: str = DOMAIN) -> bool:
    query = dns.message.make_query(name, "A")
    try:
        answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return bool(answer.answer)


def dns_responds(port: int) -> bool:
    """Any answer at all (REFUSED for a zone it does not serve): the server runs."""
    query = dns.message.make_query("localhost.", "SOA")
    try:
        dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.DNSException, OSError):
        return False
    return True


def edge_answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": DOMAIN}, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def node_in_sync(cp: ControlPlane) -> bool:
    """The node applied the newest revision and is live: its agent now waits in a long-poll."""
    headers = {"Authorization": f"Bearer {cp.token}"}
    nodes = httpx.get(f"{cp.url}/api/v1/edge/nodes", headers=headers, timeout=5).json()
    return len(nodes) == 1 and nodes[0]["in_sync"] and nodes[0]["live"]


def one_of_each(home: Path, ports: list[int]) -> dict[str, list[int]] | None:
    """The node's processes by kind when there is exactly one `up`, agent, nginx master and
    pdns_server and dnsdist (besides nginx's workers), else None."""
    found = kinds(processes_of(home, ports))
    singles = {kind: len(found.get(kind, [])) for kind in SINGLES}
    others = set(found) - set(SINGLES) - {"nginx worker", "nginx cache"}
    return found if singles == dict.fromkeys(SINGLES, 1) and not others else None


SINGLES = ("up", "agent", "nginx master", "pdns_server", "dnsdist")


def describe(procs: list[Proc]) -> str:
    return "\n".join(f"  {p.pid} ({p.kind}, {p.why}): {p.cmdline[:120]}" for p in procs)


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder for the test's homes; removed afterwards with the nginx prefixes that went
    outside it (as root, a 0700 home puts them under /var/lib/edgeplane/edge/)."""
    path = searchable_tmp("edgeplane-lifecycle-")
    try:
        yield path
    finally:
        for state in path.glob("*/edge/*"):
            prefix = nginx_prefix(state.resolve(), state.name)
            if path not in prefix.parents:
                shutil.rmtree(prefix.parent, ignore_errors=True)
        shutil.rmtree(path, ignore_errors=True)


# Quiet, quick stops ----------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_up_stops_quietly_within_2s_and_leaves_no_process(base: Path, sig: int) -> None:
    home = base / "home"
    cp = start_up(home, edge=True)
    ports = ports_of(cp)
    try:
        assert cp.dns_port and cp.http_port
        wait_for(lambda: node_in_sync(cp), 30, "the node in sync (its agent long-polling)")
        wait_for(lambda: dns_responds(cp.dns_port or 0), 10, "the node's DNS server")
        running = kinds(processes_of(home, ports))
        assert {"agent", "nginx master", "nginx worker", "pdns_server", "dnsdist"} <= set(
            running
        ), running
        signalled = time.monotonic()
        cp.process.send_signal(sig)
        try:
            wait_for(lambda: cp.process.poll() is not None, 2.0, "exit", every=0.01)
        except AssertionError:
            cp.process.wait(30)  # its log then says where the time went
            raise AssertionError(
                f"`up` took {time.monotonic() - signalled:.2f} s to exit after {sig!r}:\n"
                + cp.output()
            ) from None
        took = time.monotonic() - signalled
        left = processes_of(home, ports)
    finally:
        if cp.process.poll() is None:
            cp.stop(signal.SIGKILL)
    output = cp.output()
    print(f"\n{signal.Signals(sig).name}: `up` and its node stopped {took:.2f} s after the signal")
    assert cp.process.returncode == 0, output
    assert left == [], describe(left)
    assert "Traceback" not in output, output
    assert "ERROR" not in output, output
    assert "stopped" in output


# A crash of `up`, and the next `up` on the same home ------------------------------------------


@dataclass
class Traffic:
    """DNS queries and HTTP requests to the node, in two threads, counted."""

    dns_port: int
    http_port: int
    counts: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _loop(self, what: str, ask: Callable[[], bool]) -> None:
        while not self._stop.is_set():
            key = f"{what} {'answered' if ask() else 'unanswered'}"
            self.counts[key] = self.counts.get(key, 0) + 1
            time.sleep(0.01)

    def start(self) -> Traffic:
        for what, ask in (
            ("dns", lambda: dns_answers(self.dns_port, timeout=0.2)),
            ("http", lambda: edge_answers(self.http_port)),
        ):
            thread = threading.Thread(target=self._loop, args=(what, ask), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def take(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        return counts

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)


def stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` has stopped (a SIGSTOP reaches the threads one by one;
    meanwhile a fatal signal still kills the process)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return all(state in ("T", "t") for state in states)


def freeze(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: all(stopped(pid) for pid in pids), 5, f"{pids} stopped")


def test_up_after_a_crash_takes_over_the_node(base: Path) -> None:
    """SIGKILL `up` while DNS and HTTP traffic runs, start `up` again on the same home: one
    agent, one nginx master, one pdns_server, and 100 of 100 DNS queries answered within 5 s.
    Three crashes: a plain one (the agent ends with `up` and stops its engines); one whose
    agent cannot act (SIGSTOPped: the next `up` stops it, and it its engines); one whose
    agent died too and whose engines cannot act (the next `up` finds them by /proc)."""
    home = base / "home"
    cp = start_up(home, edge=True)
    ports = ports_of(cp)
    api_port = ports[0]
    edge_ports = (cp.http_port or 0, cp.https_port or 0, cp.dns_port or 0)
    dns_port, http_port = edge_ports[2], edge_ports[0]
    api = Api(cp)
    try:
        api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": DOMAIN})
        wait_for(lambda: dns_answers(dns_port), 30, f"{DOMAIN} from the node's DNS")
    finally:
        api.close()
    traffic = Traffic(dns_port, http_port).start()
    try:
        for crash in ("plain", "agent frozen", "engines frozen, agent killed"):
            before = kinds(processes_of(home, ports))
            if crash == "agent frozen":
                freeze(before["agent"])
            elif crash == "engines frozen, agent killed":
                freeze(
                    before["nginx master"]
                    + before["nginx worker"]
                    + before["pdns_server"]
                    + before["dnsdist"]
                )
                os.kill(before["agent"][0], signal.SIGKILL)
            time.sleep(0.3)  # traffic meets the node as it is
            cp.process.kill()
            cp.process.wait()
            if crash != "plain":
                # What the machine holds now: nothing of it can stop on its own.
                left = kinds(processes_of(home, ports))
                pdns_log = (home / "edge" / "local" / "pdns" / "pdns.log").read_text()[-1500:]
                why = f"{before} -> {left}\n{cp.output()[-3000:]}\npdns.log:\n{pdns_log}"
                assert left.get("nginx master") == before["nginx master"], why
                assert left.get("pdns_server") == before["pdns_server"], why
                assert left.get("dnsdist") == before["dnsdist"], why
            during = traffic.take()
            restarted = time.monotonic()
            cp = start_up(home, edge=True, api_port=api_port, edge_ports=edge_ports)
            api_after = time.monotonic() - restarted
            # Within 5 s of the API answering (on a busy machine `up` alone may take longer
            # to start), and in fact as soon as the agent serves its saved snapshot.
            wait_for(lambda: dns_answers(dns_port, timeout=0.2), 5, "the node's DNS again")
            dns_after = time.monotonic() - restarted
            answered = sum(dns_answers(dns_port, timeout=0.5) for _ in range(100))
            now = ports_of(cp)
            found = wait_for(partial(one_of_each, home, now), 5, "one of each process")
            after = traffic.take()
            print(
                f"\ncrash ({crash}): around the kill {during}; restarted: API after "
                f"{api_after:.1f} s, DNS after {dns_after:.1f} s, then {answered}/100 DNS "
                f"answers; traffic since the kill {after}"
            )
            assert answered == 100, cp.output()
            old = {pid for pids in before.values() for pid in pids}
            assert not old & {pid for pids in found.values() for pid in pids}, (before, found)
            output = cp.output()
            for line in output.splitlines():
                if " edgeplane.up " in line:
                    print("  " + line)
            if crash == "agent frozen":
                assert f"left running (pid {before['agent'][0]}" in output, output
            if crash.startswith("engines frozen"):
                assert f"stopping nginx (pid {before['nginx master'][0]})" in output, output
                assert f"stopping pdns_server (pid {before['pdns_server'][0]})" in output, output
                assert f"stopping dnsdist (pid {before['dnsdist'][0]})" in output, output
            assert "Traceback" not in output, output
            ports = now
    finally:
        traffic.stop()
        code = cp.stop()
        left = processes_of(home, ports)
        for proc in left:  # never leave a test's processes behind, even when it fails
            os.kill(proc.pid, signal.SIGKILL)
    assert code == 0
    assert left == [], describe(left)


# One agent per node state ---------------------------------------------------------------------


def edgeplane(*args: str, token: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeplane", *args],
        env=clean_env(EDGEPLANE_TOKEN=token) if token else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fds(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            out.add(os.readlink(fd))
    return out


def test_one_agent_per_node_state(base: Path) -> None:
    """A second agent on the same state refuses, naming the first's pid, and touches nothing;
    the lock is not inherited by nginx or pdns_server; `up` refuses a home where an agent it
    did not start runs the local node, and a home where another `up` runs; an agent that is
    SIGKILLed takes its nginx and pdns_server with it."""
    cp = start_up(base / "cp")  # the control plane alone
    api = Api(cp)
    node_home = base / "node"
    agent = EdgeAgent(
        name="local",  # the name `up` gives its node: `up --home node_home` must refuse
        home=node_home,
        http_port=free_port(),
        control_plane=cp.url,
        token=api.edge_token("edge-local"),
        log=base / "agent.log",
        dns_port=free_udp_port(),
    ).start()
    ports = [agent.http_port, agent.dns_port]
    state = (node_home / "edge" / "local").resolve()
    try:
        assert agent.process is not None
        wait_for(lambda: dns_responds(agent.dns_port), 30, "the node's DNS server")
        wait_for(lambda: one_agent(node_home, ports), 30, "the node's processes")
        before = kinds(processes_of(node_home, ports))
        prefix = local_prefix(node_home)
        marks = {
            path: path.stat().st_mtime_ns
            for path in (state / "pdns" / "pdns.conf", prefix / "nginx.pid", state / "agent.lock")
        }
        lock = str(state / "agent.lock")
        engines = before["nginx master"] + before["nginx worker"] + before["pdns_server"]
        for pid in engines + before["dnsdist"]:
            assert lock not in fds(pid), f"{pid} inherited the agent's lock"
        assert lock in fds(agent.process.pid)

        second = edgeplane(
            "edge",
            "--control-plane",
            cp.url,
            "--region",
            "us-east",
            "--name",
            "local",
            "--home",
            str(node_home),
            "--http-port",
            str(free_port()),
            "--dns-port",
            str(free_udp_port()),
            token="unused",
        )
        assert second.returncode == 1, second
        assert f"pid {agent.process.pid}" in second.stderr, second.stderr
        assert "in use by another agent" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout

        # `up` on that home: the local node is run by an agent `up` did not start.
        refused = edgeplane(
            "up",
            "--home",
            str(node_home),
            "--api-port",
            str(free_port()),
            "--http-port",
            str(free_port()),
            "--dns-port",
            str(free_udp_port()),
        )
        assert refused.returncode == 1, refused
        assert f"pid {agent.process.pid}" in refused.stderr, refused.stderr
        # `up` on the control plane's home, where `up` runs.
        again = edgeplane(
            "up", "--home", str(base / "cp"), "--api-port", str(free_port()), "--no-edge"
        )
        assert again.returncode == 1, again
        assert f"another edgeplane up (pid {cp.process.pid})" in again.stderr, again.stderr

        # The first agent kept serving, untouched.
        assert kinds(processes_of(node_home, ports)) == before
        assert {path: path.stat().st_mtime_ns for path in marks} == marks
        assert dns_responds(agent.dns_port)
        r = httpx.get(f"{agent.url}/", headers={"Host": "unknown.localhost"}, timeout=5)
        assert r.status_code == 404
        assert "not running" not in agent.output()

        # An agent that dies outright takes its engines with it.
        os.kill(agent.process.pid, signal.SIGKILL)
        agent.process.wait()
        killed = time.monotonic()
        wait_for(lambda: not processes_of(node_home, ports), 10, "the engines ending")
        print(
            f"\nagent SIGKILLed: its nginx and pdns_server ended within "
            f"{time.monotonic() - killed:.2f} s"
        )
    finally:
        agent.stop()
        for proc in processes_of(node_home, ports):
            os.kill(proc.pid, signal.SIGKILL)
        api.close()
        assert cp.stop() == 0


def one_agent(home: Path, ports: list[int]) -> bool:
    found = kinds(processes_of(home, ports))
    return (
        len(found.get("agent", [])) == 1
        and len(found.get("nginx master", [])) == 1
        and len(found.get("pdns_server", [])) == 1
        and len(found.get("dnsdist", [])) == 1
        and bool(found.get("nginx worker"))
    )
