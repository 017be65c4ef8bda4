"""Hourly rollups and retention: minute traffic summed per hour, the series read across both,
old rows deleted by their retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select

from conftest import Api
from edgeplane.services import retention
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.monitoring_tables import EdgeAnalyticsHourRow
from edgeplane.store.tables import AuditRow, EdgeAnalyticsRow, EdgeNodeRow, utcnow


def traffic(api: Api, hours: int) -> tuple[int, int]:
    """Minute rows over ``hours`` complete past hours, two nodes in two regions; (requests,
    5xx) inserted."""
    now = utcnow()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours + 1)
    total = errors = 0
    with api.db.transaction(LOCAL, "default") as tx:
        for node, region in (("n-eu", "eu-central"), ("n-us", "us-east")):
            tx.session.add(EdgeNodeRow(id=node, name=node, region=region))
        tx.session.flush()
        for m in range(hours * 60):
            for node in ("n-eu", "n-us"):
                n = 10 + m % 7
                total += n
                errors += 1
                tx.session.add(
                    EdgeAnalyticsRow(
                        node_id=node, domain="shop.example.com", project_id="default",
                        minute=first + timedelta(minutes=m), requests=n, hits=n - 2, misses=2,
                        bytes_out=1000 * n, statuses={"2xx": n - 1, "5xx": 1}, cache={},
                        upstream_ms=[], request_ms=[0, n], countries={},
                        backends={"10.0.0.1:80": n - 1, "10.0.0.2:80": 1},
                    )
                )  # fmt: skip
    return total, errors


def total_requests(api: Api, step: int, since: str = "24h") -> float:
    r = api.get(f"/api/v1/metrics?series=requests&since={since}&step={step}&group_by=project")
    assert r.status_code == 200, r.text
    return sum(p["value"] for res in r.json()["results"] for p in res["points"])


def backend_requests(api: Api, step: int) -> dict[str, float]:
    r = api.get(f"/api/v1/metrics?series=backend_requests&since=24h&step={step}")
    assert r.status_code == 200, r.text
    return {res["object"]: sum(p["value"] for p in res["points"]) for res in r.json()["results"]}


def test_minutes_roll_up_into_hours_and_old_rows_go(api: Api) -> None:
    sent, _errors = traffic(api, 3)
    assert total_requests(api, 60) == sent
    per_backend = {"10.0.0.1:80": sent - 3 * 60 * 2, "10.0.0.2:80": 3 * 60 * 2}
    assert backend_requests(api, 60) == per_backend
    assert retention.roll_up(api.db) == 3
    with api.db.read(LOCAL, "default") as tx:
        rolled = retention.rolled_until(tx)
        hours = tx.session.scalar(select(func.count()).select_from(EdgeAnalyticsHourRow))
    assert rolled is not None and hours == 6  # 3 hours x 2 nodes
    assert total_requests(api, 3600) == sent  # from the rollups
    assert backend_requests(api, 3600) == per_backend
    assert total_requests(api, 60) == sent  # from the minutes, still kept
    assert retention.roll_up(api.db) == 0  # nothing new is final

    settings = replace(Settings(), metrics_minute_retention_s=60.0, audit_retention_s=3600.0)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            AuditRow(revision=0, at=utcnow() - timedelta(days=2), actor="x", project_id=None,
                     action="create", kind="test", object_id="old")
        )  # fmt: skip
    removed = retention.prune(api.db, settings)
    assert removed["edge_analytics"] == 3 * 60 * 2  # every minute rolled up, past 60 s
    assert removed["audit_events"] >= 1
    with api.db.read(LOCAL, "default") as tx:
        assert tx.session.scalar(select(func.count()).select_from(EdgeAnalyticsRow)) == 0
        assert tx.session.scalar(select(func.count()).where(AuditRow.object_id == "old")) == 0
    assert total_requests(api, 3600) == sent  # the hours remain
    # a range older than the minutes kept reads the rollups at any step
    assert total_requests(api, 600, "7d") == sent
