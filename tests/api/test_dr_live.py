"""DR configs that run, over HTTP: the monitor's failover and failback in both modes, the
pools the edge gets, manual steps and their refusals, the timeline, status, drills, roles.

The edge nodes are the tests' own: registered, heartbeating, reporting backend health and
acknowledging revisions through the edge protocol; the monitor's passes are called with the
time they run at (``dr.monitor.run_once(now=...)``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import Api
from edgeplane.dr import monitor
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.backup_tables import BackupRow
from edgeplane.store.tables import DomainRow, utcnow

INV = "/api/v1/infrastructure"
DR = f"{INV}/dr-configs"
EDGE = "/api/v1/edge"
POOL = "lb.default.web"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def problem(r: Any, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    for w in words:
        assert w in doc["detail"], doc
    return doc


class Edge:
    """Two edge nodes of the test's own, speaking the edge protocol."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.token = ok(api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}), 201)[
            "token"
        ]
        self.ids = {}
        for name in ("edge-a", "edge-b"):
            body = {"name": name, "region": "us-east", "http_port": 8080, "address": "127.0.0.9"}
            self.ids[name] = ok(api.post(f"{EDGE}/nodes", token=self.token, json=body))["id"]
            self.beat(name)

    def beat(self, name: str) -> None:
        r = self.api.post(f"{EDGE}/nodes/{self.ids[name]}/heartbeat", token=self.token, json={})
        ok(r, 204)

    def report(self, states: dict[str, str], changed: datetime) -> None:
        """Every node reports the backends ``states`` (key -> up/down) of the pool."""
        for node_id in self.ids.values():
            backends = [
                {
                    "pool": POOL,
                    "backend": key,
                    "state": state,
                    "reason": f"check said {state}",
                    "checked_at": changed.isoformat(),
                    "changed_at": changed.isoformat(),
                }
                for key, state in states.items()
            ]
            r = self.api.post(
                f"{EDGE}/nodes/{node_id}/health", token=self.token, json={"backends": backends}
            )
            ok(r, 204)

    def config(self, name: str = "edge-a") -> dict[str, Any]:
        r = self.api.get(
            f"{EDGE}/nodes/{self.ids[name]}/config", token=self.token, params={"wait": 0}
        )
        return ok(r)  # type: ignore[no-any-return]

    def pool(self) -> dict[str, tuple[bool, str]]:
        pools = {p["id"]: p for p in self.config()["config"]["pools"]}
        return {b["key"]: (b["backup"], b["state"]) for b in pools[POOL]["backends"]}

    def ack_all(self) -> int:
        """Every node applies the newest revision."""
        revision = 0
        for name, node_id in self.ids.items():
            doc = self.config(name)
            revision = doc["revision"]
            body = {"revision": revision, "hash": doc["hash"], "ok": True, "apply_ms": 5}
            ok(self.api.post(f"{EDGE}/nodes/{node_id}/ack", token=self.token, json=body))
        return int(revision)


@pytest.fixture
def settings(api: Api, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=api.db.url,
        node_timeout_s=60.0,
        dr_detect_s=3.0,
        dr_failback_after_s=60.0,
    )


def topology(api: Api, **dr: Any) -> None:
    """Data centers dc-a (primary) and dc-b (backup), a server in each, a load balancer over
    both (a1 by id and port, b1 by its address), a site served through it, a DR config."""
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            DomainRow(name="web.test", project_id="default", environment="prod", status="active")
        )
    for dc, location in (("dc-a", "us-east"), ("dc-b", "eu-central")):
        body = {
            "id": dc,
            "name": dc,
            "location": location,
            "tier": 3,
            "capacity": {"cpu": 100, "memory": 400, "storage": 1000},
        }
        ok(api.post(f"{INV}/datacenters", json=body), 201)
    for server, dc, address in (("a1", "dc-a", "10.0.1.1"), ("b1", "dc-b", "10.0.2.1")):
        body = {
            "id": server,
            "name": server,
            "type": "primary",
            "data_center_id": dc,
            "address": address,
            "capacity": {"cpu": 8, "memory": 32, "storage": 10},
        }
        ok(api.post(f"{INV}/servers", json=body), 201)
    lb = {
        "id": "web",
        "backends": [{"address": "a1", "port": 8080}, {"address": "10.0.2.1:8080"}],
        "health_check": {"path": "/health", "interval_s": 1, "timeout_s": 0.5},
    }
    ok(api.post(f"{INV}/loadbalancer", json=lb), 201)
    body = {
        "id": "dr-web",
        "name": "web",
        "primary_dc": "dc-a",
        "backup_dc": "dc-b",
        "rpo": 0.5,
        "rto": 1,
        **dr,
    }
    ok(api.post(DR, json=body), 201)


