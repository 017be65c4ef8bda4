"""Snapshots by reference with real agents: certificates and zones fetched by hash into the
node's store, a node restarted with an empty store, a node that missed revisions."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from cryptography import x509
from edge_agents import Api, EdgeAgent, new_agent, searchable_tmp, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, free_port, free_udp_port, start_up

from edgeplane.protocol.config import EdgeManifest

pytestmark = pytest.mark.integration

NAMES = ("one.localhost", "two.localhost", "three.localhost")


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = searchable_tmp("edge-refs-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


def cert_names(agent: EdgeAgent, name: str) -> list[str]:
    """The DNS names of the certificate the node's nginx presents for SNI ``name``."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", agent.https_port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.DNSName))


def serves_tls(agent: EdgeAgent, name: str) -> bool:
    try:
        return name in cert_names(agent, name)
    except OSError:
        return False


def zone_answered(agent: EdgeAgent, name: str) -> bool:
    query = dns.message.make_query(name, "SOA")
    try:
        answer = dns.query.udp(query, "127.0.0.1", port=agent.dns_port, timeout=1)
    except Exception:
        return False
    return answer.rcode() == dns.rcode.NOERROR and bool(answer.flags & dns.flags.AA)


def served(agent: EdgeAgent, name: str) -> bool:
    try:
        return agent.get(name, "/").status_code == 200
    except OSError:
        return False


def named(state: Path) -> set[str]:
    """The objects the node's saved manifest names (none when there is no manifest yet)."""
    try:
        raw = (state / "manifest.json").read_bytes()
    except FileNotFoundError:
        return set()
    return set(EdgeManifest.model_validate_json(raw).objects())


def proxied(api: Api, origins: OriginSet, names: tuple[str, ...]) -> None:
    """``names`` added and proxied to an origin over plain HTTP."""
    origin = origins.start("a")
    for name in names:
        api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": name})
    api.ok("POST", "/api/v1/infrastructure/cdn", json={
        "origins": [{"url": origin.url}], "security": {"force_https": False}})  # fmt: skip


def start(cp: ControlPlane, api: Api, tmp: Path, name: str) -> EdgeAgent:
    return new_agent(cp, api, tmp, name, https_port=free_port(), dns_port=free_udp_port()).start()


def test_a_node_restarted_with_an_empty_store_fetches_what_it_lacks(
    tmp_dir: Path, origins: OriginSet
) -> None:
    cp = start_up(tmp_dir / "cp")
    api = Api(cp)
    agent: EdgeAgent | None = None
    try:
        proxied(api, origins, NAMES)
        agent = start(cp, api, tmp_dir, "refs")
        for name in NAMES:
            wait_for(lambda n=name: serves_tls(agent, n), 30, f"TLS for {name}")  # type: ignore[misc]
            wait_for(lambda n=name: zone_answered(agent, n), 30, f"zone {name}")  # type: ignore[misc]
        state = agent.home / "edge" / "refs"
        first = wait_for(lambda: named(state), 10, "the manifest saved")
        assert len(first) == 2 * len(NAMES)  # a zone and a certificate per domain
        assert first <= {p.name for p in (state / "objects").iterdir()}

        # Stopped, its store, manifest and certificate files gone: it starts from nothing.
        assert agent.stop() == 0
        before = len(agent.output())
        shutil.rmtree(state / "objects")
        (state / "manifest.json").unlink()
        shutil.rmtree(agent.prefix / "certs")
        agent.start()
        for name in NAMES:
            wait_for(lambda n=name: serves_tls(agent, n), 30, f"TLS again for {name}")  # type: ignore[misc]
            wait_for(lambda n=name: served(agent, n), 30, f"HTTP again for {name}")  # type: ignore[misc]
        wait_for(lambda: named(state) == first, 10, "the same manifest saved again")
        assert {p.name for p in (state / "objects").iterdir()} == first
        assert f"fetched {len(first)} objects" in agent.output()[before:]
        # Private keys stay the owner's: the store and the certificate files.
        keys = [p for p in (agent.prefix / "certs").glob("*.pem") if p.name != "_default.pem"]
        assert len(keys) >= len(NAMES)  # <id>.pem: the key, then the chain
        assert all(k.stat().st_mode & 0o077 == 0 for k in keys)
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in (state / "objects").iterdir())
        assert "PRIVATE KEY" not in agent.output() and "PRIVATE KEY" not in cp.log.read_text()
    except BaseException:
        if agent is not None:
            print(agent.output())
        raise
    finally:
        if agent is not None:
            agent.stop()
        api.close()
        cp.stop()


