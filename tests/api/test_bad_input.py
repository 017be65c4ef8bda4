"""Bad input (design contract 5): a clear RFC 7807 problem naming the field and the reason,
the right status, never a stack trace, and never any partial state left behind.

Every refusal is checked by ``refused``: the status, ``application/problem+json``, the
``type`` / ``title`` / ``status`` / ``detail`` members, the ``field`` at fault (named in the
detail too), no traceback text, and that nothing changed: the revision (over HTTP), the listing
of the object kind (over HTTP) and every table of the database (read directly) are identical
before and after. Variants of one mistake share a test; each variant is checked in full.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from conftest import Api
from edgeplane.services import datacenters, dr, load_balancers, server_services, servers
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import Base

INV = "/api/v1/infrastructure"
SERVERS = f"{INV}/servers"
DCS = f"{INV}/datacenters"
SERVICES = f"{INV}/services"
LBS = f"{INV}/loadbalancer"
DRS = f"{INV}/dr-configs"
REGIONS = f"{INV}/regions"
PROBLEM = "application/problem+json"
TRACE_MARKERS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3", "pydantic_core")


def state(api: Api, listing: str = SERVERS) -> dict[str, Any]:
    """The revision and ``listing`` over HTTP, and every row of every table.

    Reading the tables directly is stricter than listing each kind over HTTP and costs one
    connection; only ``api_tokens.last_used_at`` may move, as using a token does.
    """
    revision = api.get("/api/v1/revision")
    assert revision.status_code == 200, revision.text
    listed = api.get(listing)
    assert listed.status_code == 200, listed.text
    out: dict[str, Any] = {
        "revision": revision.json()["revision"],
        "listing": (listing, listed.json()),
    }
    with api.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = [dict(row._mapping) for row in conn.execute(select(table))]
            for row in rows:
                row.pop("last_used_at", None)
            out[table.name] = sorted(rows, key=repr)
    return out


def refused(
    api: Api,
    before: dict[str, Any],
    r: Any,
    status: int,
    field: str | None,
    slug: str | None = None,
) -> dict[str, Any]:
    """Check ``r`` is a clean problem document and that nothing changed; return the problem."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    for marker in TRACE_MARKERS:
        assert marker not in r.text, r.text
    doc: dict[str, Any] = r.json()
    for key in ("type", "title", "status", "detail"):
        assert doc.get(key), (key, doc)
    assert doc["status"] == status
    if field is not None:
        assert doc.get("field") == field, doc
        if field != "body":
            assert field in doc["detail"], doc
    if slug is not None:
        assert doc["type"] == f"https://edgeplane.dev/problems/{slug}", doc
    assert state(api, before["listing"][0]) == before, "a refused request changed the state"
    return doc


def raw(api: Api, method: str, path: str, content: str) -> Any:
    headers = {**api.headers(), "content-type": "application/json"}
    return api.client.request(method, path, content=content, headers=headers)


def server_body(server_id: str = "web-2", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": server_id,
        "name": "Web",
        "type": "primary",
        "region": "americas",
        "location": "us-east",
        "capacity": {"cpu": 8, "memory": 32, "storage": 500},
    }
    body.update(kw)
    return body


def dc_body(dc_id: str = "dc-x", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": dc_id,
        "name": "NA",
        "region": "na",
        "location": "us-east",
        "tier": 3,
        "capacity": {"cpu": 100, "memory": 400, "storage": 1000},
    }
    body.update(kw)
    return body


def dr_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "NA DR",
        "primary_dc": "dc-na-1",
        "backup_dc": "dc-na-2",
        "rpo": 15,
        "rto": 60,
    }
    body.update(kw)
    return body


def ok(r: Any) -> Any:
    assert r.status_code in (200, 201, 204), r.text
    return r.json() if r.status_code != 204 else None