def events(api: Api, **params: Any) -> list[dict[str, Any]]:
    return list(ok(api.get(f"{DR}/dr-web/events", params=params))["items"])


def kinds(api: Api) -> list[str]:
    return [e["kind"] for e in reversed(events(api))]


def status(api: Api) -> dict[str, Any]:
    return ok(api.get(f"{DR}/dr-web/status"))  # type: ignore[no-any-return]


PRIMARY_UP = {"a1:8080": "up", "10.0.2.1:8080": "up"}
PRIMARY_DOWN = {"a1:8080": "down", "10.0.2.1:8080": "up"}


def firing(api: Api, rule: str) -> list[str]:
    """The objects a shipped alert rule fires for, after one pass of the rule engine."""
    from edgeplane.services import alert_engine

    alert_engine.Engine(api.db).evaluate()
    alerts = ok(api.get("/api/v1/alerts"))
    return sorted(a["object_id"] for a in alerts if a["rule"] == rule and a["state"] == "firing")


def test_modes_and_fractional_objectives(api: Api) -> None:
    topology(api, failover_mode="confirmed", rto=0.05)
    doc = ok(api.get(f"{DR}/dr-web"))
    assert (doc["rto"], doc["rpo"]) == (0.05, 0.5)
    assert (doc["failover_mode"], doc["failback_mode"], doc["drill_every_days"]) == (
        "confirmed",
        "automatic",
        30,
    )
    doc = ok(
        api.patch(f"{DR}/dr-web", json={"failback_mode": "confirmed", "drill_every_days": None})
    )
    assert (doc["failback_mode"], doc["drill_every_days"], doc["rto"]) == ("confirmed", None, 0.05)
    for field, value in (
        ("failover_mode", "sometimes"),
        ("drill_every_days", 0),
        ("drill_every_days", 367),
        ("rto", 0),
        ("rpo", 10080.5),
    ):
        r = api.patch(f"{DR}/dr-web", json={field: value})
        assert r.status_code == 422 and r.json()["field"] == field, (field, r.text)
    st = status(api)
    assert (st["status"], st["active"], st["active_dc"]) == ("normal", "primary", "dc-a")
    assert st["primary_health"] == {
        "state": "unknown",
        "since": None,
        "reason": "not observed yet",
        "detail": {},
    }
    assert st["next_drill_due"] is None and st["last_drill"] is None


