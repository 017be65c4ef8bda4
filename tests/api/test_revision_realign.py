"""The revision counter realigned when revision numbers may have been used twice
(``services.realign``): a node ahead of the database, a new database timeline; and a control
plane in normal operation that never realigns."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from conftest import Api
from edgeplane.api.app import create_app
from edgeplane.services import realign
from edgeplane.services.realign import MAX_AHEAD, TIMELINE_MARGIN, Realigner
from edgeplane.snapshot.cache import SnapshotCache
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import AuditRow

EDGE = "/api/v1/edge"
DOMAINS = "/api/v1/infrastructure/domains"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def node(api: Api, name: str) -> tuple[str, str]:
    token = ok(api.post("/api/v1/tokens", json={"name": name, "scope": "edge"}), 201)["token"]
    body = {"name": name, "region": "eu-central", "http_port": 8080}
    return ok(api.post(f"{EDGE}/nodes", token=token, json=body))["id"], token


def poll(api: Api, node_id: str, token: str, after: int, have: str | None = None) -> Any:
    params: dict[str, Any] = {"after": after, "refs": "true", "wait": 0}
    if have is not None:
        params["have"] = have
    return ok(api.get(f"{EDGE}/nodes/{node_id}/config", token=token, params=params))


def revision(api: Api) -> int:
    return int(ok(api.get("/api/v1/revision"))["revision"])


def realignments(api: Api) -> list[tuple[int, str, Any, Any]]:
    with api.db.read(LOCAL, "default") as tx:
        rows = tx.session.execute(
            select(AuditRow.revision, AuditRow.object_id, AuditRow.before, AuditRow.after)
            .where(AuditRow.kind == "revision")
            .order_by(AuditRow.id)
        )
        return [tuple(r) for r in rows]


def realigner(api: Api) -> Realigner:
    found: Realigner = api.client.app.state.realigner  # type: ignore[attr-defined]
    return found


def test_a_control_plane_in_normal_operation_never_realigns(api: Api) -> None:
    ok(api.post(DOMAINS, json={"domain": "a.localhost"}), 201)
    node_id, token = node(api, "n1")
    first = poll(api, node_id, token, -1)
    assert first["manifest"] is not None
    patch = {"set": [{"name": "www", "type": "A", "values": ["192.0.2.7"]}]}
    ok(api.patch(f"{DOMAINS}/a.localhost/records", json=patch))
    second = poll(api, node_id, token, first["revision"], first["hash"])
    assert second["revision"] > first["revision"] and second["delta"] is not None
    # Up to date: nothing newer, nothing realigned.
    third = poll(api, node_id, token, second["revision"], second["hash"])
    assert third["revision"] == second["revision"] and third["manifest"] is None
    checked = realigner(api)
    assert checked.timeline is not None  # the timeline was read (1: SQLite, a new server)
    assert checked.realignments == 0 and realignments(api) == []
    assert revision(api) == second["revision"]


def test_a_node_ahead_of_the_database_gets_a_newer_revision_whole(api: Api) -> None:
    ok(api.post(DOMAINS, json={"domain": "a.localhost"}), 201)
    node_id, token = node(api, "n1")
    other_id, other_token = node(api, "n2")
    held = poll(api, node_id, token, -1)
    current = revision(api)
    # The node says it holds a revision 5 ahead (lost in a failover, or the database was
    # restored): it gets the next one at once, whole (its delta base is no revision here).
    got = poll(api, node_id, token, current + 5, held["hash"])
    assert got["revision"] == current + 6
    assert got["manifest"] is not None and got["delta"] is None
    assert got["manifest"]["revision"] == current + 6
    assert set(got["manifest"]["zones"]) == {"a.localhost."}
    [(at, obj, before, after)] = realignments(api)
    assert (at, obj) == (current + 6, f"node:{node_id}")
    assert before == {"revision": current} and after["revision"] == current + 6
    assert realigner(api).realignments == 1
    # Another replica polled by a node of the same lost revision: already past it, no more.
    replica = create_app(api.client.app.state.settings, api.db)  # type: ignore[attr-defined]
    again = replica.state.realigner.node_ahead(other_id, current + 5, current)
    assert again == current + 6 and replica.state.realigner.realignments == 0
    assert len(realignments(api)) == 1
    # That node is behind now: the newest, whole.
    behind = poll(api, other_id, other_token, current + 5)
    assert behind["revision"] == current + 6 and behind["manifest"] is not None
    # A node far ahead is not believed: nothing moves, it is told the database's revision.
    far = poll(api, node_id, token, current + 6 + MAX_AHEAD + 1)
    assert far["revision"] == current + 6 and far["manifest"] is None
    assert len(realignments(api)) == 1 and revision(api) == current + 6


def test_replicas_that_see_a_new_timeline_together_realign_once(api: Api) -> None:
    ok(api.post(DOMAINS, json={"domain": "a.localhost"}), 201)
    node_id, token = node(api, "n1")
    held = poll(api, node_id, token, -1)  # this control plane's cache holds its revision
    current = revision(api)
    # Two replicas find the database on timeline 7 at the same time.
    results: list[int | None] = []
    start = threading.Barrier(2)

    def replica() -> None:
        start.wait()
        results.append(realign.realign_timeline(api.db, 7))

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2 and results.count(None) == 1
    assert current + TIMELINE_MARGIN in results
    [(at, obj, before, after)] = realignments(api)
    assert (at, obj) == (current + TIMELINE_MARGIN, "timeline")
    assert after == {"revision": at, "timeline": 7, "previous_timeline": 1}
    assert before == {"revision": current}
    # This control plane did not realign itself: its cache forgets what it built when it
    # builds past the realignment. The node gets the new revision whole, not as a delta.
    got = poll(api, node_id, token, held["revision"], held["hash"])
    assert got["revision"] == at and got["manifest"] is not None and got["delta"] is None
    snapshots: SnapshotCache = api.client.app.state.snapshots  # type: ignore[attr-defined]
    assert snapshots.last_build[0] == "the revision counter was realigned"

    # A process that starts (or checks) on a database whose timeline is not the recorded one
    # (here 1, its own, against 7) realigns once, and then no more.
    now = [0.0]
    checker = Realigner(api.db, snapshots, clock=lambda: now[0])
    checker.check()
    assert checker.realignments == 1 and checker.timeline == 1
    assert revision(api) == at + TIMELINE_MARGIN
    assert realignments(api)[-1][3]["timeline"] == 1
    now[0] += 0.5
    checker.check()  # too soon: not even read
    now[0] += 5
    checker.check()
    fresh = Realigner(api.db, SnapshotCache(api.db.secrets), clock=lambda: now[0])
    fresh.check()  # a process started now: the timeline is the recorded one
    assert checker.realignments == 1 and fresh.realignments == 0
    assert len(realignments(api)) == 2
