"""``GET /api/v1/overview``: a project at a glance for the dashboard — domains by status, the
domains whose certificate expires within 30 days (by their longest-lasting active one), and the
load balancer backends no live edge node sees up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import Api
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import BackendHealthRow, CertificateRow, EdgeNodeRow

OVERVIEW = "/api/v1/overview"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def cert(domain: str, cid: str, days: float, status: str = "active") -> CertificateRow:
    now = datetime.now(UTC)
    return CertificateRow(
        project_id="default", id=cid, domain=domain, issuer="internal", names=[domain],
        status=status, cert_pem="-", key_encrypted="-", not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=days),
    )  # fmt: skip


def test_empty_project(api: Api) -> None:
    got = ok(api.get(OVERVIEW))
    assert got["project"] == "default"
    assert got["domains"] == {"total": 0, "by_status": {}}
    assert got["certificates"] == {"active": 0, "expiring_soon": 0, "soon_days": 30, "expiring": []}
    assert got["backends"] == {"total": 0, "down": 0, "down_list": []}


def test_counts_and_lists(api: Api) -> None:
    for name in ("a.localhost", "b.localhost"):
        ok(api.post("/api/v1/infrastructure/domains", json={"domain": name}), 201)
    ok(
        api.post(
            "/api/v1/infrastructure/loadbalancer",
            json={"id": "lb", "backends": [{"address": "10.0.0.1:80"}, {"address": "10.0.0.2:80"}]},
        ),
        201,
    )
    # (read before the stand-in certificates below, which the domain list cannot parse)
    domains = ok(api.get("/api/v1/infrastructure/domains"))["domains"]
    statuses: dict[str, int] = {}
    for d in domains:
        statuses[d["status"]] = statuses.get(d["status"], 0) + 1
    before = ok(api.get(OVERVIEW))
    now = datetime.now(UTC)
    with api.db.transaction(LOCAL, "default") as tx:
        # Certificates of names that are not the project's domains (those got their own, from
        # the internal CA): x.localhost renewed (an old version expiring tomorrow, a new one
        # for 90 days).
        tx.session.add(cert("x.localhost", "x-old", 1))
        tx.session.add(cert("x.localhost", "x-new", 90))
        # y.localhost: expires in 5 days; a revoked later one does not count.
        tx.session.add(cert("y.localhost", "y-1", 5))
        tx.session.add(cert("y.localhost", "y-2", 80, status="revoked"))
        tx.session.add(EdgeNodeRow(id="edge-a", name="edge-a", region="us-east", last_seen_at=now))
        tx.session.flush()
        for backend, state in (("10.0.0.1:80", "up"), ("10.0.0.2:80", "down")):
            tx.session.add(
                BackendHealthRow(
                    node_id="edge-a", pool="lb.default.lb", backend=backend, project_id="default",
                    state=state, reason="connection refused" if state == "down" else "HTTP 200",
                )
            )  # fmt: skip

    got = ok(api.get(OVERVIEW))
    assert got["domains"] == {"total": 2, "by_status": statuses}
    certs = got["certificates"]
    assert (certs["active"] - before["certificates"]["active"], certs["expiring_soon"]) == (2, 1)
    assert [c["domain"] for c in certs["expiring"]] == ["y.localhost"]
    assert 4.9 <= certs["expiring"][0]["days_left"] <= 5.0
    assert got["backends"] == {
        "total": 2,
        "down": 1,
        "down_list": [
            {"load_balancer": "lb", "backend": "10.0.0.2:80", "reason": "connection refused"}
        ],
    }


def test_viewer_sees_it_and_other_projects_do_not_mix(api: Api) -> None:
    ok(api.post("/api/v1/infrastructure/domains", json={"domain": "c.localhost"}), 201)
    viewer = api.token("viewer")
    assert ok(api.call("GET", OVERVIEW, token=viewer))["domains"]["total"] == 1
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    assert ok(api.get(OVERVIEW, params={"project": "other"}))["domains"]["total"] == 0
    assert api.call("GET", OVERVIEW, token=viewer, params={"project": "other"}).status_code == 403
