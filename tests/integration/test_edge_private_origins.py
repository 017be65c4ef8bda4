"""Private origins through a real nginx: the edge's client certificate from the internal CA,
the origin's certificate verified against a pinned CA, public-key pins checked by the agent's
health checks (real HTTPS origin processes, one nginx for the module).

The client certificate comes from the control plane's own code (``origin_client.issue`` in a
real database, loaded as a snapshot loads it); the pools from the snapshot's functions and the
settings' model; the health decisions from the agent's ``HealthChecker``.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nginx_edge import Edge, running_edge, wait_for
from origins import Origin
from tls_origins import Pki, TlsOrigin, self_signed, start_tls_origin, tls_get

from edgeplane.certificates import origin_client
from edgeplane.certificates.internal_ca import InternalCA
from edgeplane.model.cdn import Origin as OriginModel
from edgeplane.model.origin_tls import OriginTls, spki_pin
from edgeplane.node.agent.health import HealthChecker
from edgeplane.node.agent.origin_tls import MISMATCH
from edgeplane.node.nginx.local import LocalHealth
from edgeplane.protocol.config import CertSpec, EdgeConfig, NodeSpec, PoolSpec
from edgeplane.snapshot.build import CDNState, DesiredState, snapshot
from edgeplane.snapshot.load import load_client_certs
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from secret_keys import TEST_SECRETS

pytestmark = pytest.mark.integration

PROJECTS = {
    "mtls": "mtls.test",  # client certificate + verify ca: serves; the origin refuses others
    "wrongca": "wrongca.test",  # verify ca, the origin's certificate from another CA: 502
    "pinok": "pinok.test",  # verify pin, the origin's key pinned: serves once checked
    "pinbad": "pinbad.test",  # verify pin, another key: out of rotation, 502, clear reason
}


@dataclass
class World:
    edge: Edge
    root_pem: str
    origin_ca: Pki
    origins: dict[str, TlsOrigin]
    client_pem: dict[str, Path]  # project -> its client certificate file (for direct calls)
    config: EdgeConfig
    certs: dict[str, CertSpec]


def _database(tmp: Path, template: Path) -> Database:
    path = tmp / "edgeplane.db"
    shutil.copyfile(template, path)
    return Database.for_tests(f"sqlite:///{path}", secrets=TEST_SECRETS)


def _state(db: Database, tls: dict[str, OriginTls], urls: dict[str, str]) -> DesiredState:
    for project in PROJECTS:
        with db.transaction(LOCAL, project) as tx:
            if tls[project].client_certificate:
                origin_client.issue(tx)
    with db.read(LOCAL, "default") as tx:
        clients = load_client_certs(tx.session, tx.secrets, lambda p: True)
    return DesiredState(
        domains={p: (d,) for p, d in PROJECTS.items()},
        cdn={p: CDNState(origins=(OriginModel(url=urls[p], tls=tls[p]),)) for p in PROJECTS},
        client_certs=clients,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("private-origins")
    db = _database(tmp, sqlite_template)
    with db.transaction(LOCAL, "default") as tx:
        root_pem = InternalCA.load_or_create(tx.session, tx.secrets).cert_pem
    (tmp / "internal-root.pem").write_text(root_pem)
    origin_ca, other_ca = Pki("Origin CA"), Pki("Some other CA")
    pinned, unpinned = self_signed("pinned.origin"), self_signed("other.origin")
    files = {
        "mtls": origin_ca.issue("origin.test", ("origin.test",)).write(tmp / "mtls.pem"),
        "wrongca": other_ca.issue("origin.test", ("origin.test",)).write(tmp / "wrong.pem"),
        "pinok": pinned.write(tmp / "pinned.pem"),
        "pinbad": unpinned.write(tmp / "unpinned.pem"),
    }
    started: dict[str, TlsOrigin] = {}
    try:
        for name, cert in files.items():
            mtls = name == "mtls"
            started[name] = start_tls_origin(
                name,
                cert,
                client_ca=tmp / "internal-root.pem" if mtls else None,
                client_cn="mtls" if mtls else None,  # the project the certificate names
            )
        from cryptography import x509

        pin = spki_pin(x509.load_pem_x509_certificate(pinned.cert_pem.encode()))
        tls = {
            "mtls": OriginTls(
                client_certificate=True,
                verify="ca",
                ca_pem=origin_ca.pem,
                server_name="origin.test",
            ),
            "wrongca": OriginTls(verify="ca", ca_pem=origin_ca.pem, server_name="origin.test"),
            "pinok": OriginTls(client_certificate=True, verify="pin", pins=[pin]),
            "pinbad": OriginTls(verify="pin", pins=[pin]),
        }
        state = _state(db, tls, {p: o.url for p, o in started.items()})
        config = snapshot(state, NodeSpec(id="n1", name="edge-1", region="local"), 1)
        certs = {c.id: c for c in config.certs}
        client_files = {}
        for project, cert in state.client_certs.items():
            client_files[project] = tmp / f"client-{project}.pem"
            client_files[project].write_text(cert.key_pem + cert.cert_pem)
        with running_edge(https=False) as edge:
            yield World(edge, root_pem, origin_ca, started, client_files, config, certs)
    finally:
        for o in started.values():
            o.terminate()
        db.dispose()


def _pool(world: World, project: str) -> PoolSpec:
    return next(p for p in world.config.pools if p.id == f"origin.{project}")


def _checks(world: World, projects: list[str]) -> HealthChecker:
    """The agent's health checks of these projects' pools, run until each backend is decided
    (polling, bounded), then stopped: the checker holds their last state."""

    async def run() -> HealthChecker:
        checker = HealthChecker(certs=world.certs.__getitem__)
        checker.update([_pool(world, p) for p in projects])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while loop.time() < deadline:
            if all(r.state != "unknown" for r in checker.report()):
                break
            await asyncio.sleep(0.02)
        await checker.close()
        return checker

    return asyncio.run(run())


def test_the_snapshot_carries_the_client_certificate_and_the_settings(world: World) -> None:
    mtls = _pool(world, "mtls")
    assert mtls.tls is not None and mtls.tls.client_cert in world.certs
    client = world.certs[mtls.tls.client_cert]
    assert client.names == (), "a client certificate is never served for a name"
    assert "BEGIN CERTIFICATE" in client.cert_pem and client.key_pem
    assert _pool(world, "wrongca").tls.client_cert is None  # type: ignore[union-attr]
    # two projects, two certificates, each naming its project
    pinok = _pool(world, "pinok").tls
    assert pinok is not None and pinok.client_cert not in (None, mtls.tls.client_cert)


def test_private_origin_serves_through_the_edge_and_refuses_direct_requests(
    world: World,
) -> None:
    edge, mtls = world.edge, world.origins["mtls"]
    edge.apply(world.config, LocalHealth())
    r = edge.get("mtls.test", "/private")
    assert r.status_code == 200, r.text
    assert r.headers["x-origin"] == "mtls"
    assert r.headers["x-client-cn"] == "mtls", "the edge presented the project's certificate"
    served = mtls.hits()
    # straight to the origin: no client certificate, refused at the handshake
    with pytest.raises((ssl.SSLError, OSError)):
        tls_get(mtls, ca_pem=world.origin_ca.pem, name="origin.test")
    # another project's certificate from the same internal CA: refused too (the name)
    with pytest.raises((ssl.SSLError, OSError)):
        tls_get(
            mtls, ca_pem=world.origin_ca.pem, client=world.client_pem["pinok"], name="origin.test"
        )
    # the project's own certificate is what the origin accepts
    assert (
        tls_get(
            mtls, ca_pem=world.origin_ca.pem, client=world.client_pem["mtls"], name="origin.test"
        )
        == 200
    )
    assert mtls.hits() == served + 1  # the refused ones never reached the application


def test_origin_with_a_certificate_of_another_ca_is_refused(world: World) -> None:
    edge, wrong = world.edge, world.origins["wrongca"]
    edge.apply(world.config, LocalHealth())
    r = edge.get("wrongca.test", "/x")
    assert r.status_code == 502, r.text
    assert wrong.hits() == 0, "nginx refused the origin's certificate: no request reached it"
    (report,) = _checks(world, ["wrongca"]).report()
    assert report.state == "down"
    assert report.reason.startswith("certificate not trusted"), report.reason


def test_public_key_pins_decide_which_origin_serves(world: World) -> None:
    edge = world.edge
    ok, bad = world.origins["pinok"], world.origins["pinbad"]
    # Before any check, a pinned backend is out of rotation (fail closed).
    unchecked = HealthChecker(certs=world.certs.__getitem__)

    async def first_decision() -> frozenset[tuple[str, str]]:
        unchecked.update([_pool(world, "pinok"), _pool(world, "pinbad")])
        down = unchecked.decision()[0]
        await unchecked.close()
        return down

    down = asyncio.run(first_decision())
    assert {k[0] for k in down} == {"origin.pinok", "origin.pinbad"}
    edge.apply(world.config, LocalHealth(down=down))
    assert edge.get("pinok.test", "/").status_code == 502

    checker = _checks(world, ["pinok", "pinbad"])
    reports = {r.pool: r for r in checker.report()}
    good, wrong = reports["origin.pinok"], reports["origin.pinbad"]
    assert good.state == "up", good.reason
    assert wrong.state == "down"
    assert wrong.reason.startswith(MISMATCH), wrong.reason
    pinned = _pool(world, "pinbad").tls.pins[0]  # type: ignore[union-attr]
    assert pinned in wrong.reason and "CN=other.origin" in wrong.reason, wrong.reason
    down, weights = checker.decision()
    assert down == {("origin.pinbad", f"https://127.0.0.1:{bad.port}")}, down
    edge.apply(world.config, LocalHealth(down=down, weights=weights))
    r = edge.get("pinok.test", "/p")
    assert r.status_code == 200 and r.headers["x-origin"] == "pinok", r.text
    assert edge.get("pinbad.test", "/p").status_code == 502
    assert bad.hits() == 0, "no request was served from the origin with another key"
    assert wait_for(lambda: ok.hits() >= 1, timeout=2)
    assert isinstance(ok, Origin)