def test_automatic_failover_and_failback_by_the_monitor(api: Api, settings: Settings) -> None:
    topology(api)
    edge = Edge(api)
    assert edge.pool() == {"a1:8080": (False, "active"), "10.0.2.1:8080": (True, "active")}
    t0 = utcnow()
    edge.report(PRIMARY_UP, t0)
    monitor.run_once(api.db, settings, t0)
    assert status(api)["primary_health"]["state"] == "up"
    revision = int(ok(api.get("/api/v1/revision"))["revision"])
    # the primary's backend fails on both nodes; nothing moves before dr_detect_s
    down_at = t0 + timedelta(seconds=1)
    edge.report(PRIMARY_DOWN, down_at)
    assert monitor.run_once(api.db, settings, down_at + timedelta(seconds=2)) == 0
    st = status(api)
    assert (st["status"], st["primary_health"]["state"]) == ("normal", "down")
    assert "all 1 backend(s) down" in st["primary_health"]["reason"]
    assert int(ok(api.get("/api/v1/revision"))["revision"]) == revision, "health is not state"
    assert monitor.run_once(api.db, settings, down_at + timedelta(seconds=3.5)) == 2
    st = status(api)
    assert (st["status"], st["active"], st["active_dc"]) == ("failed_over", "backup", "dc-b")
    assert [e["kind"] for e in st["episode_events"]] == ["detected", "switched"]
    switched = st["episode_events"][1]
    assert (
        switched["detail"]["to"] == "backup"
        and st["awaiting_revision"] == switched["detail"]["revision"]
    )
    # every node gets the pools with the primary drained, the backup serving
    assert edge.pool() == {"a1:8080": (False, "draining"), "10.0.2.1:8080": (False, "active")}
    audit = ok(api.get("/api/v1/audit", params={"kind": "dr_state"}))["items"]
    assert audit[0]["action"] == "switched" and audit[0]["after"]["active"] == "backup"
    # served once every live node applied the revision
    assert monitor.run_once(api.db, settings, down_at + timedelta(seconds=4)) == 0
    edge.ack_all()
    assert monitor.run_once(api.db, settings, down_at + timedelta(seconds=5)) == 1
    served = events(api)[0]
    assert served["kind"] == "served" and served["detail"]["to"] == "backup"
    seconds = served["detail"]["seconds"]
    assert seconds["down_to_served"] >= seconds["detected_to_served"] >= 0
    assert served["detail"]["within_rto"] is True and served["detail"]["nodes"] == [
        "edge-a",
        "edge-b",
    ]
    assert status(api)["awaiting_revision"] is None
    # the primary comes back: failback after dr_failback_after_s of health
    up_at = down_at + timedelta(seconds=10)
    edge.report(PRIMARY_UP, up_at)
    monitor.run_once(api.db, settings, up_at + timedelta(seconds=30))
    assert status(api)["status"] == "failed_over"
    assert monitor.run_once(api.db, settings, up_at + timedelta(seconds=61)) == 2
    assert edge.pool() == {"a1:8080": (False, "active"), "10.0.2.1:8080": (True, "active")}
    st = status(api)
    assert (st["status"], st["active"]) == ("normal", "primary") and st["episode"] is not None
    edge.ack_all()
    monitor.run_once(api.db, settings, up_at + timedelta(seconds=62))
    st = status(api)
    assert st["episode"] is None and st["episode_events"] == [], "closed once served"
    assert kinds(api) == [
        "detected",
        "switched",
        "served",
        "recovered",
        "failback",
        "served",
    ]
    episode = {e["episode"] for e in events(api)}
    assert len(episode) == 1
    # newest first, in pages
    page = ok(api.get(f"{DR}/dr-web/events", params={"limit": 4}))
    assert [e["kind"] for e in page["items"]] == ["served", "failback", "recovered", "served"]
    rest = ok(api.get(f"{DR}/dr-web/events", params={"cursor": page["next_cursor"]}))
    assert [e["kind"] for e in rest["items"]] == ["switched", "detected"]
    assert rest["next_cursor"] is None
    r = api.get(f"{DR}/dr-web/events", params={"cursor": "x"})
    assert r.status_code == 422 and r.json()["field"] == "cursor"


def test_no_failover_to_a_backup_that_is_down_too(api: Api, settings: Settings) -> None:
    topology(api)
    edge = Edge(api)
    t0 = utcnow()
    edge.report({"a1:8080": "down", "10.0.2.1:8080": "down"}, t0)
    monitor.run_once(api.db, settings, t0 + timedelta(seconds=10))
    st = status(api)
    assert (st["status"], st["primary_health"]["state"]) == ("normal", "down")
    edge.report(PRIMARY_DOWN, t0 + timedelta(seconds=11))  # the backup is back
    monitor.run_once(api.db, settings, t0 + timedelta(seconds=12))
    assert status(api)["status"] == "failed_over"


