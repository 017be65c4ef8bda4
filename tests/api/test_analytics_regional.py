"""Traffic per region and per client country: log lines -> the agent's aggregator -> the edge
protocol's analytics report -> ``services.analytics.regional`` / ``countries``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Api
from edgeplane.node.agent.analytics import TrafficAggregator
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS, AnalyticsReport
from edgeplane.services import analytics
from edgeplane.store.actor import LOCAL

EDGE = "/api/v1/edge"
BUCKETS = len(UPSTREAM_MS_BUCKETS) + 1
COUNTRY_OF = {
    "198.51.100.1": "DE",
    "198.51.100.2": "FR",
    "203.0.113.5": "US",
    "203.0.113.9": "JP",
}  # anything else: unknown ("ZZ")


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def node(api: Api, name: str, region: str) -> tuple[str, str]:
    """A node registered the way an agent registers: (node id, its edge token)."""
    token = ok(api.post("/api/v1/tokens", json={"name": name, "scope": "edge"}), 201)["token"]
    doc = ok(api.post(f"{EDGE}/nodes", token=token, json={"name": name, "region": region}))
    return str(doc["id"]), str(token)


def log_line(
    minute: datetime,
    *,
    addr: str,
    cache: str = "MISS",
    status: int = 200,
    request_time: float = 0.004,
    size: int = 100,
    source: str = "",
    site: str = "default",
    host: str = "www.example.test",
) -> dict[str, Any]:
    """A parsed line of the nginx JSON access log."""
    return {
        "msec": minute.timestamp() + 5,
        "host": host,
        "site": site,
        "status": status,
        "bytes_sent": size,
        "request_time": request_time,
        "upstream_response_time": "" if cache in ("HIT", "STATIC") else "0.003",
        "cache": cache,
        "source": source,
        "remote_addr": addr,
    }


def report(api: Api, node_id: str, token: str, lines: list[dict[str, Any]]) -> None:
    """What the agent does: aggregate the lines, send the changed minutes."""
    agg = TrafficAggregator(COUNTRY_OF.get)
    for doc in lines:
        agg.add(doc)
    body = AnalyticsReport(minutes=agg.changed()).model_dump(mode="json")
    ok(api.post(f"{EDGE}/nodes/{node_id}/analytics", token=token, json=body), 204)


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def static(minute: datetime, addr: str, **kw: Any) -> dict[str, Any]:
    return log_line(minute, addr=addr, cache="STATIC", source="bundle", **kw)


def test_traffic_per_region_and_country(api: Api, now: datetime) -> None:
    minute = now - timedelta(minutes=10)
    old = now - timedelta(hours=3)
    eu1, eu1_token = node(api, "eu-1", "eu-central")
    eu2, eu2_token = node(api, "eu-2", "eu-central")
    us, us_token = node(api, "us-1", "us-east")
    gone, gone_token = node(api, "ap-1", "ap-south")

    de, fr, usa, jp = "198.51.100.1", "198.51.100.2", "203.0.113.5", "203.0.113.9"
    report(
        api,
        eu1,
        eu1_token,
        [
            *[static(minute, de, request_time=0.002) for _ in range(3)],  # (1, 2] ms
            log_line(minute, addr=de, cache="HIT", request_time=0.008),  # (7, 10]
            log_line(minute, addr=fr, status=502, request_time=0.25),  # (200, 300]
            log_line(old, addr=de, request_time=5.0),  # outside the timeframe
            log_line(minute, addr=de, site="other", host="other.test"),  # another project
        ],
    )
    report(
        api,
        eu2,
        eu2_token,
        [
            *[log_line(minute, addr=fr, cache="HIT", request_time=0.008) for _ in range(2)],
            log_line(minute, addr="10.0.0.1", status=404, request_time=0.008),  # unknown: ZZ
        ],
    )
    report(
        api,
        us,
        us_token,
        [log_line(minute, addr=usa, request_time=0.04, size=1000) for _ in range(4)],  # (30, 50]
    )
    report(api, gone, gone_token, [log_line(minute, addr=jp, cache="HIT") for _ in range(5)])
    ok(api.delete(f"{EDGE}/nodes/{gone}"), 204)  # its rows stay, its region is gone

    start, end = now - timedelta(hours=1), now + timedelta(minutes=1)
    with api.db.read(LOCAL, "default") as tx:
        by_region = analytics.regional(tx, "default", start, end)
        only_us = analytics.regional(tx, "default", start, end, regions=iter(["us-east", "xx"]))
        none = analytics.regional(tx, "default", start, end, regions=[])
        later = analytics.regional(tx, "default", now, end)
        per_country = analytics.countries(tx, "default", start, end)
        other = analytics.countries(tx, "other", start, end)

    assert set(by_region) == {"eu-central", "us-east"}  # ap-south: its node was deleted
    eu = by_region["eu-central"]
    assert (eu.requests, eu.bytes_out) == (8, 800)
    assert (eu.errors_5xx, eu.errors_4xx) == (1, 1)
    assert (eu.hits, eu.misses, eu.static) == (6, 2, 3)  # static responses are hits
    assert eu.hit_ratio == pytest.approx(6 / 8)  # served at the edge / all requests
    # Request times of both nodes merged: 3 in (1, 2], 4 in (7, 10], 1 in (200, 300].
    assert eu.p50_ms == pytest.approx(7 + 3 * (4 - 3) / 4)
    assert eu.p95_ms == pytest.approx(200 + 100 * (0.95 * 8 - 7))
    assert eu.countries == {"DE": 4, "FR": 3, "ZZ": 1}

    usr = by_region["us-east"]
    assert (usr.requests, usr.bytes_out, usr.hits, usr.misses, usr.static) == (4, 4000, 0, 4, 0)
    assert (usr.errors_5xx, usr.errors_4xx) == (0, 0)
    assert usr.hit_ratio == 0.0
    assert usr.p50_ms == pytest.approx(30 + 20 * 0.5)
    assert usr.p95_ms == pytest.approx(30 + 20 * 0.95)
    assert usr.countries == {"US": 4}
    assert usr.to_dict() == {
        "requests": 4,
        "bytes_out": 4000,
        "errors_5xx": 0,
        "errors_4xx": 0,
        "hits": 0,
        "misses": 4,
        "static": 0,
        "hit_ratio": 0.0,
        "p50_ms": usr.p50_ms,
        "p95_ms": usr.p95_ms,
        "countries": {"US": 4},
    }

    assert only_us == {"us-east": usr}
    assert none == {} and later == {}
    # Countries over every node of the project, the deleted one too; largest first.
    assert list(per_country.items()) == [("JP", 5), ("DE", 4), ("US", 4), ("FR", 3), ("ZZ", 1)]
    assert other == {"DE": 1}

    # GET /cdn/analytics (every node's rows): static responses count as hits, never as misses.
    doc = ok(api.get("/api/v1/infrastructure/cdn/analytics?timeframe=1h"))
    assert (doc["requests"], doc["hits"], doc["misses"]) == (17, 11, 6)
    assert doc["hit_ratio"] == pytest.approx(11 / 17)
    assert doc["cache"]["STATIC"] == 3


def test_regional_keeps_the_ten_largest_countries_and_old_reports_still_count(
    api: Api, now: datetime
) -> None:
    node_id, token = node(api, "eu-1", "eu-central")
    url = f"{EDGE}/nodes/{node_id}/analytics"
    minute = now - timedelta(minutes=5)
    codes = [f"A{c}" for c in "ABCDEFGHIJKL"]  # 12 countries, AA: 1 ... AL: 12 requests
    counts = {code: i + 1 for i, code in enumerate(codes)}
    hist = [0] * BUCKETS
    hist[UPSTREAM_MS_BUCKETS.index(100)] = 78
    new = {"site": "default", "domain": "a.test", "minute": minute.isoformat(), "requests": 78,
           "hits": 78, "static": 78, "request_ms": hist, "countries": counts}  # fmt: skip
    # An agent from before request times, bundles and countries: none of those fields.
    before = {"site": "default", "domain": "b.test", "minute": minute.isoformat(),
              "requests": 22, "misses": 22, "statuses": {"5xx": 22}}  # fmt: skip
    ok(api.post(url, token=token, json={"minutes": [new, before]}), 204)

    with api.db.read(LOCAL, "default") as tx:
        (eu,) = analytics.regional(tx, "default", now - timedelta(hours=1), now).values()
    assert list(eu.countries) == codes[::-1][:10]  # AL (12) ... AC (3); AB and AA left out
    assert eu.countries["AC"] == 3
    assert (eu.requests, eu.hits, eu.misses, eu.static, eu.errors_5xx) == (100, 78, 22, 78, 22)
    assert eu.hit_ratio == pytest.approx(0.78)
    # Only the new report has request times: 78 in (70, 100].
    assert eu.p50_ms == pytest.approx(70 + 30 * 0.5)
    assert eu.p95_ms == pytest.approx(70 + 30 * 0.95)


def test_reports_with_bad_new_fields_are_refused(api: Api, now: datetime) -> None:
    node_id, token = node(api, "eu-1", "eu-central")
    url = f"{EDGE}/nodes/{node_id}/analytics"
    m = {"site": "default", "domain": "a.test", "minute": now.isoformat(), "requests": 1}
    for bad, field in [
        ({"request_ms": [1, 2]}, "minutes.0.request_ms"),
        ({"request_ms": [-1] + [0] * (BUCKETS - 1)}, "minutes.0.request_ms"),
        ({"countries": {"de": 1}}, "minutes.0.countries"),
        ({"countries": {"DEU": 1}}, "minutes.0.countries"),
        ({"countries": {"DE": -1}}, "minutes.0.countries"),
        ({"static": -1}, "minutes.0.static"),
        ({"backends": {"10.0.0.1:80": -1}}, "minutes.0.backends"),
        ({"backends": {"": 1}}, "minutes.0.backends"),
    ]:
        r = api.post(url, token=token, json={"minutes": [{**m, **bad}]})
        assert r.status_code == 422 and r.json()["field"] == field, (bad, r.text)
    with api.db.read(LOCAL, "default") as tx:
        stored = analytics.regional(tx, "default", now - timedelta(hours=1), now + timedelta(1))
    assert stored == {}
