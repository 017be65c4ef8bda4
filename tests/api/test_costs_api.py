"""Costs over the API on both databases: measured traffic (analytics rows of nodes in two
regions, inserted directly) priced by a cost model set with PUT, checked against figures
computed by hand; roles; bad input refused naming the field with nothing stored; budgets
alerting each threshold once a month; the load balancer's billing tier."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from conftest import Api
from edgeplane.model.enums import Role
from edgeplane.services import budgets
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.monitoring_tables import BudgetRow, CostModelRow
from edgeplane.store.tables import EdgeAnalyticsRow, EdgeNodeRow, LoadBalancerRow

COSTS = "/api/v1/costs"
LBS = "/api/v1/infrastructure/loadbalancer"
# A "GB" of 1,000 bytes, so that a few KB cost visible cents.
MODEL = {
    "gb_bytes": 1000,
    "cdn_free_gb_month": 1,
    "cdn_per_gb": 0.5,
    "edge_traffic_per_gb": 0.1,
}


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def refused(r: Any, field: str, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    assert doc["field"] == field, doc
    return doc


def add_nodes(api: Api) -> None:
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(EdgeNodeRow(id="n-eu", name="fra-1", region="eu-central"))
        tx.session.add(EdgeNodeRow(id="n-us", name="iad-1", region="us-east"))


def traffic(
    api: Api,
    node: str,
    domain: str,
    minute: datetime,
    sent: int,
    *,
    static: int = 0,
    project: str = "default",
    requests: int = 10,
    misses: int = 0,
) -> None:
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            EdgeAnalyticsRow(
                node_id=node,
                domain=domain,
                minute=minute,
                project_id=project,
                requests=requests,
                misses=misses,
                bytes_out=sent,
                static_bytes=static,
            )
        )


def set_model(api: Api, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = ok(api.call("PUT", f"{COSTS}/model", json={**MODEL, **over}))
    return doc


def lines(report: dict[str, Any]) -> dict[tuple[str, str | None, str | None], Any]:
    return {
        (line["item"], line["domain"], line["region"]): (
            line["quantity"],
            line["month_to_date"],
            line["forecast"],
        )
        for line in report["lines"]
    }


def cents(amount: Fraction) -> float:
    """Half up, as the report rounds its totals."""
    return math.floor(amount * 100 + Fraction(1, 2)) / 100


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


def month_start(when: datetime) -> datetime:
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(when: datetime) -> datetime:
    start = month_start(when)
    return (start + timedelta(days=32)).replace(day=1)


# The report -------------------------------------------------------------------------------


def test_a_past_month_priced_by_hand(api: Api) -> None:
    add_nodes(api)
    set_model(api)
    june = datetime(2025, 6, 1, tzinfo=UTC)
    traffic(api, "n-eu", "a.example.test", june + timedelta(days=9, hours=12), 3000)
    traffic(api, "n-us", "a.example.test", june + timedelta(days=19), 5000, static=2000)
    traffic(api, "n-eu", "b.example.test", june + timedelta(days=28), 1000)
    # Outside: the minute before and the minute after the month, another project, and a
    # load balancer created after the month (it costs nothing in June).
    traffic(api, "n-eu", "a.example.test", june - timedelta(minutes=1), 9999)
    traffic(api, "n-eu", "a.example.test", datetime(2025, 7, 1, tzinfo=UTC), 9999)
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    traffic(api, "n-eu", "c.example.test", june + timedelta(days=3), 9999, project="other")
    ok(api.post(LBS, json={"id": "web", "endpoints": ["10.0.0.1:80"], "tier": "premium"}), 201)

    report = ok(api.get(f"{COSTS}?month=2025-06"))
    assert report["period_start"].startswith("2025-06-01T00:00:00")
    assert report["period_end"].startswith("2025-07-01T00:00:00")
    assert report["currency"] == "USD"
    # CDN: 7,000 bytes = 7 "GB", 1 free, 6 x 0.50 = 3.00, split by bytes in whole cents:
    # 128.57 / 128.57 / 42.86 -> 128 / 128 / 42 and the 2 cents left to the largest
    # remainders (b, then a in eu-central, the earlier line of a tie). Edge: 2 x 0.10.
    assert lines(report) == {
        ("CDN traffic", "a.example.test", "eu-central"): (3.0, 1.29, 1.29),
        ("CDN traffic", "a.example.test", "us-east"): (3.0, 1.28, 1.28),
        ("CDN traffic", "b.example.test", "eu-central"): (1.0, 0.43, 0.43),
        ("edge traffic", "a.example.test", "us-east"): (2.0, 0.2, 0.2),
    }
    assert (report["month_to_date"], report["forecast"]) == (3.2, 3.2)  # the month is over
    assert report["by_service"] == {
        "cdn": {"month_to_date": 3.0, "forecast": 3.0},
        "load_balancer": {"month_to_date": 0.0, "forecast": 0.0},
        "edge_deployment": {"month_to_date": 0.2, "forecast": 0.2},
        "certificate": {"month_to_date": 0.0, "forecast": 0.0},
    }
    assert report["by_region"] == {
        "eu-central": {"month_to_date": 1.72, "forecast": 1.72},
        "us-east": {"month_to_date": 1.48, "forecast": 1.48},
    }
    assert report["by_domain"] == {
        "a.example.test": {"month_to_date": 2.77, "forecast": 2.77},
        "b.example.test": {"month_to_date": 0.43, "forecast": 0.43},
    }
    other = ok(api.get(f"{COSTS}?month=2025-06&project=other"))
    assert other["month_to_date"] == cents((Fraction(9999, 1000) - 1) / 2) == 4.5  # 4.4995

    platform = ok(api.get(f"{COSTS}/all?month=2025-06"))
    assert platform["projects"] == [
        {"project": "other", "month_to_date": 4.5, "forecast": 4.5},
        {"project": "default", "month_to_date": 3.2, "forecast": 3.2},
    ]
    assert (platform["month_to_date"], platform["forecast"]) == (7.7, 7.7)


def test_the_current_month_with_its_forecast_and_a_tier(api: Api, now: datetime) -> None:
    add_nodes(api)
    set_model(api)
    minute = now.replace(second=0, microsecond=0)  # in this month, before now
    traffic(api, "n-eu", "a.example.test", minute, 4000)
    lb = ok(
        api.post(
            LBS,
            json={"id": "web", "endpoints": ["10.0.0.1:80", "10.0.0.2:80"], "tier": "standard"},
        ),
        201,
    )
    assert lb["tier"] == "standard"

    report = ok(api.get(COSTS))
    start, end = month_start(now), next_month(now)
    assert datetime.fromisoformat(report["period_start"]) == start
    at = datetime.fromisoformat(report["now"])
    days_left = Fraction((end - at) // timedelta(microseconds=1), 86_400 * 10**6)
    # 4 "GB" so far, and the same every 7 days for the days left.
    forecast_gb = 4 + Fraction(4, 7) * days_left
    cdn_exact = (forecast_gb - 1) / 2
    # The standard tier ($10 a month) from its creation to the month's end.
    created = datetime.fromisoformat(lb["created_at"])
    length = Fraction((end - start) // timedelta(microseconds=1))
    lb_exact = 10 * Fraction((end - created) // timedelta(microseconds=1)) / length
    # The total rounded half up; each line its share in whole cents, within a cent.
    assert report["forecast"] == cents(cdn_exact + lb_exact)
    cdn = lines(report)[("CDN traffic", "a.example.test", "eu-central")]
    assert cdn[:2] == (4.0, 1.5)
    assert abs(Fraction(str(cdn[2])) - cdn_exact) < Fraction(1, 100)
    lb_line = lines(report)[("web (standard)", None, None)]
    assert abs(Fraction(str(lb_line[2])) - lb_exact) < Fraction(1, 100)
    assert round((cdn[2] + lb_line[2]) * 100) == round(report["forecast"] * 100)
    # Two backends fit the basic tier: the recommendation saves the standard tier's price.
    (rec,) = report["recommendations"]
    assert (rec["kind"], rec["object_id"], rec["monthly_saving"]) == (
        "load_balancer_tier",
        "web",
        10.0,
    )

    # No tier: the smallest that fits, and nothing to recommend.
    lb = ok(api.patch(f"{LBS}/web", json={"tier": None}))
    assert lb["tier"] is None
    assert ("web (basic)", None, None) in lines(ok(api.get(COSTS)))
    assert ok(api.get(COSTS))["recommendations"] == []


# Roles ------------------------------------------------------------------------------------


def test_roles(api: Api) -> None:
    viewer, editor = api.token(Role.VIEWER), api.token(Role.EDITOR)
    ok(api.call("GET", COSTS, token=viewer))
    ok(api.call("GET", f"{COSTS}/model", token=viewer))
    ok(api.call("GET", f"{COSTS}/budgets", token=viewer))
    for token in (viewer, editor):
        assert api.call("PUT", f"{COSTS}/model", token=token, json=MODEL).status_code == 403
        assert api.call("GET", f"{COSTS}/all", token=token).status_code == 403
    body = {"id": "monthly", "amount": 100}
    assert api.call("POST", f"{COSTS}/budgets", token=viewer, json=body).status_code == 403
    ok(api.call("POST", f"{COSTS}/budgets", token=editor, json=body), 201)
    ok(api.call("GET", f"{COSTS}/budgets/monthly", token=viewer))
    r = api.call("PATCH", f"{COSTS}/budgets/monthly", token=viewer, json={"amount": 5})
    assert r.status_code == 403
    assert api.call("DELETE", f"{COSTS}/budgets/monthly", token=viewer).status_code == 403
    assert (
        ok(api.call("PATCH", f"{COSTS}/budgets/monthly", token=editor, json={"amount": 5}))[
            "amount"
        ]
        == 5
    )
    ok(api.call("DELETE", f"{COSTS}/budgets/monthly", token=editor), 204)
    with api.db.read(LOCAL, "default") as tx:
        assert tx.session.get(CostModelRow, 1) is None


def test_a_token_of_another_project_reads_nothing_here(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "shop"}), 201)
    shop = api.token(Role.ADMIN, "shop")
    assert api.call("GET", COSTS, token=shop).status_code == 403
    ok(api.call("GET", f"{COSTS}?project=shop", token=shop))
    assert api.call("GET", f"{COSTS}/all", token=shop).status_code == 403


# Bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("month", ["2026-13", "26-01", "abc", "2026-1", "1969-12", "9999-01"])
def test_a_bad_month_is_refused(api: Api, month: str) -> None:
    refused(api.get(f"{COSTS}?month={month}"), "month")
    refused(api.get(f"{COSTS}/all?month={month}"), "month")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "b", "amount": -5}, "amount"),
        ({"id": "b", "amount": 0}, "amount"),
        ({"id": "b", "amount": 10, "thresholds": [0]}, "thresholds.0"),
        ({"id": "b", "amount": 10, "thresholds": [50, 1001]}, "thresholds.1"),
        ({"id": "b", "amount": 10, "thresholds": []}, "thresholds"),
        ({"id": "B!", "amount": 10}, "id"),
        ({"amount": 10}, "id"),
        ({"id": "b", "amount": 10, "limit": 3}, "limit"),
        ({"id": "b", "amount": True}, "amount"),
    ],
)
def test_a_bad_budget_is_refused(api: Api, body: dict[str, Any], field: str) -> None:
    refused(api.post(f"{COSTS}/budgets", json=body), field)
    assert ok(api.get(f"{COSTS}/budgets")) == []
    with api.db.read(LOCAL, "default") as tx:
        assert tx.session.query(BudgetRow).count() == 0


def test_a_bad_budget_change_is_refused(api: Api) -> None:
    ok(api.post(f"{COSTS}/budgets", json={"id": "b", "amount": 10}), 201)
    refused(api.patch(f"{COSTS}/budgets/b", json={"amount": -1}), "amount")
    refused(api.patch(f"{COSTS}/budgets/b", json={"thresholds": [0]}), "thresholds.0")
    refused(api.patch(f"{COSTS}/budgets/b", json={"id": "c"}), "id")
    assert api.get(f"{COSTS}/budgets/nope").status_code == 404
    doc = ok(api.get(f"{COSTS}/budgets/b"))
    assert (doc["amount"], doc["thresholds"], doc["name"]) == (10, [50, 80, 100], "b")
    assert api.post(f"{COSTS}/budgets", json={"id": "b", "amount": 3}).status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cdn_per_gbx": 1}, "cdn_per_gbx"),
        ({"cdn_per_gb": -1}, "cdn_per_gb"),
        ({"currency": "usd"}, "currency"),
        ({"gb_bytes": 0}, "gb_bytes"),
        (
            {
                "lb_tiers": [
                    {"name": "small", "max_backends": 5, "monthly": 0},
                    {"name": "big", "max_backends": 4, "monthly": 1},
                ]
            },
            "lb_tiers",
        ),
        (
            {"lb_tiers": [{"name": "x", "max_backends": -1, "monthly": 0}]},
            "lb_tiers.0.max_backends",
        ),
    ],
)
def test_a_bad_cost_model_is_refused(api: Api, body: dict[str, Any], field: str) -> None:
    default = ok(api.get(f"{COSTS}/model"))
    refused(api.call("PUT", f"{COSTS}/model", json=body), field)
    assert ok(api.get(f"{COSTS}/model")) == default
    with api.db.read(LOCAL, "default") as tx:
        assert tx.session.get(CostModelRow, 1) is None


def test_the_cost_model_is_set_and_audited(api: Api) -> None:
    default = ok(api.get(f"{COSTS}/model"))
    assert (default["cdn_per_gb"], default["cdn_free_gb_month"]) == (0.08, 100.0)
    assert [t["name"] for t in default["lb_tiers"]] == ["basic", "standard", "premium"]
    model = set_model(api)
    assert model["cdn_per_gb"] == 0.5 and model["ev_certificate_yearly"] == 100.0
    assert ok(api.get(f"{COSTS}/model")) == model
    events = ok(api.get("/api/v1/audit?kind=cost_model&include_global=true"))["items"]
    assert [(e["action"], e["object_id"]) for e in events] == [("update", "1")]
    assert events[0]["before"]["cdn_per_gb"] == 0.08 and events[0]["after"]["cdn_per_gb"] == 0.5


def test_a_load_balancer_tier_must_exist_and_hold_the_backends(api: Api) -> None:
    three = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
    doc = refused(api.post(LBS, json={"id": "web", "endpoints": three, "tier": "gold"}), "tier")
    assert "basic, standard, premium" in doc["detail"]
    doc = refused(api.post(LBS, json={"id": "web", "endpoints": three, "tier": "basic"}), "tier")
    assert "at most 2" in doc["detail"]
    assert ok(api.get(LBS))["items"] == []

    ok(api.post(LBS, json={"id": "web", "endpoints": three[:2], "tier": "basic"}), 201)
    refused(api.post(f"{LBS}/web/backends", json={"address": three[2]}), "tier")
    refused(api.patch(f"{LBS}/web", json={"endpoints": three}), "tier")
    refused(api.patch(f"{LBS}/web", json={"tier": "gold"}), "tier")
    assert len(ok(api.get(f"{LBS}/web"))["backends"]) == 2
    lb = ok(api.patch(f"{LBS}/web", json={"tier": "standard", "endpoints": three}))
    assert (lb["tier"], len(lb["backends"])) == ("standard", 3)
    lb = ok(api.patch(f"{LBS}/web", json={"retries": 2}))  # the tier stays
    assert lb["tier"] == "standard"
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.get(LoadBalancerRow, ("default", "web"))
        assert row is not None and row.options["tier"] == "standard"
    # A tier of a model set later: the names are the model's.
    set_model(api, lb_tiers=[{"name": "flat", "max_backends": None, "monthly": 7}])
    assert ok(api.patch(f"{LBS}/web", json={"tier": "flat"}))["tier"] == "flat"
    refused(api.patch(f"{LBS}/web", json={"tier": "standard"}), "tier")


# Budgets and their alerts -----------------------------------------------------------------


def budget_alerts(api: Api) -> list[tuple[str, str, str]]:
    items = ok(api.get("/api/v1/alerts?kind=budget"))
    return sorted((a["object_id"], a["key"], a["severity"]) for a in items)


def test_budgets_alert_each_threshold_once_a_month(api: Api, now: datetime) -> None:
    add_nodes(api)
    set_model(api, cdn_free_gb_month=0, cdn_per_gb=1.0)  # 1,000 bytes: 1.00
    minute = now.replace(second=0, microsecond=0)
    month = f"{now.year:04d}-{now.month:02d}"
    settings = Settings()
    ok(api.post(f"{COSTS}/budgets", json={"id": "monthly", "amount": 10}), 201)
    ok(api.post(f"{COSTS}/budgets", json={"id": "big", "amount": 1000, "thresholds": [90]}), 201)

    assert budgets.check_budgets(api.db, settings, now=now) == 0  # nothing spent
    traffic(api, "n-eu", "a.example.test", minute, 4000)
    traffic(api, "n-us", "a.example.test", minute, 4500)  # 8.50: 85 % of 10
    assert budgets.check_budgets(api.db, settings, now=now) == 2
    assert budget_alerts(api) == [
        ("default/monthly", f"{month}:50", "warning"),
        ("default/monthly", f"{month}:80", "warning"),
    ]
    assert budgets.check_budgets(api.db, settings, now=now) == 0  # once
    assert len(budget_alerts(api)) == 2
    (alert,) = [a for a in ok(api.get("/api/v1/alerts?kind=budget")) if a["key"].endswith(":80")]
    assert alert["details"]["month_to_date"] == 8.5 and alert["details"]["budget"] == "monthly"
    assert "8.50 USD" in alert["message"] and "threshold 80%" in alert["message"]
    view = ok(api.get(f"{COSTS}/budgets/monthly"))
    assert (view["month_to_date"], view["percent"], view["reached"]) == (8.5, 85.0, 80)
    assert (view["month"], view["alerted"]) == (month, [50, 80])

    traffic(api, "n-eu", "b.example.test", minute, 1500)  # 10.00: 100 %
    assert budgets.check_budgets(api.db, settings, now=now) == 1
    assert ("default/monthly", f"{month}:100", "critical") in budget_alerts(api)
    assert len(budget_alerts(api)) == 3

    # A new month starts over: 6.00 of its own reaches 50 % again, and only that.
    later = next_month(now) + timedelta(days=1)
    next_label = f"{later.year:04d}-{later.month:02d}"
    traffic(api, "n-eu", "a.example.test", later - timedelta(hours=12), 6000)
    assert budgets.check_budgets(api.db, settings, now=later) == 1
    assert ("default/monthly", f"{next_label}:50", "warning") in budget_alerts(api)
    assert len(budget_alerts(api)) == 4
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.get(BudgetRow, ("default", "monthly"))
        assert row is not None and (row.period, row.alerted) == (next_label, [50])


def test_budgets_of_two_projects_with_one_id_alert_apart(api: Api, now: datetime) -> None:
    add_nodes(api)
    set_model(api, cdn_free_gb_month=0, cdn_per_gb=1.0)
    ok(api.post("/api/v1/projects", json={"id": "shop"}), 201)
    minute = now.replace(second=0, microsecond=0)
    for project in ("default", "shop"):
        ok(api.post(f"{COSTS}/budgets?project={project}", json={"id": "monthly", "amount": 2}), 201)
        traffic(api, "n-eu", f"{project}.example.test", minute, 1200, project=project)
    assert budgets.check_budgets(api.db, Settings(), now=now) == 2
    shop = ok(api.get("/api/v1/alerts?kind=budget&project=shop"))
    assert [(a["object_id"], a["project"]) for a in shop] == [("shop/monthly", "shop")]
    ok(api.delete(f"{COSTS}/budgets/monthly?project=shop"), 204)
    assert ok(api.get(f"{COSTS}/budgets?project=shop")) == []
    events = ok(api.get("/api/v1/audit?kind=budget&project=shop"))["items"]
    assert [e["action"] for e in events] == ["delete", "create"]