@pytest.fixture
def api(api: Api) -> Api:
    """Some state for the refusals to leave untouched.

    dc-na-1 (us-east, 100 CPU / 400 GB / 1000 GB) holds web-1 (8 / 32 / 500), which runs cdn-1
    (the cdn default, 2 / 4 / 50); dc-na-2 is in us-west; lb-1 balances over web-1; dr-1 pairs
    the two data centers.
    """
    # Through the service layer in one transaction: the same code the API calls, but cheaper
    # than six requests (these tests are about the refusals, not the seeding).
    with api.db.transaction(LOCAL, "default") as tx:
        datacenters.create(tx, dc_body("dc-na-1"))
        datacenters.create(tx, dc_body("dc-na-2", location="us-west"))
        servers.create(tx, server_body("web-1", data_center_id="dc-na-1"))
        server_services.create(tx, {"id": "cdn-1", "server_id": "web-1", "type": "cdn"})
        load_balancers.create(tx, {"id": "lb-1", "endpoints": ["web-1"]})
        dr.create(tx, dr_body(id="dr-1"))
    return api


# Routing input ----------------------------------------------------------------------------


def test_route_invalid_ipv4(api: Api) -> None:
    before = state(api)
    for ip in ("999.1.1.1", "1.2.3", "not-an-ip", " ", "1.2.3.4/24", "1.2.3.4; rm -rf /"):
        r = api.get(f"{INV}/route", params={"client_ip": ip, "service_type": "cdn"})
        doc = refused(api, before, r, 422, "client_ip", "invalid-input")
        assert "is not an IPv4 or IPv6 address" in doc["detail"]


def test_route_invalid_ipv6(api: Api) -> None:
    before = state(api)
    for ip in ("2001:db8:::1", "gggg::1", "::ffff:999.1.1.1", "fe80::1%", "1:2:3:4:5:6:7:8:9"):
        r = api.get(f"{INV}/route", params={"client_ip": ip, "service_type": "cdn"})
        refused(api, before, r, 422, "client_ip", "invalid-input")


def test_route_missing_or_unknown_parameters(api: Api) -> None:
    before = state(api)
    r = api.get(f"{INV}/route", params={"service_type": "cdn"})
    doc = refused(api, before, r, 422, "client_ip")
    assert "is required" in doc["detail"]
    r = api.get(f"{INV}/route", params={"client_ip": "8.8.8.8", "service_type": "teleport"})
    refused(api, before, r, 422, "service_type")


# Values -----------------------------------------------------------------------------------


def test_unknown_server_type(api: Api) -> None:
    before = state(api)
    r = api.post(SERVERS, json=server_body(type="mainframe"))
    doc = refused(api, before, r, 422, "type", "invalid-input")
    assert "'primary'" in doc["detail"], "the reason lists what is allowed"
    assert doc["errors"] == [{"field": "type", "reason": doc["errors"][0]["reason"]}]
    r = api.patch(f"{SERVERS}/web-1", json={"type": "mainframe"})
    refused(api, before, r, 422, "type")
    r = api.post(SERVERS, json=server_body(region="atlantis"))
    refused(api, before, r, 422, "region")


def test_negative_capacity(api: Api) -> None:
    before = state(api)
    r = api.post(SERVERS, json=server_body(capacity={"cpu": -1, "memory": 8, "storage": 10}))
    doc = refused(api, before, r, 422, "capacity.cpu", "invalid-input")
    assert "greater than or equal to 0" in doc["detail"]
    r = api.patch(f"{SERVERS}/web-1", json={"capacity": {"cpu": 8, "memory": -32}})
    refused(api, before, r, 422, "capacity.memory")
    r = api.post(DCS, json=dc_body(capacity={"cpu": 1, "memory": 1, "storage": -0.5}))
    refused(api, before, r, 422, "capacity.storage")
    r = api.post(SERVICES, json={"server_id": "web-1", "type": "web", "resources": {"cpu": -2}})
    refused(api, before, r, 422, "resources.cpu")


