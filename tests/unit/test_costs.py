"""Cost tracking: the spec's cost model priced by hand on small projects.

The period is April 2026 (30 days); "day 10" is 10 days into it, 20 left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from edgeplane.costs.budget import Budget, crossed, level
from edgeplane.costs.compute import NONE, CostReport, cost_report, split_cents
from edgeplane.costs.model import DEFAULT_MODEL, CostModel, LoadBalancerTier
from edgeplane.costs.usage import (
    CertificateUsage,
    DeploymentUsage,
    LoadBalancerUsage,
    ProjectUsage,
    PurgeUsage,
    TrafficUsage,
)

START = datetime(2026, 4, 1, tzinfo=UTC)
END = datetime(2026, 5, 1, tzinfo=UTC)
DAY10 = START + timedelta(days=10)
BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
GB = 1_000_000_000


def usage(now: datetime = DAY10, **fields: Any) -> ProjectUsage:
    return ProjectUsage(project="p1", period_start=START, now=now, period_end=END, **fields)


def cdn(domain: str, region: str, gb: float) -> TrafficUsage:
    return TrafficUsage(domain=domain, region=region, cdn_bytes=round(gb * GB))


def edge(domain: str, region: str, gb: float) -> TrafficUsage:
    return TrafficUsage(domain=domain, region=region, edge_bytes=round(gb * GB))


def lines_of(report: CostReport, service: str) -> dict[str, tuple[float, float]]:
    """item (domain/region) -> (month to date, forecast)."""
    return {
        f"{line.item} {line.domain or ''}/{line.region or ''}": (
            line.month_to_date,
            line.forecast,
        )
        for line in report.lines
        if line.service == service
    }


def cents(value: float) -> int:
    return round(value * 100)


def assert_sums_agree(report: CostReport) -> None:
    """Lines, services, domains and regions all add up to the totals, to the cent."""
    for total, pick in ((report.month_to_date, "month_to_date"), (report.forecast, "forecast")):
        expected = cents(total)
        assert sum(cents(getattr(line, pick)) for line in report.lines) == expected
        for split in (report.by_service, report.by_domain, report.by_region):
            assert sum(cents(getattr(a, pick)) for a in split.values()) == expected


# --- CDN traffic -------------------------------------------------------------------------------


def test_150_gb_of_cdn_bills_50_gb_split_by_share() -> None:
    # a.example: 100 GB, b.example: 50 GB -> 2:1; eu-west 90 GB, us-east 60 GB -> 3:2.
    traffic = [
        cdn("a.example", "eu-west", 60),
        cdn("a.example", "us-east", 40),
        cdn("b.example", "eu-west", 30),
        cdn("b.example", "us-east", 20),
    ]
    report = cost_report(DEFAULT_MODEL, usage(traffic=traffic))
    assert report.month_to_date == 4.00  # (150 - 100) x 0.08
    assert report.forecast == 4.00  # no recent traffic: nothing more expected
    assert report.currency == "USD"
    assert report.by_service["cdn"].month_to_date == 4.00
    assert report.by_domain["a.example"].month_to_date == 2.67
    assert report.by_domain["b.example"].month_to_date == 1.33
    assert report.by_region["eu-west"].month_to_date == 2.40
    assert report.by_region["us-east"].month_to_date == 1.60
    # 1.60, 1.0667, 0.80, 0.5333: the cent left goes to the largest remainder (a/us-east).
    assert lines_of(report, "cdn") == {
        "CDN traffic a.example/eu-west": (1.60, 1.60),
        "CDN traffic a.example/us-east": (1.07, 1.07),
        "CDN traffic b.example/eu-west": (0.80, 0.80),
        "CDN traffic b.example/us-east": (0.53, 0.53),
    }
    line = report.lines[0]
    assert (line.quantity, line.unit, line.domain, line.region) == (
        60.0,
        "GB",
        "a.example",
        "eu-west",
    )
    assert_sums_agree(report)


def test_the_free_allowance_is_per_project_not_per_domain() -> None:
    # Each domain alone is under 100 GB; together they are 150.
    traffic = [cdn("a.example", "eu-west", 75), cdn("b.example", "eu-west", 75)]
    report = cost_report(DEFAULT_MODEL, usage(traffic=traffic))
    assert report.month_to_date == 4.00
    assert report.by_domain["a.example"].month_to_date == 2.00
    assert report.by_domain["b.example"].month_to_date == 2.00


def test_a_project_under_100_gb_pays_nothing() -> None:
    traffic = [cdn("a.example", "eu-west", 60), cdn("b.example", "us-east", 39.999)]
    report = cost_report(DEFAULT_MODEL, usage(traffic=traffic))
    assert report.month_to_date == 0.0
    assert report.forecast == 0.0
    assert [line.quantity for line in report.lines] == [60.0, 39.999]
    assert {line.month_to_date for line in report.lines} == {0.0}


def test_a_total_split_in_three_keeps_its_cents() -> None:
    # 101.25 GB -> 1.25 GB billable = 0.10; a third each is 0.0333: rounding each part would
    # give 0.09, largest remainder gives 0.04 + 0.03 + 0.03.
    traffic = [cdn(d, "eu-west", 33.75) for d in ("a.example", "b.example", "c.example")]
    report = cost_report(DEFAULT_MODEL, usage(traffic=traffic))
    assert report.month_to_date == 0.10
    assert [line.month_to_date for line in report.lines] == [0.04, 0.03, 0.03]
    assert_sums_agree(report)


def test_split_cents_adds_up() -> None:
    from fractions import Fraction

    assert split_cents(100, {"a": Fraction(1), "b": Fraction(1), "c": Fraction(1)}) == {
        "a": 34,
        "b": 33,
        "c": 33,
    }
    assert split_cents(0, {"a": Fraction(0)}) == {"a": 0}
    assert split_cents(7, {"x": Fraction(2), "y": Fraction(5)}) == {"x": 2, "y": 5}


# --- forecast ----------------------------------------------------------------------------------


def test_forecast_on_day_10_with_10_gb_a_day() -> None:
    # Day 10: 100 GB so far (all free); the last 7 days 70 GB = 10 GB/day, 20 days left:
    # 100 + 200 = 300 GB -> 200 billable x 0.08 = 16.00.
    report = cost_report(
        DEFAULT_MODEL,
        usage(
            traffic=[cdn("a.example", "eu-west", 100)],
            traffic_recent=[cdn("a.example", "eu-west", 70)],
            recent_days=7,
        ),
    )
    assert report.month_to_date == 0.0
    assert report.forecast == 16.00
    assert report.by_service["cdn"].forecast == 16.00


def test_forecast_splits_by_forecast_bytes() -> None:
    # a: 120 GB so far and nothing recent; b: 30 GB so far and 3 GB/day -> 90 GB by the end.
    # MTD: 150 GB -> 4.00 split 120:30; forecast: 210 GB -> 8.80 split 120:90.
    report = cost_report(
        DEFAULT_MODEL,
        usage(
            traffic=[cdn("a.example", "eu-west", 120), cdn("b.example", "eu-west", 30)],
            traffic_recent=[cdn("b.example", "eu-west", 21)],
        ),
    )
    assert (report.month_to_date, report.forecast) == (4.00, 8.80)
    assert report.by_domain["a.example"].model_dump() == {"month_to_date": 3.20, "forecast": 5.03}
    assert report.by_domain["b.example"].model_dump() == {"month_to_date": 0.80, "forecast": 3.77}
    assert_sums_agree(report)


def test_edge_traffic_is_billed_apart_from_the_cdn() -> None:
    # 150 GB from bundles: no free allowance, 0.01/GB; the CDN total stays under 100 GB.
    # Forecast: 150 + 5 GB/day x 20 = 250 GB -> 2.50.
    report = cost_report(
        DEFAULT_MODEL,
        usage(
            traffic=[edge("a.example", "eu-west", 150), cdn("a.example", "eu-west", 90)],
            traffic_recent=[edge("a.example", "eu-west", 35)],
        ),
    )
    assert report.by_service["cdn"].month_to_date == 0.0
    assert report.by_service["edge_deployment"].model_dump() == {
        "month_to_date": 1.50,
        "forecast": 2.50,
    }
    assert lines_of(report, "edge_deployment") == {"edge traffic a.example/eu-west": (1.50, 2.50)}


# --- fixed monthly items -----------------------------------------------------------------------


def test_a_standard_load_balancer_created_mid_period_accrues_half() -> None:
    lbs = [
        LoadBalancerUsage("lb-1", "lb-1", backends=5, tier=None, since=START + timedelta(days=15)),
        LoadBalancerUsage("lb-0", "lb-0", backends=2, tier=None, since=BEFORE),
    ]
    # Day 20: 5 of 30 days accrued (1.67); by the end 15 of 30 (5.00).
    report = cost_report(DEFAULT_MODEL, usage(now=START + timedelta(days=20), load_balancers=lbs))
    assert lines_of(report, "load_balancer") == {
        "lb-0 (basic) /": (0.0, 0.0),
        "lb-1 (standard) /": (1.67, 5.00),
    }
    line = next(line for line in report.lines if line.item == "lb-1 (standard)")
    assert (line.quantity, line.unit) == (0.167, "month")
    assert report.by_service["load_balancer"].forecast == 5.00
    assert report.by_domain == {NONE: report.by_service["load_balancer"]}
    # Over 10 backends: premium, 50 a month; at the period's end it has all accrued.
    big = [LoadBalancerUsage("lb-2", "big", backends=11, tier=None, since=BEFORE)]
    report = cost_report(DEFAULT_MODEL, usage(now=END, load_balancers=big))
    assert lines_of(report, "load_balancer") == {"big (premium) /": (50.0, 50.0)}


def test_an_explicit_tier_is_billed_as_chosen_but_never_below_the_need() -> None:
    lbs = [
        LoadBalancerUsage("lb-1", "over", backends=5, tier="premium", since=BEFORE),
        LoadBalancerUsage("lb-2", "under", backends=5, tier="basic", since=BEFORE),
    ]
    report = cost_report(DEFAULT_MODEL, usage(now=END, load_balancers=lbs))
    assert lines_of(report, "load_balancer") == {
        "over (premium) /": (50.0, 50.0),
        "under (standard) /": (10.0, 10.0),
    }


def test_five_regions_bill_two_prorated() -> None:
    deployments = [
        DeploymentUsage("d1", ("r1", "r2", "r3"), since=BEFORE),
        DeploymentUsage("d2", ("r3", "r4", "r5"), since=BEFORE + timedelta(days=1)),
    ]
    # Day 10: 2 x 5 x 10/30 = 3.33 (1.6667 each: one line gets the odd cent); forecast 10.00.
    report = cost_report(DEFAULT_MODEL, usage(deployments=deployments))
    assert report.by_service["edge_deployment"].model_dump() == {
        "month_to_date": 3.33,
        "forecast": 10.00,
    }
    assert lines_of(report, "edge_deployment") == {
        "edge region r1 (free) /r1": (0.0, 0.0),
        "edge region r2 (free) /r2": (0.0, 0.0),
        "edge region r3 (free) /r3": (0.0, 0.0),
        "edge region r4 /r4": (1.67, 5.00),
        "edge region r5 /r5": (1.66, 5.00),
    }
    line = next(line for line in report.lines if line.region == "r4")
    assert (line.quantity, line.unit) == (0.333, "region-month")
    assert report.by_region["r4"].forecast == 5.00
    assert_sums_agree(report)


def test_a_region_added_mid_period_is_billed_from_then() -> None:
    deployments = [
        DeploymentUsage("d1", ("r1", "r2", "r3"), since=BEFORE),
        DeploymentUsage("d2", ("r4",), since=START + timedelta(days=15)),
    ]
    report = cost_report(DEFAULT_MODEL, usage(now=END, deployments=deployments))
    assert report.by_region["r4"].model_dump() == {"month_to_date": 2.50, "forecast": 2.50}
    assert report.month_to_date == 2.50


def test_an_ev_certificate_costs_a_twelfth_of_100_a_month() -> None:
    certs = [
        CertificateUsage("c1", "shop.example.com", ev=True, since=BEFORE),
        CertificateUsage("c2", "www.example.com", ev=False, since=BEFORE),
    ]
    report = cost_report(DEFAULT_MODEL, usage(certificates=certs))
    # 100/12 = 8.333 a month; day 10: a third of it, 2.78.
    assert lines_of(report, "certificate") == {
        "EV certificate shop.example.com shop.example.com/": (2.78, 8.33)
    }
    line = report.lines[0]
    assert (line.quantity, line.unit) == (0.028, "year")  # 1/3 of a month in years
    assert report.by_domain["shop.example.com"].forecast == 8.33
    assert report.by_region == {NONE: report.by_service["certificate"]}


def test_sums_by_service_domain_and_region_equal_the_total() -> None:
    report = cost_report(
        DEFAULT_MODEL,
        usage(
            traffic=[
                cdn("a.example", "eu-west", 71.3),
                cdn("b.example", "us-east", 41.1),
                cdn("c.example", "ap-south", 13.7),
                edge("a.example", "eu-west", 17.77),
                edge("c.example", "ap-south", 3.31),
            ],
            traffic_recent=[cdn("b.example", "us-east", 9.9), edge("a.example", "ap-south", 1.3)],
            load_balancers=[
                LoadBalancerUsage("lb", "lb", 7, None, since=START + timedelta(days=3, hours=7))
            ],
            deployments=[
                DeploymentUsage("d1", ("r1", "r2", "r3", "r4"), since=BEFORE),
                DeploymentUsage("d2", ("r5",), since=START + timedelta(days=2, hours=5)),
            ],
            certificates=[
                CertificateUsage("c1", "a.example", True, since=START + timedelta(hours=11))
            ],
        ),
    )
    assert report.month_to_date > 0
    assert report.forecast > report.month_to_date
    assert set(report.by_service) == {"cdn", "load_balancer", "edge_deployment", "certificate"}
    assert_sums_agree(report)


# --- recommendations ---------------------------------------------------------------------------


def test_an_idle_paid_region_is_recommended_for_removal() -> None:
    deployments = [
        DeploymentUsage("d1", ("r1", "r2", "r3"), since=BEFORE),
        DeploymentUsage("d2", ("r4", "r5"), since=BEFORE + timedelta(days=1)),
    ]
    recent = [edge("a.example", r, 1) for r in ("r1", "r2", "r3", "r5")]
    report = cost_report(DEFAULT_MODEL, usage(deployments=deployments, traffic_recent=recent))
    [rec] = report.recommendations
    assert (rec.kind, rec.object_id, rec.monthly_saving) == ("idle_region", "r4", 5.0)
    assert "d2" in rec.message

    # A free region idle while the project pays for 2: removing it saves one region too.
    recent = [edge("a.example", r, 1) for r in ("r2", "r3", "r4", "r5")]
    report = cost_report(DEFAULT_MODEL, usage(deployments=deployments, traffic_recent=recent))
    assert [(r.object_id, r.monthly_saving) for r in report.recommendations] == [("r1", 5.0)]


def test_idle_regions_are_recommended_only_while_they_save() -> None:
    # 4 regions (1 paid), 3 idle: removing one saves 5, the next ones nothing.
    deployments = [DeploymentUsage("d1", ("r1", "r2", "r3", "r4"), since=BEFORE)]
    recent = [edge("a.example", "r1", 1), cdn("a.example", "r2", 1)]  # CDN bytes do not count
    report = cost_report(DEFAULT_MODEL, usage(deployments=deployments, traffic_recent=recent))
    assert [(r.object_id, r.monthly_saving) for r in report.recommendations] == [("r4", 5.0)]
    # 3 regions, all free: nothing to save.
    free = [DeploymentUsage("d1", ("r1", "r2", "r3"), since=BEFORE)]
    assert cost_report(DEFAULT_MODEL, usage(deployments=free)).recommendations == []


def test_a_region_newer_than_the_window_is_not_idle() -> None:
    deployments = [
        DeploymentUsage("d1", ("r1", "r2", "r3"), since=BEFORE),
        DeploymentUsage("d2", ("r4",), since=DAY10 - timedelta(days=2)),
    ]
    recent = [edge("a.example", r, 1) for r in ("r1", "r2", "r3")]
    report = cost_report(DEFAULT_MODEL, usage(deployments=deployments, traffic_recent=recent))
    assert report.recommendations == []


def test_an_oversized_load_balancer_tier_is_recommended_down() -> None:
    lbs = [LoadBalancerUsage("lb-9", "api", backends=5, tier="premium", since=BEFORE)]
    report = cost_report(DEFAULT_MODEL, usage(load_balancers=lbs))
    [rec] = report.recommendations
    assert (rec.kind, rec.object_id, rec.monthly_saving) == ("load_balancer_tier", "lb-9", 40.0)
    assert "standard" in rec.message
    # A tier that fits, or none given: nothing to recommend.
    fitting = [LoadBalancerUsage("lb-9", "api", backends=5, tier="standard", since=BEFORE)]
    assert cost_report(DEFAULT_MODEL, usage(load_balancers=fitting)).recommendations == []


def test_a_purge_all_storm_is_recommended_path_purges() -> None:
    # 20 purge-alls in 7 days; 70 GB fetched again -> 10 GB/day x 30 days = 300 GB x 0.08.
    storm = PurgeUsage(purge_all_count=20, days=7, refetched_bytes=70 * GB)
    report = cost_report(DEFAULT_MODEL, usage(purges=storm))
    [rec] = report.recommendations
    assert (rec.kind, rec.object_id, rec.monthly_saving) == ("purge_all_storm", None, 24.0)
    assert "prefix" in rec.message and "path" in rec.message
    # One a day on average is not a storm.
    calm = PurgeUsage(purge_all_count=7, days=7, refetched_bytes=70 * GB)
    assert cost_report(DEFAULT_MODEL, usage(purges=calm)).recommendations == []


def test_recommendations_come_largest_saving_first() -> None:
    report = cost_report(
        DEFAULT_MODEL,
        usage(
            load_balancers=[LoadBalancerUsage("lb-9", "api", 1, "standard", since=BEFORE)],
            purges=PurgeUsage(purge_all_count=30, days=7, refetched_bytes=70 * GB),
            deployments=[DeploymentUsage("d1", ("r1", "r2", "r3", "r4"), since=BEFORE)],
        ),
    )
    assert [(r.kind, r.monthly_saving) for r in report.recommendations] == [
        ("purge_all_storm", 24.0),
        ("load_balancer_tier", 10.0),
        ("idle_region", 5.0),
    ]


# --- budgets -----------------------------------------------------------------------------------


def test_crossing_50_and_80_in_one_step_alerts_both_once() -> None:
    budget = Budget(amount=100)
    assert budget.thresholds == (50, 80, 100)
    assert crossed(budget, 40.0, 85.0) == [50, 80]
    assert crossed(budget, 85.0, 90.0) == []
    assert crossed(budget, 90.0, 100.0) == [100]
    assert crossed(budget, 100.0, 3.0) == []  # a new period
    assert level(budget, 85.0) == 80
    assert level(budget, 49.99) is None
    assert level(budget, 250.0) == 100


def test_budget_thresholds_compare_exactly() -> None:
    budget = Budget(amount=0.3, thresholds=(80, 50, 80))
    assert budget.thresholds == (50, 80)
    assert crossed(budget, 0.0, 0.24) == [50, 80]  # 0.24 is 80% of 0.3 exactly
    with pytest.raises(ValidationError) as err:
        Budget(amount=0)
    assert err.value.errors()[0]["loc"] == ("amount",)
    with pytest.raises(ValidationError) as err:
        Budget(amount=10, thresholds=(0, 50))
    assert err.value.errors()[0]["loc"] == ("thresholds",)


# --- the model ---------------------------------------------------------------------------------


def test_a_changed_model_changes_the_figures() -> None:
    traffic = [cdn("a.example", "eu-west", 100), cdn("b.example", "eu-west", 50)]
    cheaper = DEFAULT_MODEL.model_copy(update={"cdn_per_gb": 0.05})
    assert cost_report(cheaper, usage(traffic=traffic)).month_to_date == 2.50
    more_free = CostModel(cdn_free_gb_month=140, edge_free_regions=5)
    assert cost_report(more_free, usage(traffic=traffic)).month_to_date == 0.80
    deployments = [DeploymentUsage("d1", ("r1", "r2", "r3", "r4", "r5"), since=BEFORE)]
    assert cost_report(more_free, usage(now=END, deployments=deployments)).forecast == 0.0
    tiers = CostModel(
        lb_tiers=[
            {"name": "small", "max_backends": 4, "monthly": 1},
            {"name": "large", "max_backends": None, "monthly": 20},
        ],
        currency="EUR",
    )
    lbs = [LoadBalancerUsage("lb", "lb", backends=3, tier=None, since=BEFORE)]
    report = cost_report(tiers, usage(now=END, load_balancers=lbs))
    assert (report.currency, report.lines[0].item, report.month_to_date) == (
        "EUR",
        "lb (small)",
        1.0,
    )
    # The default is untouched (and cannot be changed in place).
    assert DEFAULT_MODEL.cdn_per_gb == 0.08
    with pytest.raises(ValidationError):
        DEFAULT_MODEL.cdn_per_gb = 1.0  # type: ignore[misc]


def test_the_default_model_is_the_specification() -> None:
    m = CostModel()
    assert (m.currency, m.gb_bytes, m.cdn_free_gb_month, m.cdn_per_gb) == ("USD", GB, 100, 0.08)
    assert [(t.name, t.max_backends, t.monthly) for t in m.lb_tiers] == [
        ("basic", 2, 0),
        ("standard", 10, 10),
        ("premium", None, 50),
    ]
    assert (m.edge_free_regions, m.edge_region_monthly, m.edge_traffic_per_gb) == (3, 5, 0.01)
    assert m.ev_certificate_yearly == 100
    schema = CostModel.model_json_schema()
    assert all(field.get("description") for field in schema["properties"].values())
    assert "10^9" in schema["properties"]["gb_bytes"]["description"]


@pytest.mark.parametrize(
    ("fields", "loc", "says"),
    [
        ({"cdn_per_gb": -0.01}, ("cdn_per_gb",), "greater than or equal to 0"),
        ({"edge_region_monthly": float("inf")}, ("edge_region_monthly",), "less than or equal"),
        ({"gb_bytes": 0}, ("gb_bytes",), "greater than or equal to 1"),
        ({"cdn_per_gb": "0.08"}, ("cdn_per_gb",), "must be a number"),
        ({"unknown": 1}, ("unknown",), "Extra inputs"),
        (
            {
                "lb_tiers": [
                    {"name": "a", "max_backends": 10, "monthly": 1},
                    {"name": "b", "max_backends": 2, "monthly": 2},
                ]
            },
            ("lb_tiers",),
            "must increase",
        ),
        (
            {
                "lb_tiers": [
                    {"name": "a", "max_backends": None, "monthly": 1},
                    {"name": "b", "max_backends": 2, "monthly": 2},
                ]
            },
            ("lb_tiers",),
            "only the last tier may be unlimited",
        ),
        (
            {
                "lb_tiers": [
                    {"name": "a", "max_backends": 1, "monthly": 1},
                    {"name": "a", "max_backends": 2, "monthly": 2},
                ]
            },
            ("lb_tiers",),
            "unique",
        ),
        (
            {"lb_tiers": [{"name": "a", "max_backends": 1, "monthly": -1}]},
            ("lb_tiers", 0, "monthly"),
            "greater than or equal to 0",
        ),
        ({"lb_tiers": []}, ("lb_tiers",), "at least 1"),
    ],
)
def test_the_model_refuses_naming_the_field(
    fields: dict[str, Any], loc: tuple[Any, ...], says: str
) -> None:
    with pytest.raises(ValidationError) as err:
        CostModel(**fields)
    error = err.value.errors()[0]  # a bad tier also makes pydantic report the tuple too short
    assert error["loc"] == loc
    assert says in error["msg"]


def test_tiers_fit_backends() -> None:
    assert DEFAULT_MODEL.fitting_tier(0).name == "basic"
    assert DEFAULT_MODEL.fitting_tier(2).name == "basic"
    assert DEFAULT_MODEL.fitting_tier(3).name == "standard"
    assert DEFAULT_MODEL.fitting_tier(10_000).name == "premium"
    bounded = CostModel(lb_tiers=[LoadBalancerTier(name="only", max_backends=4, monthly=3)])
    assert bounded.fitting_tier(9).name == "only"  # none fits: the largest
