"""``GET /metrics`` of the control plane: who may scrape, and what the exposition says."""

from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from conftest import Api
from edgeplane.services import access
from edgeplane.store.actor import LOCAL


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metrics_token(api: Api) -> str:
    with api.db.transaction(LOCAL, "default") as tx:
        return access.create_token(tx, {"name": "prom", "scope": "metrics"}).token


def test_scrape_needs_a_metrics_token_or_a_platform_role(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 401
    scrape = metrics_token(api)
    assert api.call("GET", "/metrics", token=scrape).status_code == 200
    assert api.get("/metrics").status_code == 200  # the platform admin
    assert api.call("GET", "/metrics", token=api.token("viewer")).status_code == 200
    # a token of another project only sees its project: not the platform's metrics
    api.post("/api/v1/projects", json={"id": "shop", "name": "Shop"})
    other = api.token("admin", project="shop")
    r = api.call("GET", "/metrics", token=other)
    assert r.status_code == 403 and "metrics token" in r.json()["detail"]
    # a metrics token is nothing else
    r = api.call("GET", "/api/v1/infrastructure/domains", token=scrape)
    assert r.status_code == 403 and "/metrics only" in r.json()["detail"]
    r = api.call("GET", "/api/v1/edge/nodes/x/config", token=scrape)
    assert r.status_code == 403


def test_metrics_token_takes_no_roles(api: Api) -> None:
    r = api.post(
        "/api/v1/tokens", json={"name": "p", "scope": "metrics", "roles": {"default": "viewer"}}
    )
    assert r.status_code == 422, r.text
    assert "roles" in r.text and "no roles" in r.text
    r = api.post("/api/v1/tokens", json={"name": "p", "scope": "metrics"})
    assert r.status_code == 201 and r.json()["scope"] == "metrics"


def test_requests_are_counted_by_route_template_and_status(api: Api) -> None:
    for name in ("a.example.com", "b.example.com"):
        api.get(f"/api/v1/infrastructure/domains/{name}")  # 404s, on the same template
    api.get("/api/v1/no-such-thing")
    text = api.get("/metrics").text
    got = samples(text)
    route = "/api/v1/infrastructure/domains/{domain}"
    key = ("edgeplane_api_requests_total", (("method", "GET"), ("route", route), ("status", "404")))
    assert got[key] >= 2
    assert "a.example.com" not in text  # paths never become labels
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert got[("edgeplane_api_requests_total", unmatched)] >= 1
    count = ("edgeplane_api_request_duration_seconds_count", (("method", "GET"), ("route", route)))
    assert got[count] >= 2


def test_state_metrics(api: Api) -> None:
    rev = api.get("/api/v1/revision").json()["revision"]
    api.post("/api/v1/infrastructure/regions", json={"id": "r1", "name": "R1", "type": "europe"})
    got = samples(api.get("/metrics").text)
    assert got[("edgeplane_revision", ())] >= rev
    assert got[("edgeplane_edge_nodes", ())] == 0
    assert got[("edgeplane_edge_nodes_live", ())] == 0
    assert ("process_resident_memory_bytes", ()) in got


def test_openmetrics_and_gzip(api: Api) -> None:
    r = api.client.get(
        "/metrics",
        headers={
            **api.headers(),
            "Accept": "application/openmetrics-text; version=1.0.0",
            "Accept-Encoding": "gzip",
        },
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_promtool_finds_no_problem(api: Api) -> None:
    api.get("/api/v1/infrastructure/domains/x.example.com")
    body = api.get("/metrics").content
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
