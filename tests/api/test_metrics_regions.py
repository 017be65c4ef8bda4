"""``GET /api/v1/metrics/regions``: a project's traffic per edge region with its client
countries and their centroids (what the dashboard's global map draws)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Api
from edgeplane.model.enums import Role
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS
from edgeplane.routing.geoip import country_centroids

EDGE = "/api/v1/edge"
BUCKETS = len(UPSTREAM_MS_BUCKETS) + 1


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def node(api: Api, name: str, region: str) -> tuple[str, str]:
    token = ok(api.post("/api/v1/tokens", json={"name": name, "scope": "edge"}), 201)["token"]
    doc = ok(api.post(f"{EDGE}/nodes", token=token, json={"name": name, "region": region}))
    return str(doc["id"]), str(token)


def minute_of(site: str, domain: str, at: datetime, countries: dict[str, int], ms: int) -> Any:
    hist = [0] * BUCKETS
    hist[UPSTREAM_MS_BUCKETS.index(ms)] = sum(countries.values())
    return {
        "site": site,
        "domain": domain,
        "minute": at.isoformat(),
        "requests": sum(countries.values()),
        "misses": sum(countries.values()),
        "bytes_out": 100,
        "request_ms": hist,
        "countries": countries,
    }


def test_traffic_per_region_with_country_centroids(api: Api) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    eu, eu_token = node(api, "eu-1", "eu-central")
    us, us_token = node(api, "us-1", "us-east")
    recent, old = now - timedelta(minutes=5), now - timedelta(hours=3)
    eu_minutes = [
        minute_of("default", "a.test", recent, {"DE": 6, "FR": 2, "ZZ": 1}, 10),
        minute_of("default", "a.test", old, {"DE": 50}, 10),  # outside 1h, inside 6h
        minute_of("other", "o.test", recent, {"JP": 5}, 10),  # another project
    ]
    ok(api.post(f"{EDGE}/nodes/{eu}/analytics", token=eu_token, json={"minutes": eu_minutes}), 204)
    us_minutes = [minute_of("default", "a.test", recent, {"US": 4}, 50)]
    ok(api.post(f"{EDGE}/nodes/{us}/analytics", token=us_token, json={"minutes": us_minutes}), 204)

    doc = ok(api.get("/api/v1/metrics/regions"))
    by = {r["region"]: r for r in doc["regions"]}
    assert list(by) == ["eu-central", "us-east"]
    assert by["eu-central"]["requests"] == 9
    assert by["eu-central"]["countries"] == {"DE": 6, "FR": 2, "ZZ": 1}
    assert (by["eu-central"]["region_code"], by["eu-central"]["region_type"]) == ("eu", "europe")
    assert by["us-east"]["countries"] == {"US": 4}
    assert 30 < by["us-east"]["p50_ms"] <= 50 and 7 < by["eu-central"]["p50_ms"] <= 10
    centroids = {c["code"]: (c["latitude"], c["longitude"]) for c in doc["countries"]}
    assert set(centroids) == {"DE", "FR", "US"}  # ZZ has none; JP is another project's
    assert centroids["DE"] == pytest.approx(country_centroids()["DE"])

    wider = ok(api.get("/api/v1/metrics/regions?since=6h"))
    assert {r["region"]: r["requests"] for r in wider["regions"]} == {
        "eu-central": 59,
        "us-east": 4,
    }
    other = ok(api.get("/api/v1/metrics/regions?project=other"))
    assert [r["countries"] for r in other["regions"]] == [{"JP": 5}]

    refused = api.get("/api/v1/metrics/regions?since=2h")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "since"


def test_a_viewer_reads_it_and_an_empty_project_has_no_regions(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    viewer = api.token(Role.VIEWER)
    doc = ok(api.get("/api/v1/metrics/regions?since=15m", token=viewer))
    assert doc["regions"] == [] and doc["countries"] == []
    elsewhere = api.get("/api/v1/metrics/regions", token=api.token(Role.VIEWER, "other"))
    assert elsewhere.status_code == 403, elsewhere.text