def test_non_finite_capacity(api: Api) -> None:
    # Python's JSON parser accepts NaN and Infinity: they must be refused, never stored.
    before = state(api)
    for value in ("NaN", "Infinity", "-Infinity", "1e400", '"lots"'):
        body = (
            '{"id": "web-2", "name": "W", "type": "edge", "region": "americas", '
            f'"location": "us-east", "capacity": {{"cpu": 1, "memory": {value}, "storage": 1}}}}'
        )
        refused(api, before, raw(api, "POST", SERVERS, body), 422, "capacity.memory")


def test_bad_data_center_tier(api: Api) -> None:
    before = state(api, DCS)
    for tier in (7, 0, -1, "seven", True, False, 3.5, "tier_9", None, [3]):
        r = api.post(DCS, json=dc_body(tier=tier))
        doc = refused(api, before, r, 422, "tier", "invalid-input")
        assert "1, 2, 3 or 4" in doc["detail"] or "valid" in doc["detail"], doc
    r = api.patch(f"{DCS}/dc-na-1", json={"tier": 7})
    refused(api, before, r, 422, "tier")


def test_missing_required_fields(api: Api) -> None:
    before = state(api)
    r = api.post(SERVERS, json={"id": "web-2", "name": "Web"})
    doc = refused(api, before, r, 422, "type")
    # region and location may be left out when the other (or a data center) names a location
    assert {e["field"] for e in doc["errors"]} == {"type", "capacity"}
    assert all(e["reason"] == "is required" for e in doc["errors"])


def test_invalid_caller_id(api: Api) -> None:
    before = state(api)
    for bad_id in ("Server 123", "-web", "web/1", "x" * 64, "", "web-1\n"):
        refused(api, before, api.post(SERVERS, json=server_body(bad_id)), 422, "id")


def test_invalid_server_address(api: Api) -> None:
    before = state(api)
    for address in ("bad host!", "-leading.example", "a" * 300, "10.0.0.1:80"):
        r = api.post(SERVERS, json=server_body(address=address))
        refused(api, before, r, 422, "address")


# Body and fields --------------------------------------------------------------------------


def test_malformed_json(api: Api) -> None:
    before = state(api)
    for body in ('{"id": "web-2", "name": ', "{'id': 'x'}", "not json", "{,}", "\x00"):
        doc = refused(api, before, raw(api, "POST", SERVERS, body), 400, "body", "malformed-body")
        assert "not valid JSON" in doc["detail"]
    refused(api, before, raw(api, "PATCH", f"{SERVERS}/web-1", '{"name": "x"'), 400, "body")


def test_body_not_an_object(api: Api) -> None:
    before = state(api)
    for body in ([], "a string", 42, None):
        r = api.post(SERVERS, json=body)
        refused(api, before, r, 422, None, "invalid-input")
        r = api.patch(f"{SERVERS}/web-1", json=body)
        refused(api, before, r, 422, None, "invalid-input")


def test_unknown_field(api: Api) -> None:
    before = state(api)
    r = api.post(SERVERS, json=server_body(colour="blue"))
    doc = refused(api, before, r, 422, "colour", "invalid-input")
    assert "not a known field" in doc["detail"]
    r = api.post(
        SERVERS, json=server_body(capacity={"cpu": 1, "memory": 1, "storage": 1, "gpu": 2})
    )
    refused(api, before, r, 422, "capacity.gpu")
    r = api.patch(f"{SERVERS}/web-1", json={"name": "ok", "colour": "blue"})
    refused(api, before, r, 422, "colour")
    r = api.patch(f"{DCS}/dc-na-1", json={"owner": "me"})
    refused(api, before, r, 422, "owner")
    r = api.patch(f"{LBS}/lb-1", json={"health_check": {"retries": 3}})
    refused(api, before, r, 422, "health_check.retries")


# Conflicts --------------------------------------------------------------------------------


