"""Heartbeats that say nothing new are written in batches, never letting a live node's stored
heartbeat age past the node timeout; those that say something are written at once."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from conftest import Api
from edgeplane.services import liveness
from edgeplane.services.heartbeats import HeartbeatBuffer
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.tables import EdgeNodeRow, utcnow

EDGE = "/api/v1/edge"
TIMEOUT_S = 1.5  # fresh for 0.5 s


def _node(api: Api) -> tuple[str, str, HeartbeatBuffer]:
    r = api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"})
    token = r.json()["token"]
    r = api.post(f"{EDGE}/nodes", token=token, json={"name": "n1", "region": "eu-central"})
    assert r.status_code == 200, r.text
    buffer = HeartbeatBuffer(api.db, Settings(home=api.tmp / "home", node_timeout_s=TIMEOUT_S))
    api.client.app.state.heartbeats = buffer  # type: ignore[attr-defined]
    return token, r.json()["id"], buffer


def _beat(api: Api, token: str, node: str, **body: Any) -> None:
    r = api.post(f"{EDGE}/nodes/{node}/heartbeat", token=token, json=body)
    assert r.status_code == 204, r.text


def _stored(api: Api, node: str) -> tuple[Any, bool]:
    with api.db.read(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.get(EdgeNodeRow, node)
        assert row is not None
        return row.heartbeat_at, node in liveness.live_ids(tx)


def test_quiet_heartbeats_are_batched_and_keep_the_node_live(api: Api) -> None:
    token, node, buffer = _node(api)
    _beat(api, token, node, dns_serials={})  # the first beat: written, the node goes live
    first, live = _stored(api, node)
    assert first is not None and live and buffer.writes == 1
    for _ in range(5):
        _beat(api, token, node, dns_serials=None)  # nothing new: kept in memory
    assert _stored(api, node)[0] == first and buffer.batched == 5 and buffer.writes == 1
    # Beating every 0.1 s for 3 s: the stored heartbeat never gets older than the node
    # timeout, and is written about every 0.5 s rather than 30 times.
    deadline = time.monotonic() + 3.0
    oldest = timedelta(0)
    while time.monotonic() < deadline:
        _beat(api, token, node, dns_serials=None)
        stored, live = _stored(api, node)
        assert live
        oldest = max(oldest, utcnow() - stored)
        time.sleep(0.1)
    assert oldest < timedelta(seconds=TIMEOUT_S), oldest
    assert 3 <= buffer.writes <= 1 + 3.0 / 0.5 + 2, buffer.writes
    nodes = {n["id"]: n for n in api.get(f"{EDGE}/nodes").json()}
    assert nodes[node]["live"] is True


def test_a_heartbeat_that_says_something_is_written_at_once(api: Api) -> None:
    token, node, buffer = _node(api)
    _beat(api, token, node, dns_serials={})
    _beat(api, token, node, dns_serials=None)
    writes = buffer.writes
    _beat(api, token, node, dns_serials=None, healthy=False, reason="nginx stopped")
    assert buffer.writes == writes + 1
    assert _stored(api, node)[1] is False  # out of the GeoDNS answers at once
    doc = next(n for n in api.get(f"{EDGE}/nodes").json() if n["id"] == node)
    assert doc["live"] is False
    _beat(api, token, node, dns_serials=None)  # healthy again: back at once, not batched
    assert buffer.writes == writes + 2 and _stored(api, node)[1] is True


def test_a_deleted_node_is_told_at_its_next_heartbeat(api: Api) -> None:
    token, node, _ = _node(api)
    _beat(api, token, node, dns_serials={})
    r = api.delete(f"{EDGE}/nodes/{node}")
    assert r.status_code in (200, 204), r.text
    time.sleep(0.6)  # due: the batch finds no row, and forgets the node
    _beat(api, token, node, dns_serials=None)
    r = api.post(f"{EDGE}/nodes/{node}/heartbeat", token=token, json={"dns_serials": None})
    assert r.status_code == 404, r.text
