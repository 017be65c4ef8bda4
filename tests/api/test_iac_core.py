"""Infrastructure as code, the engine: all or nothing, errors that name the object, saved plans
refused when the state moved, one apply at a time per project, drift with who changed what,
the background drift check and its alert series, and the REST API's rules.

On SQLite and PostgreSQL (the ``db`` fixture), through ``edgeplane.iac.service`` as the REST
API calls it, and over HTTP for the API's own rules."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import Api
from edgeplane.errors import Conflict, InvalidInput
from edgeplane.iac import drift_check, lock, service
from edgeplane.services import series
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.tables import AuditRow, DataCenterRow

P = "default"


def settings_for(db: Database, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=db.url)


def dc(n: int, **kw: Any) -> dict[str, Any]:
    item = {
        "id": f"dc-{n:03d}",
        "name": f"DC {n}",
        "location": "us-east",
        "tier": 3,
        "capacity": {"cpu": 100, "memory": 200, "storage": 1000},
    }
    item.update(kw)
    return item


def doc(*items: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"version": 1, "data_centers": list(items), **sections}


def count_dcs(db: Database) -> int:
    with db.read(LOCAL, P) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(DataCenterRow)) or 0)


def test_the_50th_of_100_objects_invalid_is_named_and_nothing_changes(
    db: Database, tmp_path: Path
) -> None:
    s = settings_for(db, tmp_path)
    items = [dc(n) for n in range(1, 101)]
    items[49] = dc(50, capacity={"cpu": -1, "memory": 200, "storage": 1000})
    before = db.current_revision()
    for run in (service.plan, service.apply):
        with pytest.raises(InvalidInput) as exc:
            run(db, LOCAL, P, s, doc(*items))
        assert exc.value.field == "data_centers[dc-050].capacity.cpu"
        assert "data_centers[dc-050] (item 50 of the section)" in exc.value.message
    # refused by a service while running (a location that does not exist): rolled back whole
    items[49] = dc(50, location="mars-north")
    with pytest.raises(InvalidInput) as exc:
        service.apply(db, LOCAL, P, s, doc(*items))
    assert exc.value.field is not None and exc.value.field.startswith("data_centers[dc-050]")
    assert db.current_revision() == before
    assert count_dcs(db) == 0


def test_apply_is_one_revision_and_a_second_apply_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    s = settings_for(db, tmp_path)
    before = db.current_revision()
    first = service.apply(db, LOCAL, P, s, doc(dc(1), dc(2), dc(3)))
    assert first.doc()["summary"] == {"create": 3, "update": 0, "replace": 0, "delete": 0}
    assert first.revision == before + 1 == db.current_revision()
    with db.read(LOCAL, P) as tx:
        revisions = set(
            tx.session.scalars(select(AuditRow.revision).where(AuditRow.revision > before))
        )
    assert revisions == {first.revision}  # three creates, one revision
    again = service.apply(db, LOCAL, P, s, doc(dc(1), dc(2), dc(3)))
    assert not again.changes and again.revision == first.revision == db.current_revision()
    # left alone unless pruned
    kept = service.plan(db, LOCAL, P, s, doc(dc(1)))
    assert not kept.changes and kept.doc()["unmanaged"] == {"data_centers": 2}
    pruned = service.plan(db, LOCAL, P, s, doc(dc(1)), prune=True)
    assert [(c["key"], c["action"]) for c in pruned.doc()["changes"]] == [
        ("dc-003", "delete"),
        ("dc-002", "delete"),
    ]
    assert count_dcs(db) == 3  # a plan writes nothing


def test_a_saved_plan_is_refused_when_the_state_moved(db: Database, tmp_path: Path) -> None:
    s = settings_for(db, tmp_path)
    service.apply(db, LOCAL, P, s, doc(dc(1)))
    planned = service.plan(db, LOCAL, P, s, doc(dc(1, name="renamed")))
    change = planned.doc()["changes"][0]
    assert change["fields"] == [{"path": "name", "before": "DC 1", "after": "renamed"}]
    with db.transaction(LOCAL, P) as tx:  # someone else changes the state meanwhile
        from edgeplane.services import datacenters

        datacenters.update(tx, "dc-001", {"tier": 4})
    with pytest.raises(Conflict) as exc:
        service.apply(db, LOCAL, P, s, doc(dc(1, name="renamed")), expect_state=planned.state)
    assert exc.value.field == "plan" and "changed since this plan" in exc.value.message
    fresh = service.plan(db, LOCAL, P, s, doc(dc(1, name="renamed")))
    done = service.apply(db, LOCAL, P, s, doc(dc(1, name="renamed")), expect_state=fresh.state)
    assert {(f["path"], f["after"]) for f in done.doc()["changes"][0]["fields"]} == {
        ("name", "renamed"),
        ("tier", 3),
    }


def test_a_second_apply_waits_or_is_refused_naming_the_holder(db: Database, tmp_path: Path) -> None:
    s = settings_for(db, tmp_path)
    release = threading.Event()
    taken = threading.Event()

    def hold() -> None:
        from edgeplane.store.actor import Actor

        with lock.held(db, Actor(name="ci-bot (tok_1)", local=True), P):
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(10)
        with pytest.raises(Conflict) as exc:
            service.apply(db, LOCAL, P, s, doc(dc(1)))
        assert "held by ci-bot (tok_1) since" in exc.value.message
        assert exc.value.extra["holder"] == "ci-bot (tok_1)"
        threading.Timer(0.5, release.set).start()
        began = time.monotonic()
        done = service.apply(db, LOCAL, P, s, doc(dc(1)), lock_timeout_s=10)
        assert done.applied and time.monotonic() - began >= 0.4  # it waited, then ran
    finally:
        release.set()
        holder.join()


def test_two_concurrent_applies_never_interleave(db: Database, tmp_path: Path) -> None:
    s = settings_for(db, tmp_path)
    files = {who: doc(*(dc(n, name=f"{who} {n}") for n in range(1, 61))) for who in ("A", "B")}
    results: dict[str, Any] = {}

    def run(who: str) -> None:
        try:
            results[who] = service.apply(db, LOCAL, P, s, files[who], lock_timeout_s=60)
        except Exception as exc:
            results[who] = exc

    threads = [threading.Thread(target=run, args=(w,)) for w in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    with db.read(LOCAL, P) as tx:
        names = {n.split()[0] for n in tx.session.scalars(select(DataCenterRow.name))}
        by_revision: dict[int, set[str]] = {}
        for rev, after in tx.session.execute(
            select(AuditRow.revision, AuditRow.after).where(AuditRow.kind == "data_center")
        ):
            by_revision.setdefault(rev, set()).add(after["name"].split()[0])
    assert len(names) == 1  # all from the apply that ran last
    assert sorted(len(v) for v in by_revision.values()) == [1, 1]  # each revision one apply's
    assert len(by_revision) == 2


def test_drift_names_what_changed_since_the_apply_and_who(api: Api, tmp_path: Path) -> None:
    db = api.db
    s = settings_for(db, tmp_path)
    service.apply(db, LOCAL, P, s, doc(dc(1), dc(2)))
    report = service.drift_report(db, LOCAL, P, s)
    assert report["drifted"] == [] and report["applied"]["actor"] == "local"
    editor = api.token("editor")
    r = api.patch("/api/v1/infrastructure/datacenters/dc-002", json={"tier": 4}, token=editor)
    assert r.status_code == 200, r.text
    r = api.delete("/api/v1/infrastructure/datacenters/dc-001", token=editor)
    assert r.status_code == 204, r.text
    got = api.get("/api/v1/iac/drift").json()
    assert [(d["key"], d["change"]) for d in got["drifted"]] == [
        ("dc-001", "deleted"),
        ("dc-002", "changed"),
    ]
    changed = got["drifted"][1]
    assert changed["fields"] == [{"path": "tier", "before": 3, "after": 4}]
    assert [e["actor"] for e in changed["changed_by"]] == [
        e["actor"] for e in got["drifted"][0]["changed_by"]
    ]
    assert changed["changed_by"][0]["actor"].startswith("editor-token (tok-")
    # the background check counts them for the series (and the config-drift rule)
    assert drift_check.run_once(db, s) == 1
    with db.read(LOCAL, P) as tx:
        assert series.current(tx, P, "config_drift_objects") == {P: 2.0}
    rules = {r["id"]: r for r in api.get("/api/v1/alerts/rules").json()}
    assert rules["config-drift"]["series"] == "config_drift_objects"
    # a new apply of the file is the new baseline
    service.apply(db, LOCAL, P, s, doc(dc(1), dc(2)))
    assert service.drift_report(db, LOCAL, P, s)["drifted"] == []
    assert drift_check.run_once(db, s) == 0
    with db.read(LOCAL, P) as tx:
        assert series.current(tx, P, "config_drift_objects") == {P: 0.0}


def test_the_rest_api_plans_applies_and_keeps_its_rules(api: Api) -> None:
    body = {"document": doc(dc(1))}
    viewer = api.token("viewer")
    r = api.post("/api/v1/iac/plan", json=body, token=viewer)
    assert r.status_code == 200, r.text
    assert r.json()["summary"]["create"] == 1 and r.json()["applied"] is False
    assert api.post("/api/v1/iac/apply", json=body, token=viewer).status_code == 403
    wrong = api.post("/api/v1/iac/plan", json={"document": {**doc(dc(1)), "project": "other"}})
    assert wrong.status_code == 422 and wrong.json()["field"] == "project"
    unknown = api.post("/api/v1/iac/plan", json={"document": {"version": 1, "dcs": []}})
    assert unknown.status_code == 422 and unknown.json()["field"] == "dcs"
    r = api.post("/api/v1/iac/apply", json=body)
    assert r.status_code == 200 and r.json()["applied"] is True
    applied = api.get("/api/v1/iac/applied").json()
    assert applied["document"]["data_centers"][0]["id"] == "dc-001"
    exported = api.get("/api/v1/iac/export").json()
    assert exported["data_centers"] == [
        {
            "id": "dc-001",
            "name": "DC 1",
            "region": "na",
            "location": "us-east",
            "tier": 3,
            "capacity": {"cpu": 100.0, "memory": 200.0, "storage": 1000.0},
        }
    ]
    schema = api.get("/api/v1/iac/schema").json()
    assert {"domains", "load_balancers", "cdn", "data_centers", "channels"} <= set(
        schema["properties"]
    )
    assert schema["additionalProperties"] is False