def test_duplicate_caller_id(api: Api) -> None:
    before = state(api)
    for path, body in (
        (SERVERS, server_body("web-1")),
        (DCS, dc_body("dc-na-1")),
        (SERVICES, {"id": "cdn-1", "server_id": "web-1", "type": "web"}),
        (LBS, {"id": "lb-1", "endpoints": ["10.0.0.1:80"]}),
        (DRS, dr_body(id="dr-1")),
    ):
        doc = refused(api, before, api.post(path, json=body), 409, None, "conflict")
        assert doc["field"] == "id"
        assert f"'{body['id']}' already exists" in doc["detail"]
    r = api.post(REGIONS, json={"code": "us-east", "name": "Again", "latitude": 1, "longitude": 1})
    assert refused(api, before, r, 409, None, "conflict")["field"] == "code"
    r = api.post("/api/v1/projects", json={"id": "default"})
    assert refused(api, before, r, 409, None, "conflict")["field"] == "id"


def test_service_over_allocating_its_server(api: Api) -> None:
    # web-1 has 8 CPU / 32 GB; cdn-1 holds 2 / 4.
    before = state(api, SERVICES)
    r = api.post(
        SERVICES,
        json={
            "id": "db-1",
            "server_id": "web-1",
            "type": "database",
            "settings": {"engine": "postgresql"},
            "resources": {"cpu": 7, "memory": 1},
        },
    )
    doc = refused(api, before, r, 409, "resources.cpu", "capacity-exceeded")
    assert doc["title"] == "Capacity exceeded"
    assert "has 8 CPU cores with 2 allocated; 7 more does not fit (over by 1)" in doc["detail"]

    # Without resources a service takes its type's default: a database 4 CPU / 16 GB.
    ok(
        api.post(
            SERVICES,
            json={
                "id": "db-1",
                "server_id": "web-1",
                "type": "database",
                "settings": {"engine": "postgresql"},
            },
        )
    )
    before = state(api, SERVICES)
    r = api.post(
        SERVICES,
        json={
            "id": "db-2",
            "server_id": "web-1",
            "type": "database",
            "settings": {"engine": "mysql"},
        },
    )
    doc = refused(api, before, r, 409, "resources.cpu", "capacity-exceeded")
    assert "has 8 CPU cores with 6 allocated; 4 more" in doc["detail"]

    # Growing a service counts what the others hold, not itself.
    r = api.patch(f"{SERVICES}/cdn-1", json={"resources": {"cpu": 4.5, "memory": 4}})
    doc = refused(api, before, r, 409, "resources.cpu", "capacity-exceeded")
    assert "with 4 allocated; 4.5 more" in doc["detail"]


def test_server_over_allocating_its_data_center(api: Api) -> None:
    # dc-na-1 has 100 / 400 / 1000 and web-1 takes 8 / 32 / 500.
    before = state(api)
    r = api.post(
        SERVERS,
        json=server_body(
            data_center_id="dc-na-1", capacity={"cpu": 8, "memory": 369, "storage": 10}
        ),
    )
    doc = refused(api, before, r, 409, "capacity.memory", "capacity-exceeded")
    assert "'dc-na-1' has 400 GB memory with 32 allocated; 369 more" in doc["detail"]
    r = api.patch(f"{SERVERS}/web-1", json={"capacity": {"cpu": 101, "memory": 32, "storage": 500}})
    doc = refused(api, before, r, 409, "capacity.cpu", "capacity-exceeded")
    assert "with 0 allocated; 101 more" in doc["detail"]


def test_shrinking_a_server_below_its_services(api: Api) -> None:
    before = state(api)
    r = api.patch(f"{SERVERS}/web-1", json={"capacity": {"cpu": 1, "memory": 32, "storage": 500}})
    doc = refused(api, before, r, 409, "capacity.cpu", "capacity-exceeded")
    assert "1 CPU cores is less than the 2 already allocated" in doc["detail"]


def test_shrinking_a_data_center_below_its_servers(api: Api) -> None:
    before = state(api, DCS)
    r = api.patch(f"{DCS}/dc-na-1", json={"capacity": {"cpu": 100, "memory": 400, "storage": 499}})
    doc = refused(api, before, r, 409, "capacity.storage", "capacity-exceeded")
    assert "499 GB storage is less than the 500 already allocated" in doc["detail"]