def test_confirmed_mode_waits_for_an_operator(api: Api, settings: Settings) -> None:
    topology(api, failover_mode="confirmed", failback_mode="confirmed")
    edge = Edge(api)
    # confirmed: the backup is out of rotation (but checked) until a failover is confirmed
    assert edge.pool() == {"a1:8080": (False, "active"), "10.0.2.1:8080": (False, "draining")}
    t0 = utcnow()
    edge.report(PRIMARY_DOWN, t0)
    assert monitor.run_once(api.db, settings, t0 + timedelta(seconds=4)) == 2
    st = status(api)
    assert (st["status"], st["active"]) == ("failover_pending", "primary")
    assert [e["kind"] for e in st["episode_events"]] == ["detected", "pending"]
    assert edge.pool()["10.0.2.1:8080"] == (False, "draining"), "nothing moved yet"
    problem(
        api.post(f"{DR}/dr-web/failback", json={"reason": "x"}),
        409,
        "on the primary data center already",
        "POST .../failover",
    )
    viewer = api.token("viewer")
    problem(api.post(f"{DR}/dr-web/failover", token=viewer, json={"reason": "x"}), 403)
    assert ok(api.get(f"{DR}/dr-web/status", token=viewer))["status"] == "failover_pending"
    r = api.post(f"{DR}/dr-web/failover", json={})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = api.post(f"{DR}/dr-web/failover", json={"reason": "  "})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    editor = api.token("editor")
    st = ok(api.post(f"{DR}/dr-web/failover", token=editor, json={"reason": "dc-a is flooded"}))
    assert (st["status"], st["active"]) == ("failed_over", "backup")
    confirmed = st["episode_events"][2]
    assert confirmed["kind"] == "confirmed" and confirmed["actor"].startswith("editor-token")
    assert confirmed["detail"] == {"action": "failover", "reason": "dc-a is flooded"}
    assert "dc-a is flooded" in confirmed["message"]
    assert edge.pool() == {"a1:8080": (False, "draining"), "10.0.2.1:8080": (False, "active")}
    problem(
        api.post(f"{DR}/dr-web/failover", json={"reason": "again"}),
        409,
        "backup data center already",
    )
    # the primary recovers: the failback waits too
    up_at = t0 + timedelta(seconds=10)
    edge.report(PRIMARY_UP, up_at)
    monitor.run_once(api.db, settings, up_at + timedelta(seconds=61))
    assert status(api)["status"] == "failback_pending"
    assert edge.pool()["a1:8080"] == (False, "draining")
    st = ok(api.post(f"{DR}/dr-web/failback", json={"reason": "dc-a is dry"}))
    assert (st["status"], st["active"]) == ("normal", "primary")
    assert [e["kind"] for e in st["episode_events"]][-2:] == ["confirmed", "failback"]
    assert edge.pool()["10.0.2.1:8080"] == (False, "draining")


def test_a_forced_failover_holds_until_a_failback(api: Api, settings: Settings) -> None:
    topology(api)
    edge = Edge(api)
    t0 = utcnow()
    edge.report(PRIMARY_UP, t0)
    monitor.run_once(api.db, settings, t0)
    st = ok(api.post(f"{DR}/dr-web/failover", json={"reason": "maintenance of dc-a"}))
    assert (st["status"], st["manual"]) == ("failed_over", True)
    assert [e["kind"] for e in st["episode_events"]] == ["forced", "switched"]
    assert firing(api, "dr-failover") == ["dr-web"]  # the shipped rule: critical
    monitor.run_once(api.db, settings, t0 + timedelta(seconds=80))
    assert status(api)["status"] == "failed_over", "no automatic failback of a forced one"
    st = ok(api.post(f"{DR}/dr-web/failback", json={"reason": "maintenance over"}))
    assert (st["status"], st["active"], st["manual"]) == ("normal", "primary", True)
    assert firing(api, "dr-failover") == []
    problem(
        api.post(f"{DR}/dr-web/failback", json={"reason": "x"}), 409, "primary data center already"
    )
    problem(api.post(f"{DR}/nope/failover", json={"reason": "x"}), 404, "nope")


def test_drills_refuse_what_makes_no_sense(api: Api, settings: Settings) -> None:
    topology(api)
    edge = Edge(api)
    problem(api.post(f"{DR}/dr-web/drills", token=api.token("viewer")), 403)
    problem(api.post(f"{DR}/nope/drills"), 404)
    t0 = utcnow()
    edge.report(PRIMARY_DOWN, t0)
    problem(api.post(f"{DR}/dr-web/drills"), 409, "the primary is down")
    monitor.run_once(api.db, settings, t0 + timedelta(seconds=4))
    problem(api.post(f"{DR}/dr-web/drills"), 409, "a failover is open", "failed_over")
    edge.report({"a1:8080": "up", "10.0.2.1:8080": "down"}, t0 + timedelta(seconds=5))
    ok(api.post(f"{DR}/dr-web/failback", json={"reason": "back"}))
    problem(api.post(f"{DR}/dr-web/drills"), 409, "the backup data center dc-b is down")
    assert ok(api.get(f"{DR}/dr-web/drills"))["items"] == []


