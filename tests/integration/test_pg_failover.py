"""PostgreSQL high availability: a primary and a streaming standby (PostgreSQL's own physical
replication), the control plane (``edgeplane serve``) on libpq's multi-host URL with
``target_session_attrs=read-write``, one edge agent serving a site through nginx.

The primary is lost (an immediate shutdown: no checkpoint, every session cut, as a crash) and
the standby promoted: the same control-plane process takes writes again by itself, having
answered ``503 database-unavailable`` (never a 500) in between; the edge served every request
throughout and then gets the change made after the failover. Before that: every connection
carries short timeouts (a lost host costs seconds), and a control plane pointed at the standby
alone (read-only) answers writes with the same 503.

A failover that loses the last transactions (the standby cut off from the primary's WAL, a
CDN change applied by the edge node, then the crash): the control plane sees the new timeline,
moves the revision counter past the lost revisions and the edge serves what the database says
again, by itself (``services.realign``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from fastapi.testclient import TestClient
from origins import OriginSet, origin_set
from processes import ControlPlane, clean_env, free_port
from sqlalchemy import text

from edgeplane.api.app import create_app
from edgeplane.api.problems import PROBLEMS
from edgeplane.services import access
from edgeplane.settings import Settings
from edgeplane.store.db import PG_CONNECT_DEFAULTS, Database
from edgeplane.store.migrate import upgrade
from pgcluster import PostgresCluster, find_pg_bin
from pgstandby import StandbyCluster
from secret_keys import TEST_SECRET_KEY, TEST_SECRETS

pytestmark = [pytest.mark.integration, pytest.mark.serial]

DATABASE = "edgeplane"
SITE = "failover.localhost"
UNAVAILABLE = PROBLEMS + "database-unavailable"
WRITABLE_WITHIN_S = 30.0  # the acceptance: writable again within 30 s of promotion
# How long no server takes writes, as in a real failover (detecting the loss alone takes
# seconds): longer than the node timeout (5 s) and the runner's lease, which both run out.
OUTAGE_S = 6.0


@dataclass
class Pair:
    primary: PostgresCluster
    standby: StandbyCluster

    def url(self, *, hosts: tuple[PostgresCluster, ...] | None = None, **query: str) -> str:
        """A SQLAlchemy URL naming ``hosts`` (both servers, primary first, by default) in
        libpq's multi-host form, as the documentation gives it: ``?host=H1,H2&port=P1,P2``."""
        chosen = hosts or (self.primary, self.standby)
        params = {
            "host": ",".join("127.0.0.1" for _ in chosen),
            "port": ",".join(str(c.port) for c in chosen),
            **query,
        }
        return f"postgresql+psycopg://postgres@/{DATABASE}?" + "&".join(
            f"{key}={value}" for key, value in params.items()
        )


@contextmanager
def new_pair(base: Path) -> Iterator[Pair]:
    """A primary holding the migrated database and its streaming standby, under ``base``."""
    if find_pg_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed; scripts/bootstrap --with-test installs it")
        pytest.skip("PostgreSQL is not installed (run scripts/bootstrap --with-test)")
    primary = PostgresCluster(base / "pg-primary")
    standby = StandbyCluster(primary, base / "pg-standby")
    try:
        primary.start()
        url = primary.create_database(DATABASE)
        db = Database(url)
        upgrade(db.engine)
        db.dispose()
        standby.start()
        yield Pair(primary, standby)
    finally:
        standby.stop()
        primary.stop()


@pytest.fixture(scope="module")
def pair(tmp_module: Path) -> Iterator[Pair]:
    with new_pair(tmp_module) as made:
        yield made


def start_serve(home: Path, database_url: str) -> ControlPlane:
    """``edgeplane serve`` on the database, once /healthz answers."""
    port = free_port()
    home.parent.mkdir(parents=True, exist_ok=True)
    log = home.parent / f"{home.name}-serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeplane", "serve", "--home", str(home), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_env(EDGEPLANE_DATABASE_URL=database_url),
        )
    cp = ControlPlane(process, home, f"http://127.0.0.1:{port}", log)

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"edgeplane serve exited early:\n{cp.output()}")
        return httpx.get(f"{cp.url}/healthz", timeout=1).status_code == 200

    try:
        wait_for(healthy, 60, "edgeplane serve answers /healthz")
    except BaseException:
        cp.stop(signal.SIGKILL)
        raise
    return cp