def test_delete_in_use(api: Api) -> None:
    before = state(api)
    for path in (f"{SERVERS}/web-1", f"{DCS}/dc-na-1", f"{DCS}/dc-na-2", f"{REGIONS}/us-east"):
        refused(api, before, api.delete(path), 409, None, "conflict")


# Placement --------------------------------------------------------------------------------


def test_unknown_location(api: Api) -> None:
    before = state(api)
    r = api.post(SERVERS, json=server_body(location="us-north"))
    doc = refused(api, before, r, 422, "location", "invalid-input")
    assert "unknown region 'us-north'" in doc["detail"]
    refused(api, before, api.post(DCS, json=dc_body(location="mars-1")), 422, "location")
    refused(api, before, api.post(SERVERS, json=server_body(location="US East!")), 422, "location")


def test_location_in_a_different_area(api: Api) -> None:
    before = state(api)
    r = api.post(SERVERS, json=server_body(region="europe", location="us-east"))
    doc = refused(api, before, r, 422, "location")
    assert doc["detail"] == (
        "location: 'us-east' lies in na (americas), not in region 'europe'; "
        "europe has eu-central, eu-north, eu-west, uk-south"
    )
    r = api.post(DCS, json=dc_body(region="eu", location="us-east"))
    refused(api, before, r, 422, "location")
    r = api.patch(f"{SERVERS}/web-1", json={"region": "asia_pacific"})
    refused(api, before, r, 422, "location")


def test_server_location_differs_from_its_data_center(api: Api) -> None:
    before = state(api)
    r = api.post(SERVERS, json=server_body(location="us-west", data_center_id="dc-na-1"))
    doc = refused(api, before, r, 422, "location")
    assert "must be 'us-east', the location of data center 'dc-na-1'" in doc["detail"]
    r = api.patch(f"{SERVERS}/web-1", json={"location": "us-west"})
    refused(api, before, r, 422, "location")
    r = api.post(SERVERS, json=server_body(data_center_id="dc-zz"))
    doc = refused(api, before, r, 422, "data_center_id")
    assert "no data center 'dc-zz'" in doc["detail"]


# Services ---------------------------------------------------------------------------------


def test_service_settings_invalid_for_its_type(api: Api) -> None:
    before = state(api, SERVICES)
    r = api.post(
        SERVICES,
        json={"server_id": "web-1", "type": "cdn", "settings": {"caching": "sometimes"}},
    )
    doc = refused(api, before, r, 422, "settings.caching", "invalid-input")
    assert "'aggressive'" in doc["detail"], "the reason lists what is allowed"
    r = api.patch(f"{SERVICES}/cdn-1", json={"settings": {"caching": "sometimes"}})
    refused(api, before, r, 422, "settings.caching")


def test_service_settings_other_mistakes(api: Api) -> None:
    before = state(api, SERVICES)
    for body, field in (
        ({"type": "web", "settings": {"port": 80, "gzip": True}}, "settings.gzip"),
        ({"type": "web", "settings": {"port": 70000}}, "settings.port"),
        ({"type": "database"}, "settings.engine"),
        ({"type": "cdn", "settings": "aggressive"}, "settings"),
        ({"type": "cdn", "server_id": "server-123"}, "server_id"),
    ):
        r = api.post(SERVICES, json={"server_id": "web-1", **body})
        refused(api, before, r, 422, field)
    r = api.patch(f"{SERVICES}/cdn-1", json={"settings": {"default_ttl": -5}})
    refused(api, before, r, 422, "settings.default_ttl")


def test_unknown_service_type(api: Api) -> None:
    before = state(api, SERVICES)
    r = api.post(SERVICES, json={"server_id": "web-1", "type": "teleporter"})
    doc = refused(api, before, r, 422, "type")
    assert "unknown service type 'teleporter'" in doc["detail"] and "cdn" in doc["detail"]