def test_a_drill_runs_its_steps_restores_the_primary_and_reports(
    api: Api, settings: Settings
) -> None:
    """No live edge node here: the drill cannot see traffic served, so it fails, after every
    step, with the primary restored; the RPO is measured from the backup catalog."""
    topology(api, rpo=1)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            BackupRow(
                id="full-1",
                kind="full",
                engine="sqlite",
                created_at=utcnow() - timedelta(seconds=20),
                verify_ok=True,
            )
        )
        tx.session.add(
            BackupRow(
                id="full-bad", kind="full", engine="sqlite", created_at=utcnow(), verify_ok=False
            )
        )
    r = api.post(f"{DR}/dr-web/drills", params={"wait": "true", "timeout": 60})
    drill = ok(r, 200)
    assert drill["status"] == "failed" and drill["finished_at"] is not None
    assert [s["step"] for s in drill["steps"]] == [
        "alert_assessment",
        "notification",
        "impact_analysis",
        "recovery_initiation",
        "service_restoration",
        "verification",
        "documentation",
    ]
    steps = {s["step"]: s for s in drill["steps"]}
    for s in drill["steps"]:
        assert s["started_at"] <= s["ended_at"], s
    assert steps["alert_assessment"]["ok"] is True
    assert steps["notification"]["detail"]["note"].startswith("no notification channel")
    impact = steps["impact_analysis"]["detail"]
    assert impact["load_balancers"] == [
        {"id": "web", "pool": POOL, "primary": ["a1:8080"], "backup": ["10.0.2.1:8080"]}
    ]
    assert impact["capacity"]["fits"] is True
    assert steps["recovery_initiation"]["ok"] is True
    assert steps["recovery_initiation"]["detail"]["drained"] == [f"{POOL}/a1:8080"]
    assert steps["service_restoration"]["ok"] is False
    assert "no live edge node" in steps["service_restoration"]["detail"]["error"]
    assert drill["rto_s"] is None and drill["rto_ok"] is False
    assert 19 <= drill["rpo_s"] < 60 and drill["rpo_ok"] is True, "the newest good backup"
    assert drill["report"]["rpo"]["backup"]["id"] == "full-1"
    assert "RTO not measured" in drill["message"] and "RPO" in drill["message"]
    assert firing(api, "dr-drill-failed") == ["dr-web"]
    assert drill["report"]["restore"]["restored"] is True
    st = status(api)
    assert (st["status"], st["active"], st["episode"]) == ("normal", "primary", None)
    assert st["last_drill"]["id"] == drill["id"]
    assert st["next_drill_due"] > drill["started_at"]
    assert [(e["kind"], e["detail"].get("phase")) for e in reversed(events(api))] == [
        ("drill", "started"),
        ("drill", "initiated"),
        ("switched", None),
        ("restored", None),
        ("served", None),
        ("drill", "finished"),
    ]
    listed = ok(api.get(f"{DR}/dr-web/drills"))["items"]
    assert [d["id"] for d in listed] == [drill["id"]]
    assert ok(api.get(f"{DR}/dr-web/drills/{drill['id']}"))["status"] == "failed"
    problem(api.get(f"{DR}/dr-web/drills/drill-nope"), 404)
    # without a good backup the recovery point is unknown: the drill says so
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.get(BackupRow, "full-1").verify_ok = False  # type: ignore[union-attr]
    r = api.post(f"{DR}/dr-web/drills")
    started = ok(r)  # embedded (no runner): the drill ran in the call
    assert started["status"] == "failed"
    done = _wait_drill(api, started["id"])
    assert done["rpo_s"] is None and done["rpo_ok"] is False
    assert "no good full or incremental backup" in done["message"]


