"""The four example functions of ``docs/functions.md`` (``examples/functions/*.js``) in the real
runtime, each answering as the docs say: an A/B test by cookie, a redirect by the client's
country (the packaged GeoIP database's answer for the test's addresses), a header rewrite and
a JSON API. The origin behind them is a stand-in on the internal fetch socket; the same files
run through real edge nodes in the integration tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeplane.node.functions.process import FunctionRuntime
from function_runtime_support import (
    StandIn,
    call,
    function,
    geoip_db,
    needs_runtime,
    running_runtime,
)

pytestmark = needs_runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "functions"


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    with StandIn(str(tmp_path_factory.mktemp("examples") / "fn-fetch.sock")) as server:
        server.routes["/"] = (200, {"Content-Type": "text/html", "Server": "origin/1"}, b"A")
        server.routes["/b/"] = (200, {"Content-Type": "text/html", "Server": "origin/1"}, b"B")
        yield server


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, origin: StandIn) -> Iterator[FunctionRuntime]:
    names = ("ab-test", "geo-redirect", "header-rewrite", "json-api")
    entries = [function(f"shop/{name}", (EXAMPLES / f"{name}.js").read_text()) for name in names]
    entries[0]["env"] = {"B_SHARE": "0.5"}
    entries[3]["env"] = {"REGION_LABEL": "eu-central"}
    config = {
        "fetch_socket": origin.path,
        "geoip_db": geoip_db(),
        "allow_private_fetch": False,
        "functions": entries,
    }
    with running_runtime(Path(tmp_path_factory.mktemp("fnrt-examples"))) as rt:
        loaded = rt.load(config)["functions"]
        assert all(v["ok"] for v in loaded.values()), loaded
        yield rt


def test_ab_test_keeps_a_visitor_in_one_group(runtime: FunctionRuntime) -> None:
    seen = set()
    for _ in range(40):
        first = call(runtime, "shop/ab-test", "/")
        group = first.headers["x-ab-group"]
        assert first.text == group  # group B got /b/ from the origin
        assert f"ab={group}" in first.headers["set-cookie"]
        again = call(runtime, "shop/ab-test", "/", headers={"Cookie": f"x=1; ab={group}"})
        assert again.headers["x-ab-group"] == group and again.text == group
        assert "set-cookie" not in again.headers  # known visitors get no new cookie
        seen.add(group)
    assert seen == {"A", "B"}


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("81.2.69.142", "/uk/"),
        ("8.8.8.8", "/us/"),
        ("1.1.1.1", "/au/"),
        ("10.0.0.1", "/intl/"),
    ],
)
def test_geo_redirect_by_the_clients_country(
    runtime: FunctionRuntime, address: str, target: str
) -> None:
    r = call(runtime, "shop/geo-redirect", "/", ip=address)
    assert r.status_code == 302
    assert r.headers["location"] == f"https://shop.example.com{target}"


def test_header_rewrite_on_the_way_in_and_out(runtime: FunctionRuntime, origin: StandIn) -> None:
    origin.requests.clear()
    r = call(runtime, "shop/header-rewrite", "/", headers={"Cookie": "session=secret"})
    assert r.status_code == 200 and r.text == "A"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "server" not in r.headers  # the origin's banner removed
    [sent] = origin.requests
    assert "cookie" not in sent["headers"]
    assert sent["headers"]["x-edge-function"] == "header-rewrite"


def test_json_api_answered_at_the_edge(runtime: FunctionRuntime, origin: StandIn) -> None:
    origin.requests.clear()
    r = call(runtime, "shop/json-api", "/api/time", ip="81.2.69.142")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["country"] == "GB" and doc["region"] == "eu-central" and doc["now"]
    echo = call(
        runtime,
        "shop/json-api",
        "/api/echo",
        method="POST",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"a": [1, 2]}).encode(),
    )
    assert echo.json() == {"received": {"a": [1, 2]}}
    bad = call(runtime, "shop/json-api", "/api/echo", method="POST", body=b"{nope")
    assert bad.status_code == 400 and bad.json() == {"error": "the body must be JSON"}
    missing = call(runtime, "shop/json-api", "/api/else")
    assert missing.status_code == 404
    assert origin.requests == []  # nothing reached the origin