# Load balancers ---------------------------------------------------------------------------


def test_load_balancer_endpoint_not_a_server_nor_an_address(api: Api) -> None:
    before = state(api, LBS)
    for endpoint in (
        "not a server",
        "host:99999",
        "ftp://origin.example.com",
        "http://",
        "10.0.0.1:",
        "[2001:db8::zz]:80",
        "Web-1!",
        "",
    ):
        r = api.post(LBS, json={"endpoints": ["web-1", endpoint]})
        doc = refused(api, before, r, 422, "endpoints.1", "invalid-input")
        assert doc["detail"].startswith("endpoints.1: ") and len(doc["errors"]) == 1, doc


def test_load_balancer_endpoint_unknown_server(api: Api) -> None:
    before = state(api, LBS)
    r = api.post(LBS, json={"endpoints": ["web-1", "endpoint2"]})
    doc = refused(api, before, r, 422, "endpoints.1")
    assert "no server 'endpoint2'" in doc["detail"]
    r = api.patch(f"{LBS}/lb-1", json={"endpoints": ["endpoint1"]})
    refused(api, before, r, 422, "endpoints.0")
    r = api.post(LBS, json={"endpoints": ["web-1", "web-1"]})
    doc = refused(api, before, r, 422, "endpoints.1")
    assert "listed twice" in doc["detail"]


def test_health_check_timeout_not_below_interval(api: Api) -> None:
    before = state(api, LBS)
    for hc in (
        {"interval_s": 5, "timeout_s": 5},
        {"interval_s": 2, "timeout_s": 10},
        {"timeout_s": 30},
    ):
        r = api.post(LBS, json={"endpoints": ["web-1"], "health_check": hc})
        doc = refused(api, before, r, 422, "health_check.timeout_s", "invalid-input")
        assert "shorter than interval_s" in doc["detail"]
    r = api.patch(f"{LBS}/lb-1", json={"health_check": {"timeout_s": 30}})
    refused(api, before, r, 422, "health_check.timeout_s")
    r = api.patch(f"{LBS}/lb-1", json={"health_check": {"interval_s": 1}})
    refused(api, before, r, 422, "health_check.timeout_s")


def test_load_balancer_other_mistakes(api: Api) -> None:
    before = state(api, LBS)
    refused(api, before, api.post(LBS, json={"type": "random_walk"}), 422, "algorithm")
    refused(api, before, api.post(LBS, json={"algorithm": 3}), 422, "algorithm")
    r = api.post(LBS, json={"type": "ip_hash", "algorithm": "least_conn"})
    doc = refused(api, before, r, 422, None, "invalid-input")
    assert "either algorithm or type" in doc["detail"]
    for hc, field in (
        ({"expected_status": "299-200"}, "health_check.expected_status"),
        ({"expected_status": "ok"}, "health_check.expected_status"),
        ({"protocol": "icmp"}, "health_check.protocol"),
        ({"path": "no-slash"}, "health_check.path"),
        ({"healthy_threshold": 0}, "health_check.healthy_threshold"),
    ):
        r = api.post(LBS, json={"endpoints": ["web-1"], "health_check": hc})
        refused(api, before, r, 422, field)


# DR configs -------------------------------------------------------------------------------


def test_dr_config_unknown_data_center(api: Api) -> None:
    before = state(api, DRS)
    for field in ("primary_dc", "backup_dc"):
        r = api.post(DRS, json=dr_body(**{field: "dc-na-9"}))
        doc = refused(api, before, r, 422, field, "invalid-input")
        assert "no data center 'dc-na-9'" in doc["detail"]
        r = api.patch(f"{DRS}/dr-1", json={field: "dc-na-9"})
        refused(api, before, r, 422, field)