def test_a_zone_missing_from_the_store_is_fetched_again(tmp_dir: Path, origins: OriginSet) -> None:
    """A zone's object lost from the store (a damaged disk, a file dropped as unparseable)
    while the manifest naming it is kept: the DNS engine, which reads it when PowerDNS's
    database is rebuilt, fails once, and the agent fetches the object again and serves."""
    cp = start_up(tmp_dir / "cp")
    api = Api(cp)
    agent: EdgeAgent | None = None
    try:
        proxied(api, origins, NAMES)
        agent = start(cp, api, tmp_dir, "lost")
        for name in NAMES:
            wait_for(lambda n=name: zone_answered(agent, n), 30, f"zone {name}")  # type: ignore[misc]
        state = agent.home / "edge" / "lost"
        wait_for(lambda: len(named(state)) == 2 * len(NAMES), 10, "the manifest saved")
        manifest = EdgeManifest.model_validate_json((state / "manifest.json").read_bytes())
        lost = manifest.zones[f"{NAMES[1]}."]

        assert agent.stop() == 0
        before = len(agent.output())
        (state / "objects" / lost).unlink()
        shutil.rmtree(state / "pdns")  # rebuilt from the store at start: every zone is read
        agent.start()
        for name in NAMES:
            wait_for(lambda n=name: zone_answered(agent, n), 30, f"zone {name} again")  # type: ignore[misc]
        assert (state / "objects" / lost).exists()
        log = agent.output()[before:]
        assert "fetched again 1 objects missing from the store" in log
        assert "received as changes" not in log  # no new revision was needed
    except BaseException:
        if agent is not None:
            print(agent.output())
        raise
    finally:
        if agent is not None:
            agent.stop()
        api.close()
        cp.stop()


def test_a_node_that_missed_revisions_converges_to_the_newest(
    tmp_dir: Path, origins: OriginSet
) -> None:
    cp = start_up(tmp_dir / "cp")
    api = Api(cp)
    agent: EdgeAgent | None = None
    paused = False
    try:
        proxied(api, origins, NAMES[:1])
        agent = start(cp, api, tmp_dir, "late")
        wait_for(lambda: served(agent, NAMES[0]), 30, "served")  # type: ignore[arg-type]
        # A change while it follows: the changes from the manifest it holds, not a manifest.
        patch = {"set": [{"name": "www", "type": "A", "values": ["192.0.2.99"]}]}
        api.ok("PATCH", f"/api/v1/infrastructure/domains/{NAMES[0]}/records", json=patch)
        wait_for(lambda: "received as changes to revision" in agent.output(), 30, "a delta")  # type: ignore[union-attr]
        assert agent.process is not None
        os.kill(agent.process.pid, signal.SIGSTOP)  # paused while several changes happen
        paused = True
        for name in NAMES[1:]:
            api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": name})
            api.nodes()  # each revision built (its objects become the cache's newest)
        for last in "987654321":  # more revisions than the cache keeps objects of
            patch = {"set": [{"name": "www", "type": "A", "values": [f"192.0.2.{last}"]}]}
            api.ok("PATCH", f"/api/v1/infrastructure/domains/{NAMES[0]}/records", json=patch)
            api.nodes()
        wanted = int(api.ok("GET", "/api/v1/revision")["revision"])
        os.kill(agent.process.pid, signal.SIGCONT)
        paused = False
        for name in NAMES:
            wait_for(lambda n=name: served(agent, n), 30, f"{name} served")  # type: ignore[misc]
            wait_for(lambda n=name: zone_answered(agent, n), 30, f"zone {name}")  # type: ignore[misc]

        def converged() -> bool:
            doc = next(n for n in api.nodes() if n["name"] == "late")
            return bool(doc["applied_revision"] == wanted and doc["in_sync"])

        wait_for(converged, 30, "the node at the newest revision")
        query = dns.message.make_query(f"www.{NAMES[0]}", "A")
        answer = dns.query.udp(query, "127.0.0.1", port=agent.dns_port, timeout=2)
        assert [r.to_text() for rr in answer.answer for r in rr] == ["192.0.2.1"]
    except BaseException:
        if agent is not None:
            print(agent.output())
        raise
    finally:
        if agent is not None:
            if paused and agent.process is not None:
                os.kill(agent.process.pid, signal.SIGCONT)
            agent.stop()
        api.close()
        cp.stop()