def test_connections_carry_short_timeouts_unless_the_url_sets_them(pair: Pair) -> None:
    db = Database(pair.url(target_session_attrs="read-write", connect_timeout="2"))
    try:
        with db.engine.connect() as conn:
            params = conn.connection.dbapi_connection.info.get_parameters()
            assert conn.scalar(text("SELECT inet_server_port()")) == pair.primary.port
    finally:
        db.dispose()
    assert params["connect_timeout"] == "2"  # the URL's
    assert params["tcp_user_timeout"] == str(PG_CONNECT_DEFAULTS["tcp_user_timeout"])
    assert params["keepalives_idle"] == str(PG_CONNECT_DEFAULTS["keepalives_idle"])


# -- a standby alone: writes refused as unavailable -------------------------------------------


def test_on_a_standby_alone_writes_answer_503_database_unavailable(
    pair: Pair, tmp_path: Path
) -> None:
    assert pair.standby.in_recovery()
    db = Database(pair.url(hosts=(pair.standby,)), secrets=TEST_SECRETS)
    settings = Settings(home=tmp_path / "home", database_url=db.url)
    settings.home.mkdir(parents=True)
    settings.secret_key_path.write_text(TEST_SECRET_KEY + "\n")
    # The admin token is made on the primary (a standby takes no writes) and replayed.
    primary_db = Database(pair.url(hosts=(pair.primary,)), secrets=TEST_SECRETS)
    try:
        token = access.ensure_admin_token(primary_db, settings.admin_token_path)
    finally:
        primary_db.dispose()
    pair.standby.wait_replayed()
    app = create_app(settings, db)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            headers = {"Authorization": f"Bearer {token}"}
            write = client.post(
                "/api/v1/infrastructure/domains", headers=headers, json={"domain": "ro.localhost"}
            )
            assert write.status_code == 503, write.text
            assert write.headers["content-type"] == "application/problem+json"
            assert write.headers["retry-after"].isdigit()
            doc = write.json()
            assert doc["type"] == UNAVAILABLE and doc["title"] == "Database unavailable"
            assert "Traceback" not in write.text and "INSERT" not in write.text
    finally:
        db.dispose()


# -- the failover -------------------------------------------------------------------------------


@dataclass
class Outcome:
    at: float  # monotonic time the answer arrived
    what: str  # "read" / "write"
    status: int  # 0: no HTTP answer
    kind: str = ""  # the problem type, or the transport error


@dataclass
class ApiLoad:
    """Reads and writes of the site's DNS records through the API, every answer noted."""

    api: Api
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        records = f"/api/v1/infrastructure/domains/{SITE}/records"
        n = 0
        while not self.stop.is_set():
            n += 1
            self._call("read", "GET", records)
            txt = {"name": f"w{n}", "type": "TXT", "values": [f"v{n}"]}
            self._call("write", "PATCH", records, json={"set": [txt]})
            self.stop.wait(0.1)

    def _call(self, what: str, method: str, path: str, **kw: Any) -> None:
        try:
            r = self.api.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.outcomes.append(Outcome(time.monotonic(), what, 0, repr(exc)))
            return
        kind = r.json().get("type", "") if r.status_code >= 400 else ""
        self.outcomes.append(Outcome(time.monotonic(), what, r.status_code, kind))

    def first_write_after(self, t: float) -> Outcome | None:
        return next(
            (o for o in list(self.outcomes) if o.at > t and o.what == "write" and o.status < 300),
            None,
        )


@dataclass
class EdgeLoad:
    """Requests through the edge node, back to back; failures counted."""

    agent: EdgeAgent
    served: int = 0
    retried: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.agent.url, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    r = self._get(client)
                    if r.status_code == 200 and r.headers.get("x-origin") in ("a", "b"):
                        self.served += 1
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.stop.wait(0.02)

    def _get(self, client: httpx.Client) -> httpx.Response:
        try:
            return client.get("/", headers={"Host": SITE})
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # A keep-alive connection closed by an old nginx worker at a reload (the request
            # was never answered): what browsers do, retry the idempotent request once.
            self.retried += 1
            return client.get("/", headers={"Host": SITE})