def test_dr_config_same_data_center(api: Api) -> None:
    before = state(api, DRS)
    r = api.post(DRS, json=dr_body(backup_dc="dc-na-1"))
    doc = refused(api, before, r, 422, "backup_dc", "invalid-input")
    assert "must be a different data center than primary_dc" in doc["detail"]
    r = api.patch(f"{DRS}/dr-1", json={"primary_dc": "dc-na-2"})
    refused(api, before, r, 422, "backup_dc")


def test_dr_config_bad_objectives(api: Api) -> None:
    before = state(api, DRS)
    for field, value in (("rpo", 0), ("rto", -1), ("rpo", "soon"), ("rto", 10081)):
        refused(api, before, api.post(DRS, json=dr_body(**{field: value})), 422, field)


# Pages and lookups ------------------------------------------------------------------------


def test_page_limit_out_of_range(api: Api) -> None:
    before = state(api)
    for path in (SERVERS, DCS, SERVICES, LBS, DRS, "/api/v1/audit"):
        refused(api, before, api.get(f"{path}?limit=5000"), 422, "limit", "invalid-input")
    for limit in ("0", "-1", "ten", ""):
        refused(api, before, api.get(f"{SERVERS}?limit={limit}"), 422, "limit")


def test_unknown_objects_paths_and_methods(api: Api) -> None:
    before = state(api)
    for path in (
        "servers/nope",
        "datacenters/nope/capacity",
        "services/nope",
        "loadbalancer/nope",
        "dr-configs/nope",
        "regions/nope",
    ):
        doc = refused(api, before, api.get(f"{INV}/{path}"), 404, None, "not-found")
        assert "'nope'" in doc["detail"]
    refused(api, before, api.delete(f"{SERVERS}/nope"), 404, None, "not-found")
    refused(api, before, api.patch(f"{DCS}/nope", json={"name": "x"}), 404, None, "not-found")
    refused(api, before, api.get("/api/v1/nothing-here"), 404, None)
    refused(api, before, api.call("PUT", f"{SERVERS}/web-1", json={}), 405, None)


def test_unknown_project(api: Api) -> None:
    before = state(api)
    r = api.post(f"{SERVERS}?project=ghost", json=server_body())
    doc = refused(api, before, r, 404, None, "not-found")
    assert "project 'ghost' not found" in doc["detail"]
    refused(api, before, api.get(f"{SERVERS}?project=ghost"), 404, None, "not-found")
    headers = {**api.headers(), "X-Edgeplane-Project": "ghost"}
    r = api.client.post(SERVERS, json=server_body(), headers=headers)
    refused(api, before, r, 404, None, "not-found")
    refused(api, before, api.client.get(SERVERS, headers=headers), 404, None, "not-found")
    refused(api, before, api.get("/api/v1/projects/ghost"), 404, None, "not-found")


# Authentication and roles -----------------------------------------------------------------


