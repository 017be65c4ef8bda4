"""Edge functions through the REST API: deploys and their versions, what a deploy inherits,
an unchanged deploy, secrets kept write-only (answers, audit), code that does not compile,
route validation and overlap, activation, rollback, deletion and token scopes. The rollout
driven by node reports is tests/api/test_function_rollouts.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from conftest import Api
from edgeplane.store.actor import LOCAL
from edgeplane.store.function_tables import FunctionRow, FunctionVersionRow
from edgeplane.store.tables import AuditRow

EDGE = "/api/v1/edge"
INV = "/api/v1/infrastructure"
FN = f"{INV}/functions"
PROTOCOL = {"Edgeplane-Protocol": "3"}
CODE = 'export default {\n  async fetch(request, env) {\n    return new Response("hi");\n  },\n};\n'
SECRET = "s3cr3t-value-never-shown"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    if field is not None:
        assert doc.get("field") == field, doc
    return doc


def code(text: str = "hi") -> str:
    return CODE.replace('"hi"', json.dumps(text))


class FnNode:
    """An edge node as the control plane sees it: registered (protocol 3, able to run
    functions unless told otherwise), sending heartbeats with its function reports."""

    def __init__(
        self,
        api: Api,
        token: str,
        name: str,
        region: str,
        *,
        functions: bool = True,
        protocol: int = 3,
    ) -> None:
        self.api = api
        self.token = token
        self.protocol = protocol
        body: dict[str, Any] = {"name": name, "region": region, "http_port": 8080}
        if protocol >= 2:
            body["protocol"] = protocol
        if protocol >= 3:
            body["functions"] = functions
        r = api.client.post(f"{EDGE}/nodes", json=body, headers=self._headers())
        self.id = str(ok(r)["id"])
        self.name = name
        self.region = region
        self.reports: dict[str, Any] = {}
        self.beat()

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Edgeplane-Protocol": str(self.protocol),
        }

    def beat(self, healthy: bool = True) -> None:
        body: dict[str, Any] = {"healthy": healthy}
        if self.reports:
            body["functions"] = self.reports
        r = self.api.client.post(
            f"{EDGE}/nodes/{self.id}/heartbeat", json=body, headers=self._headers()
        )
        ok(r, 204)

    def report(
        self,
        version: dict[str, Any],
        state: str,
        error: str | None = None,
        project: str = "default",
    ) -> None:
        report: dict[str, Any] = {
            "version_id": version["id"],
            "version": version["version"],
            "state": state,
        }
        if error is not None:
            report["error"] = error
        self.reports[f"{project}/{version['name']}"] = report
        self.beat()


def edge_token(api: Api) -> str:
    doc = ok(api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}), 201)
    return str(doc["token"])


def fn_nodes(api: Api, *where: tuple[str, str], **options: Any) -> dict[str, FnNode]:
    token = edge_token(api)
    return {name: FnNode(api, token, name, region, **options) for name, region in where}


def add_domain(api: Api, domain: str = "shop.test", project: str | None = None) -> None:
    params = {"project": project} if project else None
    ok(api.post(f"{INV}/domains", json={"domain": domain}, params=params), 201)


def put(api: Api, name: str, status: int = 202, **body: Any) -> Any:
    body.setdefault("code", CODE)
    return ok(api.call("PUT", f"{FN}/{name}", json=body), status)


def version(api: Api, name: str, n: int) -> dict[str, Any]:
    return ok(api.get(f"{FN}/{name}/versions/{n}"))  # type: ignore[no-any-return]


def make_active(nodes: dict[str, FnNode], v: dict[str, Any]) -> None:
    """Every node reports ``v`` active, the canary first."""
    ordered = sorted(nodes.values(), key=lambda n: n.id != v.get("canary_node"))
    for n in ordered:
        n.report(v, "active")


@pytest.fixture
def site(api: Api) -> dict[str, FnNode]:
    """A domain and a function-capable live node in each of eu-central and us-east."""
    add_domain(api)
    return fn_nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))


ROUTES = [{"pattern": "*/api/*", "methods": ["get", "POST", "GET"]}]


def test_deploy_then_read(api: Api, site: dict[str, FnNode]) -> None:
    doc = put(api, "hello", routes=ROUTES, env={"MODE": "test"}, message="first")
    assert doc["created"] is True
    v = doc["version"]
    assert (v["name"], v["version"], v["status"]) == ("hello", 1, "canary")
    assert v["id"].startswith("fnv-") and len(v["sha256"]) == 64
    assert v["size"] == len(CODE.encode())
    assert v["routes"] == [{"pattern": "*/api/*", "methods": ["GET", "POST"]}]
    assert v["env"] == {"MODE": "test"} and v["secrets"] == []
    assert v["limits"] == {"timeout_ms": 5000, "memory_mb": 128}
    assert v["canary_node"] == site["eu-1"].id and v["message"] == "first"
    assert v["regions"] == ["eu-central", "us-east"]
    assert doc["function"]["name"] == "hello" and doc["function"]["versions"] == 1

    fn = ok(api.get(f"{FN}/hello"))
    assert fn["current"]["id"] == v["id"] and fn["active_version"] is None
    progress = {p["region"]: p for p in fn["current"]["progress"]}
    assert progress["eu-central"]["state"] == "canary" and progress["us-east"]["state"] == "pending"
    assert all(p["nodes"] == 1 and p["serving"] == 0 for p in progress.values())
    listed = ok(api.get(FN))
    assert [f["name"] for f in listed["items"]] == ["hello"] and listed["next_cursor"] is None
    detail = version(api, "hello", 1)
    assert detail["code"] == CODE and detail["id"] == v["id"]
    page = ok(api.get(f"{FN}/hello/versions"))
    assert [x["version"] for x in page["items"]] == [1] and "code" not in page["items"][0]
    problem(api.get(f"{FN}/nope"), 404)
    problem(api.get(f"{FN}/hello/versions/9"), 404)
    problem(api.get(f"{FN}/Bad_Name"), 422, "name")


def test_a_deploy_inherits_what_it_leaves_out(api: Api, site: dict[str, FnNode]) -> None:
    doc = put(
        api, "hello", routes=ROUTES, env={"A": "1"}, secrets={"TOKEN": SECRET, "OTHER": "x"},
        limits={"timeout_ms": 100, "memory_mb": 64}, check_path="/api/health",
    )  # fmt: skip
    first = doc["version"]
    assert first["secrets"] == ["OTHER", "TOKEN"]
    second = put(api, "hello", code=code("v2"), limits={"memory_mb": 256})["version"]
    assert second["version"] == 2 and second["routes"] == first["routes"]
    assert second["env"] == {"A": "1"} and second["secrets"] == ["OTHER", "TOKEN"]
    assert second["limits"] == {"timeout_ms": 100, "memory_mb": 256}
    assert second["check_path"] == "/api/health"
    # The canary in progress was cancelled by the new version.
    assert version(api, "hello", 1)["status"] == "cancelled"
    third = put(api, "hello", code=code("v3"), secrets={"OTHER": None}, check_path="")["version"]
    assert third["secrets"] == ["TOKEN"] and third["check_path"] is None
    # The secret kept is the value given first (the runtime gets it; nobody else).
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.scalar(select(FunctionVersionRow).where(FunctionVersionRow.version == 3))
        assert row is not None and row.secrets_encrypted
        assert json.loads(tx.secrets.decrypt(row.secrets_encrypted)) == {"TOKEN": SECRET}
        assert SECRET not in row.secrets_encrypted


def test_an_unchanged_deploy_answers_the_current_version(api: Api, site: dict[str, FnNode]) -> None:
    first = put(api, "hello", routes=ROUTES, secrets={"K": SECRET})["version"]
    same = put(api, "hello", 200, routes=ROUTES, secrets={"K": SECRET})
    assert same["created"] is False and same["version"]["id"] == first["id"]
    assert put(api, "hello", 200)["version"]["id"] == first["id"]  # all inherited
    # A secret's value is part of the content.
    changed = put(api, "hello", secrets={"K": SECRET + "2"})["version"]
    assert changed["version"] == 2 and changed["sha256"] != first["sha256"]
    assert ok(api.get(f"{FN}/hello/versions"))["items"][0]["version"] == 2


def test_secrets_are_never_answered_nor_audited(api: Api, site: dict[str, FnNode]) -> None:
    answers = [
        api.call(
            "PUT",
            f"{FN}/hello",
            json={"code": CODE, "routes": ROUTES, "secrets": {"TOKEN": SECRET}},
        ),
        api.get(f"{FN}/hello"),
        api.get(FN),
        api.get(f"{FN}/hello/versions"),
        api.get(f"{FN}/hello/versions/1"),
        api.call("PUT", f"{FN}/hello", json={"code": code("x"), "secrets": {"TOKEN": SECRET}}),
        # a refused deploy does not echo it either
        api.call("PUT", f"{FN}/hello", json={"code": "}", "secrets": {"TOKEN": SECRET}}),
        api.call("PUT", f"{FN}/hello", json={"code": CODE, "secrets": {"bad name": SECRET}}),
        api.call("PUT", f"{FN}/hello", json={"code": CODE, "env": {"TOKEN": SECRET}}),
    ]
    for r in answers:
        assert SECRET not in r.text, r.text
    assert answers[0].json()["version"]["secrets"] == ["TOKEN"]
    with api.db.read(LOCAL, "default") as tx:
        events = list(tx.session.scalars(select(AuditRow).where(AuditRow.kind == "function")))
        assert events, "deploys are audited"
        for e in events:
            assert SECRET not in json.dumps([e.before, e.after], default=str)
        created = [e for e in events if e.action == "create"]
        assert created[0].after["secrets"] == ["TOKEN"]


def test_code_that_does_not_compile_is_refused_with_its_position(
    api: Api, site: dict[str, FnNode]
) -> None:
    bad = "export default {\n  async fetch(request) {\n    return 1; }}\n  }\n};\n"
    doc = problem(api.call("PUT", f"{FN}/hello", json={"code": bad, "routes": ROUTES}), 422, "code")
    assert doc["detail"].startswith("code: line 4, column ") and "SyntaxError" in doc["detail"]
    assert ok(api.get(FN))["items"] == []
    with api.db.read(LOCAL, "default") as tx:
        assert tx.session.scalars(select(FunctionRow)).all() == []
        assert tx.session.scalars(select(FunctionVersionRow)).all() == []
    check = ok(api.post(f"{FN}/check", json={"code": bad}))
    assert check["ok"] is False and check["line"] == 4 and isinstance(check["column"], int)
    assert "SyntaxError" in check["message"]
    assert ok(api.post(f"{FN}/check", json={"code": CODE})) == {
        "ok": True, "line": None, "column": None, "message": "",
    }  # fmt: skip
    problem(api.post(f"{FN}/check", json={}), 422, "code")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "code"),
        ({"code": ""}, "code"),
        ({"code": "x" * (1024 * 1024 + 1)}, "code"),
        ({"code": CODE}, "routes"),  # the first deploy needs routes
        ({"code": CODE, "routes": []}, "routes"),
        ({"code": CODE, "routes": [{"pattern": "api/*"}]}, "routes.0.pattern"),
        ({"code": CODE, "routes": [{"pattern": "*/a*b"}]}, "routes.0.pattern"),
        ({"code": CODE, "routes": [{"pattern": "*/a?b"}]}, "routes.0.pattern"),
        ({"code": CODE, "routes": [{"pattern": "*/a b"}]}, "routes.0.pattern"),
        ({"code": CODE, "routes": [{"pattern": "*/" + "a" * 511}]}, "routes.0.pattern"),
        ({"code": CODE, "routes": [{"pattern": "*/x", "methods": ["FETCH"]}]}, "routes.0.methods"),
        ({"code": CODE, "routes": [{"pattern": "*/x"}] * 51}, "routes"),
        ({"code": CODE, "routes": [{"pattern": "other.test/x"}]}, "routes.0.pattern"),
        ({"code": CODE, "routes": [{"pattern": "*/x"}, {"pattern": "*/x"}]}, "routes.1.pattern"),
        ({"code": CODE, "routes": ROUTES, "env": {"1X": "v"}}, "env"),
        ({"code": CODE, "routes": ROUTES, "env": {"X": "v" * 5121}}, "env"),
        ({"code": CODE, "routes": ROUTES, "env": {f"V{i}": "" for i in range(65)}}, "env"),
        ({"code": CODE, "routes": ROUTES, "env": {"K": "1"}, "secrets": {"K": "2"}}, "secrets.K"),
        ({"code": CODE, "routes": ROUTES, "limits": {"timeout_ms": 0}}, "limits.timeout_ms"),
        ({"code": CODE, "routes": ROUTES, "limits": {"memory_mb": 2048}}, "limits.memory_mb"),
        ({"code": CODE, "routes": ROUTES, "check_path": "health"}, "check_path"),
        ({"code": CODE, "routes": ROUTES, "message": "m" * 201}, "message"),
        ({"code": CODE, "routes": ROUTES, "surprise": 1}, "surprise"),
    ],
)
def test_bad_deploys_are_refused_naming_the_field(
    api: Api, site: dict[str, FnNode], body: dict[str, Any], field: str
) -> None:
    problem(api.call("PUT", f"{FN}/hello", json=body), 422, field)
    assert ok(api.get(FN))["items"] == []


def test_route_hosts_must_be_the_projects(api: Api, site: dict[str, FnNode]) -> None:
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    add_domain(api, "other.test", project="other")
    doc = problem(
        api.call("PUT", f"{FN}/hello", json={"code": CODE, "routes": [
            {"pattern": "shop.test/a"}, {"pattern": "other.test/a"}]}),
        422, "routes.1.pattern",
    )  # fmt: skip
    assert doc["detail"] == "routes.1.pattern: other.test is not a domain of project 'default'"
    v = put(api, "hello", routes=[{"pattern": "SHOP.test/a"}])["version"]
    assert v["routes"][0]["pattern"] == "shop.test/a"


def test_overlapping_routes_of_another_function_are_refused(
    api: Api, site: dict[str, FnNode]
) -> None:
    put(api, "one", routes=[{"pattern": "shop.test/api/*", "methods": ["GET"]}])
    # Other methods, another path or a prefix of it do not overlap.
    put(api, "two", routes=[{"pattern": "*/api/*", "methods": ["POST"]}, {"pattern": "*/ap*"}])
    for pattern, methods in (("*/api/*", []), ("shop.test/api/*", ["GET", "PUT"])):
        body = {
            "code": CODE,
            "routes": [{"pattern": "*/z"}, {"pattern": pattern, "methods": methods}],
        }
        doc = problem(api.call("PUT", f"{FN}/three", json=body), 409, "routes.1.pattern")
        assert "'one'" in doc["detail"] or "'two'" in doc["detail"], doc
    problem(api.get(f"{FN}/three"), 404)
    # A function's own earlier routes are no conflict; a deleted function's neither.
    put(api, "one", routes=[{"pattern": "*/api/*", "methods": ["GET"]}])
    ok(api.delete(f"{FN}/two"), 204)
    put(api, "three", routes=[{"pattern": "*/ap*"}])


def test_activate_and_rollback(api: Api, site: dict[str, FnNode]) -> None:
    problem(api.post(f"{FN}/hello/rollback"), 404)
    v1 = put(api, "hello", routes=ROUTES)["version"]
    problem(api.post(f"{FN}/hello/versions/1/activate"), 409)  # rolling out already
    make_active(site, v1)
    assert version(api, "hello", 1)["status"] == "active"
    problem(api.post(f"{FN}/hello/rollback"), 409)  # nothing before it
    problem(api.post(f"{FN}/hello/versions/1/activate"), 409)  # active already
    v2 = put(api, "hello", code=code("v2"))["version"]
    make_active(site, v2)
    assert version(api, "hello", 1)["status"] == "superseded"
    assert ok(api.get(f"{FN}/hello"))["active_version"] == 2

    back = ok(api.post(f"{FN}/hello/rollback"), 202)
    v3 = back["version"]
    assert (v3["version"], v3["status"], v3["canary_node"]) == (3, "rolling", None)
    assert v3["reactivates"] == v1["id"] and v3["sha256"] == v1["sha256"]
    assert version(api, "hello", 3)["code"] == CODE
    make_active(site, v3)
    assert version(api, "hello", 2)["status"] == "superseded"
    again = ok(api.post(f"{FN}/hello/versions/2/activate"), 202)["version"]
    assert again["version"] == 4 and again["reactivates"] == v2["id"]
    # A version that was never active does not go out at once.
    v5 = put(api, "hello", code=code("v5"))["version"]
    assert version(api, "hello", 4)["status"] == "cancelled"
    site["eu-1"].report(v5, "failed", "boom")
    assert version(api, "hello", 5)["status"] == "failed"
    problem(api.post(f"{FN}/hello/versions/5/activate"), 409)
    problem(api.post(f"{FN}/hello/versions/99/activate"), 404)


def test_delete_removes_every_version(api: Api, site: dict[str, FnNode]) -> None:
    put(api, "hello", routes=ROUTES)
    put(api, "hello", code=code("v2"))
    ok(api.delete(f"{FN}/hello"), 204)
    problem(api.get(f"{FN}/hello"), 404)
    problem(api.delete(f"{FN}/hello"), 404)
    with api.db.read(LOCAL, "default") as tx:
        assert tx.session.scalars(select(FunctionVersionRow)).all() == []
        deleted = tx.session.scalar(
            select(AuditRow).where(AuditRow.kind == "function", AuditRow.action == "delete")
        )
        assert deleted is not None and deleted.object_id == "hello"
    # The name is free again: a first deploy.
    assert put(api, "hello", routes=ROUTES)["version"]["version"] == 1


def test_no_capable_node_no_deploy(api: Api) -> None:
    add_domain(api)
    fn_nodes(api, ("eu-1", "eu-central"), functions=False)
    doc = problem(api.call("PUT", f"{FN}/hello", json={"code": CODE, "routes": ROUTES}), 409)
    assert "no live edge node can run functions" in doc["detail"]
    assert ok(api.get(FN))["items"] == []


def test_roles_and_scopes(api: Api, site: dict[str, FnNode]) -> None:
    viewer = api.token("viewer")
    put(api, "hello", routes=ROUTES)
    assert api.get(f"{FN}/hello", token=viewer).status_code == 200
    assert api.post(f"{FN}/check", token=viewer, json={"code": CODE}).status_code == 200
    r = api.call("PUT", f"{FN}/hello", token=viewer, json={"code": code("x")})
    assert r.status_code == 403
    assert api.delete(f"{FN}/hello", token=viewer).status_code == 403

    def scoped(*scopes: str) -> str:
        body = {"name": "s", "roles": {"default": "editor"}, "scopes": list(scopes)}
        return str(ok(api.post("/api/v1/tokens", json=body), 201)["token"])

    reader = scoped("functions:read")
    assert api.get(f"{FN}/hello", token=reader).status_code == 200
    assert api.post(f"{FN}/check", token=reader, json={"code": CODE}).status_code == 200
    r = api.call("PUT", f"{FN}/hello", token=reader, json={"code": code("x")})
    assert r.status_code == 403 and "functions:write" in r.text
    writer = scoped("functions:write")
    r = api.call("PUT", f"{FN}/hello", token=writer, json={"code": code("x")})
    assert r.status_code == 202, r.text
    other = scoped("edge_deployments:write")
    assert api.get(f"{FN}/hello", token=other).status_code == 403


def test_check_is_an_action_not_a_name(api: Api) -> None:
    for method in ("GET", "PUT", "DELETE", "OPTIONS"):
        r = api.call(method, f"{FN}/check", json={"code": CODE})
        assert r.status_code == 405 and r.headers["allow"] == "POST", (method, r.text)
    r = api.call("OPTIONS", f"{FN}/hello")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET, PUT"
