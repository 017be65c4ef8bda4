"""Background certificate orders live in the database: any replica answers a poll for one,
an order whose replica died is resumed by exactly one other replica, and an order whose runs
keep dying is given up after three attempts. Two replicas are two apps (each with its own
``Database`` handle) on one database, once on SQLite and once on PostgreSQL; the orders are
internal ones (no CA needed), or a ``work`` of the test's own where a run must hang."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from conftest import TEMPLATE
from edgeplane.api.app import create_app
from edgeplane.certificates.acme import challenges as acme_challenges
from edgeplane.certificates.acme import progress
from edgeplane.certificates.acme.progress import Claimed
from edgeplane.errors import UpstreamFailed
from edgeplane.model.certificates import CertificateIssued, CertificateRequest
from edgeplane.routing.geoip import GeoLocator
from edgeplane.services import access, cert_orders
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.ha_tables import CertOrderRow
from edgeplane.store.migrate import upgrade
from edgeplane.store.tables import AcmeChallengeRow, utcnow
from pgcluster import PostgresCluster
from secret_keys import TEST_SECRET_KEY, TEST_SECRETS

INV = "/api/v1/infrastructure"


@dataclass
class Replica:
    db: Database
    client: TestClient
    settings: Settings
    token: str

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.token}"}, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers={"Authorization": f"Bearer {self.token}"}, **kw)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replicas(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    locator: GeoLocator,
) -> Iterator[tuple[Replica, Replica]]:
    """Two API replicas on one database, sharing the admin token and the secret key; one
    database per module (each test its own domains), on SQLite and on PostgreSQL."""
    tmp = tmp_path_factory.mktemp("orders-ha")
    cluster: PostgresCluster | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'edgeplane.db'}"
        fresh = Database(url)
        upgrade(fresh.engine)
        fresh.dispose()
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"orders_ha_{os.getpid()}", template=TEMPLATE)
    made: list[Replica] = []
    token = ""
    with contextlib.ExitStack() as stack:
        for name in ("a", "b"):
            home = tmp / name
            home.mkdir()
            (home / "secret.key").write_text(TEST_SECRET_KEY + "\n")
            settings = Settings(home=home, database_url=url)
            db = Database.for_tests(url, secrets=TEST_SECRETS)
            stack.callback(db.dispose)
            if not token:
                token = access.ensure_admin_token(db, tmp / "admin-token")
            client = stack.enter_context(
                TestClient(create_app(settings, db, locator=locator), raise_server_exceptions=False)
            )
            made.append(Replica(db=db, client=client, settings=settings, token=token))
        yield made[0], made[1]
    if cluster is not None:
        cluster.drop_database(f"orders_ha_{os.getpid()}")


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@dataclass
class Stored:
    attempts: int
    runner: str | None
    ended: bool
    request: dict[str, Any]


def row(db: Database, order_id: str) -> Stored:
    with db.read(LOCAL, "default") as tx:
        found = tx.session.get(CertOrderRow, order_id)
        assert found is not None
        return Stored(found.attempts, found.runner, found.ended_at is not None, found.request)


def orphan(db: Database, order_id: str, runner: str, seconds_ago: float = 60.0) -> None:
    """Leave the order as a dead replica would: running, claimed by ``runner``, its
    heartbeat ``seconds_ago`` old."""
    assert progress.claim(db, order_id, runner, seen_runner=None, seen_attempts=0) is not None
    with db.transaction(LOCAL, "default") as tx:
        tx.session.execute(
            update(CertOrderRow)
            .where(CertOrderRow.id == order_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds_ago))
        )


def test_an_order_started_on_one_replica_is_followed_on_another(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    ok(a.post(f"{INV}/domains", json={"domain": "ha.test"}), 201)
    ok(a.post(f"{INV}/domains", json={"domain": "other.test"}), 201)
    started = ok(
        a.post(f"{INV}/ssl/ha.test", params={"wait": "false"}, json={"type": "internal"}), 202
    )
    assert started["status"] == "running" and started["events"][0]["message"] == "order accepted"
    url = f"{INV}/ssl/ha.test/orders/{started['id']}"
    order = wait_for(lambda: (o := ok(b.get(url)))["status"] != "running" and o)
    assert order["status"] == "valid", order
    assert order["id"] == started["id"] and order["domain"] == "ha.test"
    messages = [e["message"] for e in order["events"]]
    assert messages[0] == "order accepted" and messages[-1].startswith("issued cert-")
    assert (
        order["result"]["certificate"]["id"] == ok(b.get(f"{INV}/ssl/ha.test"))["certificate"]["id"]
    )
    assert ok(a.get(url)) == order  # both replicas answer the same
    stored = row(b.db, started["id"])
    assert stored.attempts == 1 and stored.runner == a.client.app.state.acme_orders.runner  # type: ignore[attr-defined]
    assert stored.ended and "key_data" not in stored.request
    # Unknown ids, another domain and another project: 404 on either replica.
    ok(a.post("/api/v1/projects", json={"id": "elsewhere", "name": "Elsewhere"}), 201)
    for replica, path, params in (
        (b, f"{INV}/ssl/ha.test/orders/order-000000000000", {}),
        (a, f"{INV}/ssl/other.test/orders/{started['id']}", {}),
        (b, url, {"project": "elsewhere"}),
    ):
        r = replica.get(path, params=params)
        assert r.status_code == 404, (path, params, r.text)


def test_an_orphaned_order_is_resumed_once_by_racing_replicas(
    replicas: tuple[Replica, Replica],
) -> None:
    """Five orders left running by a replica that died; two replicas' resume passes race
    for them: each order is claimed once, runs once (one certificate each) and ends valid."""
    a, b = replicas
    ok(a.post(f"{INV}/domains", json={"domain": "resume.test"}), 201)
    before = len(ok(a.get(f"{INV}/ssl/resume.test"))["certificates"])
    actor = cert_orders.actor_doc(access.authenticate(a.db, a.token))
    request = cert_orders.request_doc(CertificateRequest(type="internal"))
    ids = []
    for _ in range(5):
        order = progress.create(a.db, "default", "resume.test", request, actor)
        orphan(a.db, order.id, "dead-host:1:0000")
        ids.append(order.id)
    # A claim whose heartbeat is newer than the claimer's limit is not taken (it beat since).
    assert (
        progress.claim(
            a.db,
            ids[0],
            "too-eager",
            seen_runner="dead-host:1:0000",
            seen_attempts=1,
            beaten_before=utcnow() - timedelta(seconds=120),
        )
        is None
    )
    resumers = [
        cert_orders.Resumer(replica.db, replica.settings, runner=f"replica-{n}")
        for n, replica in enumerate((a, b))
    ]
    barrier = threading.Barrier(2)
    started = [0, 0]

    def race(n: int) -> None:
        barrier.wait()
        started[n] = resumers[n]()

    threads = [threading.Thread(target=race, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(started) == 5, started
    for resumer in resumers:
        for t in resumer.threads:
            t.join(20)
    for order_id in ids:
        done = ok(b.get(f"{INV}/ssl/resume.test/orders/{order_id}"))
        assert done["status"] == "valid", done
        messages = [e["message"] for e in done["events"]]
        assert sum("resumed by another replica" in m for m in messages) == 1, messages
        stored = row(a.db, order_id)
        assert stored.attempts == 2 and stored.runner in ("replica-0", "replica-1")
    # One certificate per order: no order ran twice.
    after = len(ok(a.get(f"{INV}/ssl/resume.test"))["certificates"])
    assert after == before + 5
    # A later pass finds nothing to resume.
    assert resumers[0]() == 0 and resumers[1]() == 0


def test_runs_that_keep_dying_are_given_up_after_three_attempts(
    replicas: tuple[Replica, Replica],
) -> None:
    """Every run hangs and stops beating (a replica that died): the order is claimed three
    times, then given up with the reason; the hung runs, released, write nothing."""
    a, b = replicas
    ok(a.post(f"{INV}/domains", json={"domain": "dying.test"}), 201)
    release = threading.Event()
    ran: list[int] = []
    superseded: list[int] = []

    def hangs(claimed: Claimed, say: progress.Say) -> CertificateIssued:
        ran.append(claimed.attempts)
        release.wait(30)
        try:
            say("still here")
        except progress.Superseded:
            superseded.append(claimed.attempts)
            raise
        raise AssertionError("a given-up run went on")

    never = 3600.0  # a hung run never beats: each claim goes stale at once
    orders = cert_orders.Orders(a.db, a.settings, runner="replica-a", work=hangs, heartbeat_s=never)
    request = CertificateRequest(type="internal")
    order = orders.start(access.authenticate(a.db, a.token), "default", "dying.test", request)
    resumer = cert_orders.Resumer(
        b.db, b.settings, runner="replica-b", work=hangs, stale_s=0.2, heartbeat_s=never
    )
    url = f"{INV}/ssl/dying.test/orders/{order.id}"

    def ended() -> Any:
        resumer()
        doc = ok(b.get(url))
        return doc["status"] != "running" and doc

    done = wait_for(ended)
    assert done["status"] == "failed" and done["error_status"] == 503, done
    assert "given up after 3 attempts" in done["error"]
    messages = [e["message"] for e in done["events"]]
    assert sum("resumed by another replica" in m for m in messages) == 2, messages
    assert messages[-1] == done["error"]
    assert sorted(ran) == [1, 2, 3]
    release.set()
    wait_for(lambda: len(superseded) == 3)
    for t in resumer.threads:
        t.join(10)
    assert ok(a.get(url)) == done  # the released runs wrote nothing


def test_a_failed_run_ends_the_order_at_once(replicas: tuple[Replica, Replica]) -> None:
    """A run that fails (the CA refused) ends the order with the reason and the status the
    synchronous call would have had; it is not resumed. A resumed order whose token was
    revoked meanwhile ends failed too."""
    a, b = replicas
    ok(a.post(f"{INV}/domains", json={"domain": "refused.test"}), 201)

    def refused(claimed: Claimed, say: progress.Say) -> CertificateIssued:
        say("order created")
        raise UpstreamFailed("the CA refused: rejectedIdentifier", reason="rejected")

    orders = cert_orders.Orders(a.db, a.settings, runner="replica-a", work=refused)
    order = orders.start(LOCAL, "default", "refused.test", CertificateRequest())
    url = f"{INV}/ssl/refused.test/orders/{order.id}"
    done = wait_for(lambda: (o := ok(b.get(url)))["status"] != "running" and o)
    assert done["status"] == "failed" and done["error_status"] == 502
    assert done["error"] == "the CA refused: rejectedIdentifier"
    assert [e["message"] for e in done["events"]] == ["order accepted", "order created"]
    assert cert_orders.Resumer(b.db, b.settings, stale_s=0.0)() == 0
    assert row(b.db, order.id).attempts == 1

    editor = ok(
        a.post("/api/v1/tokens", json={"name": "ordering", "roles": {"default": "editor"}}), 201
    )
    actor = cert_orders.actor_doc(access.authenticate(a.db, editor["token"]))
    request = cert_orders.request_doc(CertificateRequest(type="internal"))
    late = progress.create(a.db, "default", "refused.test", request, actor)
    orphan(a.db, late.id, "dead-host:1:0000")
    ok(a.client.delete(f"/api/v1/tokens/{editor['id']}",
                       headers={"Authorization": f"Bearer {a.token}"}), 200)  # fmt: skip
    resumer = cert_orders.Resumer(b.db, b.settings, runner="replica-b")
    assert resumer() == 1
    for t in resumer.threads:
        t.join(20)
    doc = ok(b.get(f"{INV}/ssl/refused.test/orders/{late.id}"))
    assert doc["status"] == "failed" and doc["error_status"] == 403
    assert "revoked" in doc["error"]


def test_a_slow_run_that_lost_its_order_commits_nothing(
    replicas: tuple[Replica, Replica],
) -> None:
    """A run that stalled past the heartbeat limit: its order is resumed by another replica;
    when the stalled run wakes, its certificate write is refused (the claim fence) and only
    the resumed run's certificate is stored."""
    a, b = replicas
    ok(a.post(f"{INV}/domains", json={"domain": "slow.test"}), 201)
    before = len(ok(a.get(f"{INV}/ssl/slow.test"))["certificates"])
    wake, refused = threading.Event(), threading.Event()
    request = CertificateRequest(type="internal")

    def stalls(claimed: Claimed, say: progress.Say) -> CertificateIssued:
        wake.wait(30)
        try:  # no progress message first: the commit itself must be refused
            return cert_orders.internal_order(a.db, LOCAL, "default", "slow.test", request)
        except progress.Superseded:
            refused.set()
            raise

    orders = cert_orders.Orders(a.db, a.settings, runner="replica-a", work=stalls, heartbeat_s=3600)
    order = orders.start(LOCAL, "default", "slow.test", request)
    resumer = cert_orders.Resumer(b.db, b.settings, runner="replica-b", stale_s=0.2)
    wait_for(lambda: resumer() == 1)
    for t in resumer.threads:
        t.join(20)
    url = f"{INV}/ssl/slow.test/orders/{order.id}"
    assert ok(a.get(url))["status"] == "valid"
    wake.set()
    assert refused.wait(20)
    assert len(ok(a.get(f"{INV}/ssl/slow.test"))["certificates"]) == before + 1
    assert row(a.db, order.id).runner == "replica-b" and ok(b.get(url))["status"] == "valid"


def test_challenges_left_by_dead_orders_are_removed(replicas: tuple[Replica, Replica]) -> None:
    a, _b = replicas
    ok(a.post(f"{INV}/domains", json={"domain": "leftover.test"}), 201)
    with a.db.transaction(LOCAL, "default") as tx:
        old = acme_challenges.publish(tx, "leftover.test", "http-01", "old-token", "old.value")
        new = acme_challenges.publish(tx, "leftover.test", "http-01", "new-token", "new.value")
        tx.session.execute(
            update(AcmeChallengeRow)
            .where(AcmeChallengeRow.id == old)
            .values(created_at=utcnow() - timedelta(hours=2))
        )
    assert cert_orders.forget_stale_challenges(a.db) == 1
    assert cert_orders.forget_stale_challenges(a.db) == 0
    with a.db.read(LOCAL, "default") as tx:
        left = set(tx.session.scalars(select(AcmeChallengeRow.id)))
    assert new in left and old not in left