def test_missing_token(api: Api) -> None:
    before = state(api)
    r = api.client.post(SERVERS, json=server_body())
    doc = refused(api, before, r, 401, None, "unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in doc["detail"]
    r = api.client.get(SERVERS)
    refused(api, before, r, 401, None, "unauthenticated")
    assert r.headers["www-authenticate"] == "Bearer"


def test_unknown_or_malformed_token(api: Api) -> None:
    before = state(api)
    for authorization in (
        "Bearer ep_not-a-real-token",
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        "ep_x",
        "Bearer " + api.admin_token + "x",
    ):
        r = api.client.post(SERVERS, json=server_body(), headers={"Authorization": authorization})
        refused(api, before, r, 401, None, "unauthenticated")
        assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_token(api: Api) -> None:
    issued = ok(api.post("/api/v1/tokens", json={"name": "ci", "roles": {"default": "editor"}}))
    ok(api.delete(f"/api/v1/tokens/{issued['id']}"))
    before = state(api)
    r = api.post(SERVERS, token=issued["token"], json=server_body())
    doc = refused(api, before, r, 401, None, "unauthenticated")
    assert "revoked" in doc["detail"]
    assert r.headers["www-authenticate"] == "Bearer"


def test_viewer_cannot_write(api: Api) -> None:
    viewer = api.token("viewer")
    before = state(api)
    for method, path, body in (
        ("POST", SERVERS, server_body()),
        ("PATCH", f"{SERVERS}/web-1", {"name": "renamed"}),
        ("DELETE", f"{SERVICES}/cdn-1", None),
        ("POST", LBS, {"endpoints": ["web-1"]}),
        ("DELETE", f"{DRS}/dr-1", None),
        ("POST", f"{SERVERS}/web-1/metrics", {"cpu_percent": 1, "memory_percent": 1}),
    ):
        r = api.call(method, path, token=viewer, json=body)
        doc = refused(api, before, r, 403, None, "forbidden")
        assert "needs the editor role in project 'default'" in doc["detail"]
        assert "this token is viewer" in doc["detail"]


def test_editor_cannot_change_regions(api: Api) -> None:
    editor = api.token("editor")
    before = state(api)
    r = api.post(
        REGIONS,
        token=editor,
        json={"code": "eu-south", "name": "Milan", "latitude": 45.46, "longitude": 9.19},
    )
    doc = refused(api, before, r, 403, None, "forbidden")
    assert "admin role in the default project" in doc["detail"]
    refused(
        api,
        before,
        api.patch(f"{REGIONS}/us-east", token=editor, json={"name": "VA"}),
        403,
        None,
        "forbidden",
    )
    refused(api, before, api.delete(f"{REGIONS}/eu-north", token=editor), 403, None, "forbidden")


def test_token_of_another_project(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "acme"}))
    acme_admin = api.token("admin", project="acme")
    before = state(api)
    r = api.post(SERVERS, token=acme_admin, json=server_body())
    doc = refused(api, before, r, 403, None, "forbidden")
    assert "no role in project 'default'" in doc["detail"]
    refused(api, before, api.get(f"{SERVERS}/web-1", token=acme_admin), 403, None, "forbidden")
    r = api.delete(f"{SERVERS}/web-1?project=default", token=acme_admin)
    refused(api, before, r, 403, None, "forbidden")


def test_bad_token_requests(api: Api) -> None:
    before = state(api)
    r = api.post("/api/v1/tokens", json={"name": "x", "roles": {"default": "owner"}})
    refused(api, before, r, 422, "roles.default")
    refused(api, before, api.post("/api/v1/tokens", json={"name": "x", "roles": {}}), 422, "roles")
    r = api.post("/api/v1/tokens", json={"name": "x", "roles": {"ghost": "viewer"}})
    refused(api, before, r, 422, "roles.ghost")
    refused(
        api,
        before,
        api.post("/api/v1/tokens", json={"name": " ", "roles": {"default": "viewer"}}),
        422,
        "name",
    )


# Metrics ----------------------------------------------------------------------------------


def test_metrics_out_of_range(api: Api) -> None:
    before = state(api)
    path = f"{SERVERS}/web-1/metrics"
    r = api.post(path, json={"cpu_percent": 150, "memory_percent": 10})
    doc = refused(api, before, r, 422, "cpu_percent", "invalid-input")
    assert len(doc["errors"]) == 1, doc
    r = api.post(path, json=[{"cpu_percent": 10, "memory_percent": 10}, {"cpu_percent": 10}])
    doc = refused(api, before, r, 422, "samples.1.memory_percent", "invalid-input")
    assert doc["errors"] == [{"field": "samples.1.memory_percent", "reason": "Field required"}]
    refused(api, before, api.post(path, json=[]), 422, "samples")
    refused(api, before, api.post(path, json="hot"), 422, "samples")
    refused(
        api,
        before,
        api.post(path, json=[{"cpu_percent": 1, "memory_percent": 1}, 7]),
        422,
        "samples.1",
    )
    r = api.post(path, json={"cpu_percent": 1, "memory_percent": 1, "at": "2999-01-01T00:00:00Z"})
    refused(api, before, r, 422, "at")
    assert api.get(path).json() == []