@pytest.fixture
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


def test_standby_promoted_the_control_plane_writes_again_and_the_edge_served_throughout(
    pair: Pair, tmp_module: Path, origins: OriginSet
) -> None:
    cp = start_serve(
        tmp_module / "cp",
        pair.url(target_session_attrs="read-write", connect_timeout="2"),
    )
    api = Api(cp)
    agent: EdgeAgent | None = None
    threads: list[threading.Thread] = []
    api_load = edge_load = None
    try:
        pid = cp.process.pid
        a, b = origins.start("a"), origins.start("b")
        api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": SITE})
        cdn = {"origins": [{"url": a.url}], "security": {"force_https": False}}
        api.ok("POST", "/api/v1/infrastructure/cdn", json=cdn)
        agent = new_agent(cp, api, tmp_module, "edge-ha").start()
        edge = agent
        wait_for(
            lambda: edge.get(SITE, "/").headers.get("x-origin") == "a", 60, "the edge serves a"
        )

        api_load, edge_load = ApiLoad(api), EdgeLoad(agent)
        threads = [threading.Thread(target=api_load.run), threading.Thread(target=edge_load.run)]
        for t in threads:
            t.start()
        wait_for(lambda: api_load.first_write_after(0.0), 30, "a write before the failover")
        pair.standby.wait_replayed()

        killed = time.monotonic()
        pair.primary.stop("immediate")
        # The control plane notices (503 on the API) before the standby is promoted.
        wait_for(
            lambda: [o for o in list(api_load.outcomes) if o.at > killed and o.status == 503],
            10,
            "the API answers 503 while no server takes writes",
        )
        time.sleep(max(0.0, killed + OUTAGE_S - time.monotonic()))  # the outage goes on
        pair.standby.promote()
        promoted = time.monotonic()
        first = wait_for(
            lambda: api_load.first_write_after(promoted),
            WRITABLE_WITHIN_S,
            "a write succeeds after the promotion",
        )
        api_load.stop.set()
        print(
            f"\nprimary lost -> promoted: {promoted - killed:.2f} s; promoted -> first "
            f"successful write: {first.at - promoted:.2f} s"
        )
        assert cp.process.poll() is None and cp.process.pid == pid  # no restart

        # A change made now reaches the edge node: it serves origin b.
        cdn["origins"] = [{"url": b.url}]
        revision = api.ok("POST", "/api/v1/infrastructure/cdn", json=cdn)["cdn_deployment"][
            "revision"
        ]
        wait_for(
            lambda: edge.get(SITE, "/").headers.get("x-origin") == "b", 60, "the edge serves b"
        )
        # It acknowledges it, and is live (heartbeats and the liveness monitor work again).
        wait_for(
            lambda: any(
                n["name"] == "edge-ha"
                and (n["applied_revision"] or 0) >= revision
                and n["status"] == "online"
                and n["live"]
                for n in api.nodes()
            ),
            60,
            "the node acknowledges the new revision, online and live",
        )
        assert httpx.get(f"{cp.url}/healthz", timeout=10).status_code == 200
    except BaseException:
        for name, text in (("serve", cp.output()), ("agent", agent.output() if agent else "")):
            print(f"--- {name} log (end) ---\n" + "\n".join(text.splitlines()[-60:]))
        raise
    finally:
        for load in (api_load, edge_load):
            if load is not None:
                load.stop.set()
        for t in threads:
            t.join(30)
        if agent is not None:
            agent.stop()
        api.close()
        cp.stop()

    assert edge_load is not None and api_load is not None
    assert edge_load.failures == [], edge_load.failures[:10]
    assert edge_load.served > 0
    # Every API answer was a success or a 503 database-unavailable: no 500, no cut connection.
    outages = [o for o in api_load.outcomes if o.status >= 300]
    assert all(o.status == 503 and o.kind == UNAVAILABLE for o in outages), outages[:10]
    print(
        f"edge: {edge_load.served} requests served, {len(edge_load.failures)} failed "
        f"({edge_load.retried} retried once after a reload closed their keep-alive "
        f"connection); API: {len(api_load.outcomes)} answers, {len(outages)} of them 503"
    )