def _wait_drill(api: Api, drill_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc: dict[str, Any] = ok(api.get(f"{DR}/dr-web/drills/{drill_id}"))
        if doc["status"] not in ("queued", "running"):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"drill {drill_id} still running")


def test_a_drill_that_errors_midway_restores_the_primary(
    api: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeplane.dr import drill as drills
    from edgeplane.dr.drill_steps import Run

    def broken(run: Run) -> tuple[bool, dict[str, Any]]:
        assert status(api)["status"] == "drill", "the primary is out when it breaks"
        raise RuntimeError("the verification broke")

    plan = tuple((name, broken if name == "verification" else fn) for name, fn in drills.PLAN)
    monkeypatch.setattr(drills, "PLAN", plan)
    topology(api)
    drill = ok(api.post(f"{DR}/dr-web/drills", params={"wait": "true", "timeout": 60}))
    assert drill["status"] == "error" and "the verification broke" in drill["message"]
    assert drill["report"]["restore"]["restored"] is True
    st = status(api)
    assert (st["status"], st["active"], st["episode"]) == ("normal", "primary", None)
    assert [e["kind"] for e in events(api)][:3] == ["drill", "served", "restored"]


def test_an_abandoned_drill_is_ended_by_the_monitor(api: Api, settings: Settings) -> None:
    from edgeplane.dr import drill as drills
    from edgeplane.dr.drill_steps import Run, initiate
    from edgeplane.store.dr_tables import DRDrillRow

    topology(api)
    drill_id = drills.start(api.db, settings, "default", "dr-web", LOCAL)
    assert drills.claim(api.db, drill_id) and not drills.claim(api.db, drill_id)  # one taker
    run = Run(api.db, settings, drill_id, "default", "dr-web", "local", 60, 30)
    initiate(run)  # the process stops here (the primary drained)
    assert status(api)["status"] == "drill"
    monitor.run_once(api.db, settings)
    assert status(api)["status"] == "drill", "alive: the drill goes on"
    later = utcnow() + timedelta(seconds=monitor.ABANDON_S + 1)
    assert monitor.run_once(api.db, settings, later) >= 1
    st = status(api)
    assert (st["status"], st["active"]) == ("normal", "primary")
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.get(DRDrillRow, drill_id)
        assert row is not None and row.status == "error" and "abandoned" in row.message
    restored = next(e for e in events(api) if e["kind"] == "restored")
    assert restored["detail"]["abandoned"] is True


def test_a_config_deleted_takes_its_state_and_timeline(api: Api, settings: Settings) -> None:
    topology(api)
    ok(api.post(f"{DR}/dr-web/failover", json={"reason": "test"}))
    assert events(api)
    ok(api.delete(f"{DR}/dr-web"), 204)
    problem(api.get(f"{DR}/dr-web/status"), 404)
    assert monitor.run_once(api.db, settings) == 0


def test_scheduled_drills_when_due(api: Api, settings: Settings) -> None:
    from edgeplane.dr.drill import due_drills, run_due_drills

    topology(api, drill_every_days=7)
    assert due_drills(api.db, settings) == []
    later = utcnow() + timedelta(days=8)
    assert due_drills(api.db, settings, later) == [("default", "dr-web")]
    ok(api.post(f"{DR}/dr-web/failover", json={"reason": "maintenance"}))
    assert due_drills(api.db, settings, later) == [], "not while failed over"
    ok(api.post(f"{DR}/dr-web/failback", json={"reason": "done"}))
    (drill_id,) = run_due_drills(api.db, settings, now=later)
    drill = ok(api.get(f"{DR}/dr-web/drills/{drill_id}"))
    assert (drill["trigger"], drill["actor"], drill["status"]) == (
        "schedule",
        "edgeplane-dr",
        "failed",
    )
    in_6_days, in_8_days = utcnow() + timedelta(days=6), utcnow() + timedelta(days=8)
    assert due_drills(api.db, settings, in_6_days) == [], "due 7 days after the last drill"
    assert due_drills(api.db, settings, in_8_days) == [("default", "dr-web")]
    ok(api.patch(f"{DR}/dr-web", json={"drill_every_days": None}))
    assert due_drills(api.db, settings, utcnow() + timedelta(days=400)) == []
