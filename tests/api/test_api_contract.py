"""The API's contract as issue 11 states it: the OpenAPI document lists each operation's error
answers as problem documents, text refuses control characters and numbers refuse booleans
(on SQLite and PostgreSQL alike), 405 names the allowed methods, bodies that do not parse get
the product's problem types, and the last admin token of the platform cannot be revoked."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Api
from edgeplane.model.enums import Role
from edgeplane.services import access
from edgeplane.store.actor import LOCAL

# The CLI / SDK / contract over the API: the API itself runs on both databases elsewhere.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

INV = "/api/v1/infrastructure"
PROBLEM = "application/problem+json"


def problem(r: Any, status: int, slug: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    doc: dict[str, Any] = r.json()
    assert doc["type"] == f"https://edgeplane.dev/problems/{slug}", doc
    assert doc["status"] == status and doc["title"] and doc["detail"], doc
    if field is not None:
        assert doc["field"] == field, doc
        assert field in doc["detail"], doc
    return doc


def dc_body(**over: Any) -> dict[str, Any]:
    body = {
        "id": "dc-1",
        "name": "DC",
        "region": "na",
        "location": "us-east",
        "tier": 3,
        "capacity": {"cpu": 100, "memory": 100, "storage": 100},
    }
    return {**body, **over}


def test_openapi_lists_problem_errors(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail"}
    assert {"field", "errors"} <= set(schemas["Problem"]["properties"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    content = response["content"]
                    assert list(content) == [PROBLEM], (method, path, status)
                    assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    servers = doc["paths"][f"{INV}/servers"]
    assert {"400", "401", "403", "404", "409", "415", "422"} <= set(servers["post"]["responses"])
    # A global listing without a path id cannot answer 404.
    assert "404" not in doc["paths"][f"{INV}/regions"]["get"]["responses"]
    assert "404" in doc["paths"][f"{INV}/regions/{{code}}"]["get"]["responses"]
    assert "502" in doc["paths"][f"{INV}/ssl/{{domain}}"]["post"]["responses"]
    assert "413" in doc["paths"][f"{INV}/edge/bundles"]["post"]["responses"]
    assert "401" not in doc["paths"]["/healthz"]["get"]["responses"]


def test_openapi_states_input_rules(api: Api) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    for name, schema in schemas.items():
        if name.endswith(("Create", "Patch", "Request", "Update")):
            assert schema.get("additionalProperties") is False, name
    assert schemas["DataCenterCreate"]["properties"]["name"]["minLength"] == 1
    assert "pattern" in schemas["DataCenterCreate"]["properties"]["name"]
    assert schemas["PurgeRequest"]["anyOf"]
    token = schemas["TokenCreate"]
    assert token["anyOf"][0]["required"] == ["roles"]
    assert token["properties"]["roles"]["minProperties"] == 1
    # Bounds of optional numbers in JSON Schema's words, keys of maps by propertyNames.
    port = schemas["Backend"]["properties"]["port"]["anyOf"][0]
    assert (port["minimum"], port["maximum"]) == (1, 65535) and "ge" not in port
    # A patch's fields may be left out; null only where it clears an optional field.
    update = schemas["BackendUpdate"]["properties"]
    assert update["weight"]["type"] == "integer" and "default" not in update["weight"]
    assert {"type": "null"} in update["port"]["anyOf"]
    labels = schemas["ServerCreate"]["properties"]["labels"]
    assert "patternProperties" not in labels and labels["propertyNames"]["pattern"]
    assert labels["additionalProperties"]["type"] == "string"
    assert "pattern" in schemas["CacheRuleCreate"]["properties"]["pattern"]
    assert "pattern" in schemas["PurgeRequest"]["properties"]["paths"]["items"]
    assert "cdn" in schemas["ServiceCreate"]["properties"]["type"]["enum"]


def test_openapi_has_no_pydantic_words(api: Api) -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number"):
                assert not {"ge", "le", "gt", "lt"} & set(node), where
            assert "patternProperties" not in node, where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(api.client.get("/openapi.json").json(), "")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (f"{INV}/datacenters", dc_body(name="a\x00b"), "name"),
        ("/api/v1/tokens", {"name": "t\x00", "roles": {"default": "viewer"}}, "name"),
        (
            f"{INV}/servers",
            {
                "name": "s",
                "type": "edge",
                "region": "americas",
                "location": "us-east",
                "capacity": {"cpu": 1},
                "labels": {"k": "v\x00"},
            },
            "labels.k",
        ),
    ],
)
def test_nul_in_text_is_refused(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    doc = problem(api.post(path, json=body), 422, "invalid-input", field)
    assert "control characters" in doc["detail"]


def test_nul_in_dr_config_name(api: Api) -> None:
    assert api.post(f"{INV}/datacenters", json=dc_body()).status_code == 201
    assert api.post(f"{INV}/datacenters", json=dc_body(id="dc-2")).status_code == 201
    body = {"name": "dr\x00", "primary_dc": "dc-1", "backup_dc": "dc-2", "rpo": 5, "rto": 10}
    problem(api.post(f"{INV}/dr-configs", json=body), 422, "invalid-input", "name")
    assert api.get(f"{INV}/dr-configs").json()["items"] == []


def test_control_characters_in_parameters(api: Api) -> None:
    problem(api.get(f"{INV}/servers/a%00b"), 422, "invalid-input", "server_id")
    problem(api.get(f"{INV}/servers?location=x%07"), 422, "invalid-input", "location")
    problem(api.get(f"{INV}/servers?project=a%00"), 422, "invalid-input", "project")


def test_booleans_are_not_numbers(api: Api) -> None:
    problem(api.post(f"{INV}/datacenters", json=dc_body(capacity={"cpu": True})), 422,
            "invalid-input", "capacity.cpu")  # fmt: skip
    body = {"name": "dr", "primary_dc": "a", "backup_dc": "b", "rpo": True, "rto": 10}
    doc = problem(api.post(f"{INV}/dr-configs", json=body), 422, "invalid-input", "rpo")
    assert "not true" in doc["detail"]
    body = {"pattern": "/static/*", "ttl": True}
    problem(api.post(f"{INV}/cdn/rules", json=body), 422, "invalid-input", "ttl")
    body = {"health_check": {"timeout_s": True}}
    problem(api.post(f"{INV}/loadbalancer", json=body), 422, "invalid-input",
            "health_check.timeout_s")  # fmt: skip
    body = {"name": "dr", "primary_dc": "a", "backup_dc": "b", "rpo": "5", "rto": 10}
    problem(api.post(f"{INV}/dr-configs", json=body), 422, "invalid-input", "rpo")
    # Integers stay numbers for floats, and 1.0 a whole number.
    r = api.post(f"{INV}/datacenters", json=dc_body(capacity={"cpu": 1, "memory": 2.5}))
    assert r.status_code == 201, r.text


def test_patch_refuses_unknown_fields_and_booleans(api: Api) -> None:
    assert api.post(f"{INV}/datacenters", json=dc_body()).status_code == 201
    problem(api.patch(f"{INV}/datacenters/dc-1", json={"colour": "x"}), 422, "invalid-input",
            "colour")  # fmt: skip
    problem(api.patch(f"{INV}/datacenters/dc-1", json={"capacity": {"cpu": False}}), 422,
            "invalid-input", "capacity.cpu")  # fmt: skip
    r = api.patch(f"{INV}/datacenters/dc-1", json={"capacity": {"cpu": 50}})
    assert r.status_code == 200 and r.json()["capacity"]["memory"] == 100, r.text


def test_405_has_allow(api: Api) -> None:
    r = api.call("PUT", f"{INV}/datacenters")
    problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "GET, POST"
    r = api.call("POST", f"{INV}/datacenters/dc-1")
    assert r.headers["allow"] == "DELETE, GET, PATCH"
    r = api.call("PATCH", f"{INV}/loadbalancer/lb/backends/x/drain", json={})
    problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "POST"
    assert api.delete(f"{INV}/loadbalancer/lb/backends/x/drain").headers["allow"] == "POST"
    # Routes outside the included routers count too.
    assert api.call("PUT", "/openapi.json").headers["allow"] == "GET, HEAD"
    assert api.call("POST", "/healthz").headers["allow"] == "GET"
    # A literal segment beside a parameter: current is read-only, not a version's id.
    r = api.patch(f"{INV}/edge/deployments/current", json={})
    problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "GET"
    problem(api.get("/api/v1/no-such-thing"), 404, "not-found")


def test_unparseable_bodies(api: Api) -> None:
    path = f"{INV}/datacenters"
    h = {**api.headers(), "Content-Type": "application/json"}
    for raw in (b"{bad", b'{"name": "\x80"}', b"\xff\xfe"):
        r = api.client.post(path, content=raw, headers=h)
        problem(r, 400, "malformed-body", "body")
    r = api.client.post(
        path, content=b"{}", headers={**api.headers(), "Content-Type": "text/plain"}
    )
    problem(r, 415, "unsupported-media-type", "body")
    r = api.client.post(path, content=b"", headers=h)
    problem(r, 422, "invalid-input", "body")
    r = api.client.post(f"{INV}/servers/x/metrics", content=b"{}", headers=api.headers())
    problem(r, 415, "unsupported-media-type")


def test_token_roles_are_required(api: Api) -> None:
    problem(api.post("/api/v1/tokens", json={"name": "t"}), 422, "invalid-input", "roles")
    r = api.post(
        "/api/v1/tokens", json={"name": "e", "scope": "edge", "roles": {"default": "admin"}}
    )
    problem(r, 422, "invalid-input", "roles")
    assert api.post("/api/v1/tokens", json={"name": "e", "scope": "edge"}).status_code == 201


def test_last_admin_token_cannot_be_revoked(api: Api) -> None:
    me = api.get("/api/v1/whoami").json()["token_id"]
    doc = problem(api.delete(f"/api/v1/tokens/{me}"), 409, "conflict")
    assert "last token with the admin role" in doc["detail"]
    assert api.get("/api/v1/whoami").status_code == 200
    # With a second admin, either may go, but not both.
    other = api.token(Role.ADMIN)
    other_id = api.get("/api/v1/whoami", token=other).json()["token_id"]
    assert api.delete(f"/api/v1/tokens/{other_id}").status_code == 200
    problem(api.delete(f"/api/v1/tokens/{me}"), 409, "conflict")
    # An editor token of the default project does not count as an admin.
    api.token(Role.EDITOR)
    problem(api.delete(f"/api/v1/tokens/{me}"), 409, "conflict")
    with api.db.transaction(LOCAL, "default") as tx:
        assert next(t for t in access.list_tokens(tx) if t.id == me).revoked_at is None


def test_viewer_gets_422_for_bad_bodies_and_403_for_good_ones(api: Api) -> None:
    viewer = api.token(Role.VIEWER)
    bad = api.post(f"{INV}/datacenters", token=viewer, json=dc_body(tier=True))
    problem(bad, 422, "invalid-input", "tier")
    problem(api.post(f"{INV}/datacenters", token=viewer, json=dc_body()), 403, "forbidden")
    problem(api.post("/api/v1/tokens", token=viewer, json={"name": "t", "roles": {"default":
            "viewer"}}), 403, "forbidden")  # fmt: skip
    assert api.get(f"{INV}/datacenters").json()["items"] == []


def test_rules_stated_in_the_schema_are_enforced(api: Api) -> None:
    problem(api.post(f"{INV}/cdn/rules", json={"pattern": " /static/*"}), 422, "invalid-input",
            "pattern")  # fmt: skip
    problem(api.post(f"{INV}/cdn/purge", json={"paths": ["static/*"]}), 422, "invalid-input",
            "paths.0")  # fmt: skip
    body = {"pattern": "/a/*", "cache_key": {"headers": ["x y"]}}
    problem(api.post(f"{INV}/cdn/rules", json=body), 422, "invalid-input", "cache_key.headers")
    problem(api.get("/api/v1/audit?cursor=%C2%B2"), 422, "invalid-input", "cursor")
    problem(api.get("/api/v1/audit?cursor=" + "9" * 19), 422, "invalid-input", "cursor")
    assert api.get("/api/v1/audit?cursor=" + "9" * 18).status_code == 200
    assert api.get("/api/v1/audit?cursor=").status_code == 200  # the first page
    problem(api.patch(f"{INV}/loadbalancer/lb/backends/x", json={"weight": None}), 422,
            "invalid-input", "weight")  # fmt: skip