# -- a failover that loses the last transactions ----------------------------------------------

# The edge serves the database's state again within this after the promotion (what it takes:
# the agent's retry backoff after the outage, at most 10 s, and one apply).
REALIGNED_WITHIN_S = 30.0


def cut_off(pair: Pair) -> None:
    """The standby stops receiving the primary's WAL (asynchronous replication that falls
    behind): its primary_conninfo emptied, the walreceiver ends at the reload."""
    with psycopg.connect(pair.standby.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
        conn.execute("SELECT pg_reload_conf()")

    def streaming() -> int:
        with psycopg.connect(pair.primary.conninfo(), autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()
        return int(row[0]) if row else 0

    wait_for(lambda: streaming() == 0, 20, "the standby no longer streams")


def test_transactions_lost_in_the_failover_the_edge_follows_the_database_again(
    tmp_module: Path, origins: OriginSet
) -> None:
    with new_pair(tmp_module / "lossy") as lossy:
        url = lossy.url(target_session_attrs="read-write", connect_timeout="2")
        cp = start_serve(tmp_module / "cp-lossy", url)
        api = Api(cp)
        agent: EdgeAgent | None = None
        try:
            a, b = origins.start("a"), origins.start("b")
            api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": SITE})
            cdn = {"origins": [{"url": a.url}], "security": {"force_https": False}}
            api.ok("POST", "/api/v1/infrastructure/cdn", json=cdn)
            agent = new_agent(cp, api, tmp_module, "edge-lossy").start()
            edge = agent

            def serves() -> str | None:
                return edge.get(SITE, "/").headers.get("x-origin")

            wait_for(lambda: serves() == "a", 60, "the edge serves a")
            lossy.standby.wait_replayed()
            cut_off(lossy)

            # A change the standby never receives: the node applies and acknowledges it.
            cdn["origins"] = [{"url": b.url}]
            lost = api.ok("POST", "/api/v1/infrastructure/cdn", json=cdn)["cdn_deployment"][
                "revision"
            ]
            wait_for(lambda: serves() == "b", 60, "the edge serves b (to be lost)")
            wait_for(
                lambda: any(n["applied_revision"] == lost for n in api.nodes()),
                30,
                "the node acknowledges the revision to be lost",
            )

            lossy.primary.stop("immediate")
            lossy.standby.promote()
            promoted = time.monotonic()
            # A change on the new primary first: it takes the lost revision's number again.
            records = f"/api/v1/infrastructure/domains/{SITE}/records"
            txt = {"set": [{"name": "after", "type": "TXT", "values": ["failover"]}]}
            wait_for(
                lambda: api.http.patch(records, json=txt).status_code == 200,
                WRITABLE_WITHIN_S,
                "a write on the new primary",
            )
            written = time.monotonic()

            # The database says a: the edge serves a again, by itself (no restart).
            wait_for(lambda: serves() == "a", REALIGNED_WITHIN_S, "the edge serves a again")
            back = time.monotonic()

            def in_sync() -> dict[str, Any] | None:
                return next(
                    (
                        n
                        for n in api.nodes()
                        if n["in_sync"] and (n["applied_revision"] or 0) > lost
                    ),
                    None,
                )

            synced = wait_for(in_sync, REALIGNED_WITHIN_S, "the node in sync, past the lost one")
            assert synced["applied_revision"] == synced["desired_revision"]
            assert api.ok("GET", "/api/v1/infrastructure/cdn")["origins"][0]["url"] == a.url
            # Realigned by whichever saw it first: the new timeline (at most once a second) or
            # the node's poll naming a revision the database does not have.
            assert "every edge node gets the database's state whole" in cp.output()
            print(
                f"\nlost revision {lost}; promoted -> first write {written - promoted:.2f} s, "
                f"-> the edge serves the database's origin again {back - promoted:.2f} s; "
                f"node in sync at revision {synced['applied_revision']}"
            )
        except BaseException:
            for name, text in (("serve", cp.output()), ("agent", agent.output() if agent else "")):
                print(f"--- {name} log (end) ---\n" + "\n".join(text.splitlines()[-60:]))
            raise
        finally:
            if agent is not None:
                agent.stop()
            api.close()
            cp.stop()
