"""Regions, one model: locations (us-east) nest in region codes (na, spec 001) that nest in
region types (americas, spec 000), and every field that asks for a region understands all three.

Over HTTP on SQLite and PostgreSQL: what each vocabulary resolves to, what is derived from
another field, and the refusals (a clear problem naming the field, listing the locations a
broad region could be, and nothing changed; see ``test_bad_input.refused``).
"""

from __future__ import annotations

from typing import Any

import pytest
from test_bad_input import DCS, LBS, REGIONS, SERVERS, refused, state
from test_edge_deploy_api import DEPLOY, EDGE, add_site_domain, deploy, nodes, site, tar_of, upload

from conftest import Api

EU = "eu-central, eu-north, eu-west, uk-south"
NA = "ca-central, us-central, us-east, us-west"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def dc(**kw: Any) -> dict[str, Any]:
    body = {"name": "DC", "tier": 3, "capacity": {"cpu": 100, "memory": 400, "storage": 1000}}
    return {**body, **kw}


def server(**kw: Any) -> dict[str, Any]:
    body = {"name": "S", "type": "edge", "capacity": {"cpu": 4, "memory": 8, "storage": 50}}
    return {**body, **kw}


# Locations and their parents ------------------------------------------------------------


def test_every_seeded_location_has_one_region_code_and_one_region_type(api: Api) -> None:
    got = {r["code"]: (r["region_code"], r["region_type"]) for r in ok(api.get(REGIONS))}
    assert len(got) == 16
    assert got["us-east"] == ("na", "americas")
    assert got["ca-central"] == ("na", "americas")
    assert got["sa-east"] == ("sa", "americas")
    assert got["uk-south"] == ("eu", "europe")
    assert got["me-central"] == ("mea", "middle_east_africa")
    assert got["af-south"] == ("mea", "middle_east_africa")
    assert got["au-southeast"] == ("apac", "asia_pacific")
    region = ok(api.get(f"{REGIONS}/eu-central"))
    assert region["area"] == region["region_type"] == "europe"  # area: the older name


@pytest.mark.parametrize(
    ("code", "lat", "lon", "given", "parents"),
    [
        ("co-bogota", 4.71, -74.07, {}, ("sa", "americas")),  # inferred: south of Panama
        ("ve-caracas", 10.48, -66.9, {}, ("sa", "americas")),  # the Caribbean coast of SA
        ("pa-panama", 8.98, -79.52, {}, ("na", "americas")),
        ("mx-central", 19.43, -99.13, {}, ("na", "americas")),
        ("ng-lagos", 6.52, 3.38, {}, ("mea", "middle_east_africa")),
        ("nz-north", -36.85, 174.76, {}, ("apac", "asia_pacific")),
        ("pe-lima", -12.05, -77.04, {"region_type": "americas"}, ("sa", "americas")),
        ("pr-east", 18.47, -66.1, {"region_code": "na"}, ("na", "americas")),
        ("tr-west", 41.0, 28.98, {"area": "europe"}, ("eu", "europe")),
        ("il-central", 32.08, 34.78, {"region_code": "MEA"}, ("mea", "middle_east_africa")),
    ],
)
def test_a_new_location_gets_both_parents(
    api: Api, code: str, lat: float, lon: float, given: dict[str, str], parents: tuple[str, str]
) -> None:
    body = {"code": code, "name": code, "latitude": lat, "longitude": lon, **given}
    region = ok(api.post(REGIONS, json=body), 201)
    assert (region["region_code"], region["region_type"]) == parents


def test_location_parents_refused_when_they_contradict(api: Api) -> None:
    before = state(api, REGIONS)
    body = {"code": "eu-south", "name": "Milan", "latitude": 45.46, "longitude": 9.19}
    doc = refused(
        api, before, api.post(REGIONS, json={**body, "region_code": "na", "region_type": "europe"}),
        422, "region_type",
    )  # fmt: skip
    assert doc["detail"] == "region_type: region code na lies in americas, not in europe"
    r = api.post(REGIONS, json={**body, "region_type": "europe", "area": "americas"})
    refused(api, before, r, 422, "area")
    r = api.post(REGIONS, json={**body, "region_code": "xx"})
    refused(api, before, r, 422, "region_code")
    for broad in ("eu", "europe", "NA"):
        r = api.post(REGIONS, json={**body, "code": broad.lower()})
        doc = refused(api, before, r, 422, "code")
        assert "a location needs a code of its own" in doc["detail"]


def test_a_location_changes_parents_only_when_nothing_placed_there_contradicts(api: Api) -> None:
    ok(
        api.post(
            REGIONS,
            json={"code": "us-south", "name": "Houston", "latitude": 29.76, "longitude": -95.37},
        ),
        201,
    )
    moved = ok(api.patch(f"{REGIONS}/us-south", json={"latitude": 29.0}))
    assert (moved["region_code"], moved["region_type"]) == ("na", "americas"), "kept"
    ok(api.post(DCS, json=dc(id="dc-hou", location="us-south")), 201)
    before = state(api, REGIONS)
    r = api.patch(f"{REGIONS}/us-south", json={"region_code": "sa"})
    doc = refused(api, before, r, 409, "region_code")
    assert (
        "us-south (na, americas) is the location of 0 server(s) and 1 data center(s)"
        in (doc["detail"])
    )
    r = api.patch(f"{REGIONS}/us-south", json={"region_type": "europe"})
    refused(api, before, r, 409, "region_code")
    ok(api.delete(f"{DCS}/dc-hou"), 204)
    changed = ok(api.patch(f"{REGIONS}/us-south", json={"region_code": "sa"}))
    assert (changed["region_code"], changed["region_type"]) == ("sa", "americas")
    changed = ok(api.patch(f"{REGIONS}/us-south", json={"region_type": "europe"}))
    assert (changed["region_code"], changed["region_type"]) == ("eu", "europe")


# Data centers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "placed"),
    [
        ({"region": "na", "location": "us-east"}, ("us-east", "na")),  # spec 001, as written
        ({"region": "NA", "location": "US-EAST"}, ("us-east", "na")),
        ({"location": "sa-east"}, ("sa-east", "sa")),  # the region follows the location
        ({"region": "eu-central"}, ("eu-central", "eu")),  # a location implies both parents
        ({"region": "americas", "location": "us-west"}, ("us-west", "na")),  # a type: derived
        ({"region": "europe", "location": "eu-central"}, ("eu-central", "eu")),
        ({"region": "eu-west", "location": "eu-west"}, ("eu-west", "eu")),
    ],
)
def test_data_center_region_in_any_vocabulary(
    api: Api, given: dict[str, str], placed: tuple[str, str]
) -> None:
    doc = ok(api.post(DCS, json=dc(id="dc-1", **given)), 201)
    assert (doc["location"], doc["region"]) == placed
    assert doc["region_code"] == placed[1]
    assert doc["region_type"] == {"na": "americas", "sa": "americas", "eu": "europe"}[placed[1]]
    assert ok(api.get(f"{DCS}/dc-1")) == doc


def test_data_center_region_refusals(api: Api) -> None:
    before = state(api, DCS)
    doc = refused(api, before, api.post(DCS, json=dc(region="eu")), 422, "location")
    assert doc["detail"] == (
        f"location: required: a data center needs a location in region code 'eu': one of {EU}"
    )
    doc = refused(api, before, api.post(DCS, json=dc(location="eu")), 422, "location")
    assert doc["detail"] == (
        "location: 'eu' is a region code, not a location; a data center needs a location: "
        f"one of {EU}"
    )
    doc = refused(api, before, api.post(DCS, json=dc(location="americas")), 422, "location")
    assert (
        "'americas' is a region type, not a location; a data center needs a location: "
        in (doc["detail"])
    )
    assert "sa-east" in doc["detail"] and NA.split(", ")[0] in doc["detail"]
    doc = refused(api, before, api.post(DCS, json=dc()), 422, "location")
    assert doc["detail"].startswith("location: required: a data center needs a location: one of")
    r = api.post(DCS, json=dc(region="eu", location="us-east"))
    doc = refused(api, before, r, 422, "location")
    assert doc["detail"] == (
        f"location: 'us-east' lies in na (americas), not in region 'eu'; eu has {EU}"
    )
    r = api.post(DCS, json=dc(region="sa", location="us-east"))  # same type, another code
    refused(api, before, r, 422, "location")
    r = api.post(DCS, json=dc(region="us-west", location="us-east"))
    doc = refused(api, before, r, 422, "location")
    assert doc["detail"] == "location: 'us-east' contradicts region 'us-west', another location"
    for bad, field in (("atlantis", "region"), ("mars-1", "location")):
        doc = refused(api, before, api.post(DCS, json=dc(**{field: bad})), 422, field)
        assert f"unknown region {bad!r}: expected a location such as us-east" in doc["detail"]
        assert "a region code (na, sa, eu, apac, mea)" in doc["detail"]
    for bad in ("", "e", "eu central", "eu/central", 7, True, ["eu"]):
        refused(api, before, api.post(DCS, json=dc(region=bad, location="eu-central")), 422,
                "region")  # fmt: skip


def test_data_center_list_filters_in_any_vocabulary(api: Api) -> None:
    for dc_id, location in (("a", "us-east"), ("b", "sa-east"), ("c", "eu-central")):
        ok(api.post(DCS, json=dc(id=dc_id, location=location)), 201)

    def listed(region: str) -> list[str]:
        return [d["id"] for d in ok(api.get(DCS, params={"region": region}))["items"]]

    assert listed("americas") == ["a", "b"]
    assert listed("na") == ["a"]
    assert listed("SA") == ["b"]
    assert listed("eu-central") == ["c"]
    assert listed("apac") == []
    before = state(api, DCS)
    doc = refused(api, before, api.get(DCS, params={"region": "atlantis"}), 422, "region")
    assert "unknown region 'atlantis'" in doc["detail"]


# Servers -----------------------------------------------------------------------------------


def test_server_region_in_any_vocabulary_and_from_its_data_center(api: Api) -> None:
    ok(api.post(DCS, json=dc(id="dc-eu", location="eu-central")), 201)
    # Spec 000 as written: a region type and a location.
    s = ok(api.post(SERVERS, json=server(id="s1", region="americas", location="us-east")), 201)
    assert (s["region"], s["location"], s["region_code"], s["region_type"]) == (
        "americas", "us-east", "na", "americas",
    )  # fmt: skip
    s = ok(api.post(SERVERS, json=server(id="s2", region="na", location="us-east")), 201)
    assert (s["region"], s["region_code"]) == ("americas", "na")
    s = ok(api.post(SERVERS, json=server(id="s3", region="ap-east")), 201)
    assert (s["region"], s["location"], s["region_code"]) == ("asia_pacific", "ap-east", "apac")
    s = ok(api.post(SERVERS, json=server(id="s4", data_center_id="dc-eu")), 201)
    assert (s["region"], s["location"], s["region_code"]) == ("europe", "eu-central", "eu")
    s = ok(api.post(SERVERS, json=server(id="s5", region="eu", data_center_id="dc-eu")), 201)
    assert s["location"] == "eu-central"
    s = ok(api.post(SERVERS, json=server(id="s6", location="europe", data_center_id="dc-eu")), 201)
    assert s["location"] == "eu-central"

    # A new location brings its region; a new data center its location and region.
    moved = ok(api.patch(f"{SERVERS}/s1", json={"location": "ap-south"}))
    assert (moved["region"], moved["location"], moved["region_code"]) == (
        "asia_pacific", "ap-south", "apac",
    )  # fmt: skip
    moved = ok(api.patch(f"{SERVERS}/s1", json={"data_center_id": "dc-eu"}))
    assert (moved["region"], moved["location"]) == ("europe", "eu-central")
    kept = ok(api.patch(f"{SERVERS}/s1", json={"data_center_id": None}))
    assert (kept["region"], kept["location"], kept["data_center_id"]) == (
        "europe", "eu-central", None,
    )  # fmt: skip


def test_server_region_refusals(api: Api) -> None:
    ok(api.post(DCS, json=dc(id="dc-eu", location="eu-central")), 201)
    ok(api.post(SERVERS, json=server(id="s1", location="us-east")), 201)
    before = state(api, SERVERS)
    doc = refused(api, before, api.post(SERVERS, json=server(region="europe")), 422, "location")
    assert doc["detail"] == (
        f"location: required: a server needs a location in region type 'europe': one of {EU}"
    )
    r = api.post(SERVERS, json=server(region="sa", location="us-east"))
    doc = refused(api, before, r, 422, "location")
    assert doc["detail"] == (
        "location: 'us-east' lies in na (americas), not in region 'sa'; sa has sa-east"
    )
    r = api.post(SERVERS, json=server(region="americas", data_center_id="dc-eu"))
    doc = refused(api, before, r, 422, "location")
    assert doc["detail"].startswith(
        "location: 'eu-central' (the location of data center 'dc-eu') lies in eu (europe), "
        "not in region 'americas'"
    )
    r = api.post(SERVERS, json=server(location="eu-west", data_center_id="dc-eu"))
    doc = refused(api, before, r, 422, "location")
    assert "must be 'eu-central', the location of data center 'dc-eu'" in doc["detail"]
    r = api.post(SERVERS, json=server(location="apac"))
    doc = refused(api, before, r, 422, "location")
    assert doc["detail"] == (
        "location: 'apac' is a region code, not a location; a server needs a location: one of "
        "ap-east, ap-northeast, ap-south, ap-southeast, au-southeast"
    )
    r = api.patch(f"{SERVERS}/s1", json={"region": "europe"})
    refused(api, before, r, 422, "location")
    r = api.patch(f"{SERVERS}/s1", json={"location": "europe"})
    refused(api, before, r, 422, "location")
    r = api.patch(f"{SERVERS}/s1", json={"location": "eu-west", "region": "americas"})
    refused(api, before, r, 422, "location")


def test_server_list_filters_in_any_vocabulary(api: Api) -> None:
    for server_id, location in (("a", "us-east"), ("b", "sa-east"), ("c", "eu-central")):
        ok(api.post(SERVERS, json=server(id=server_id, location=location)), 201)

    def listed(**params: str) -> list[str]:
        return [s["id"] for s in ok(api.get(SERVERS, params=params))["items"]]

    assert listed(region="americas") == ["a", "b"]
    assert listed(region="sa") == ["b"]
    assert listed(region="us-east") == ["a"]
    assert listed(location="eu") == ["c"]
    assert listed(region="americas", location="na") == ["a"]
    before = state(api, SERVERS)
    refused(api, before, api.get(SERVERS, params={"location": "mars-1"}), 422, "location")


# Load balancers ----------------------------------------------------------------------------


def test_load_balancer_region_is_a_region_code(api: Api) -> None:
    for given, code in (("na", "na"), ("us-east", "na"), ("sa-east", "sa"), ("europe", "eu")):
        lb = ok(api.post(LBS, json={"region": given}), 201)
        assert lb["region"] == code, given
    before = state(api, LBS)
    doc = refused(api, before, api.post(LBS, json={"region": "americas"}), 422, "region")
    assert doc["detail"] == (
        "region: 'americas' is a region type; a load balancer's region is a region code: "
        "na or sa (or a location in one of them)"
    )
    refused(api, before, api.post(LBS, json={"region": "atlantis"}), 422, "region")


# Edge nodes and deployments ----------------------------------------------------------------


def edge_token(api: Api) -> str:
    doc = ok(api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}), 201)
    return str(doc["token"])


def test_edge_node_region_is_a_location(api: Api) -> None:
    token = edge_token(api)
    node = ok(api.post(f"{EDGE}/nodes", token=token, json={"name": "n1", "region": "EU-Central"}))
    assert (node["region"], node["region_code"], node["region_type"]) == (
        "eu-central", "eu", "europe",
    )  # fmt: skip
    listed = ok(api.get(f"{EDGE}/nodes"))
    assert [(n["region"], n["region_code"]) for n in listed] == [("eu-central", "eu")]
    before = state(api, f"{EDGE}/nodes")
    r = api.post(f"{EDGE}/nodes", token=token, json={"name": "n2", "region": "europe"})
    doc = refused(api, before, r, 422, "region")
    assert doc["detail"] == (
        "region: 'europe' is a region type, not a location; an edge node needs a location: "
        f"one of {EU}"
    )
    r = api.post(f"{EDGE}/nodes", token=token, json={"name": "n2", "region": "mars-1"})
    doc = refused(api, before, r, 422, "region")
    assert "unknown region 'mars-1'" in doc["detail"]


def test_deployment_regions_in_any_vocabulary(api: Api) -> None:
    add_site_domain(api)
    nodes(api, ("eu-1", "eu-central"), ("uk-1", "uk-south"), ("us-1", "us-east"))
    bundle = upload(api, tar_of(site("v1")))["bundle"]["id"]
    d = deploy(api, bundle=bundle, regions=["europe"])["deployment"]
    assert d["regions"] == ["eu-central", "uk-south"]
    assert [(p["region"], p["region_code"], p["region_type"]) for p in d["progress"]] == [
        ("eu-central", "eu", "europe"),
        ("uk-south", "eu", "europe"),
    ]
    d = deploy(api, bundle=bundle, regions=["na", "EU-CENTRAL", "eu"])["deployment"]
    assert d["regions"] == ["eu-central", "uk-south", "us-east"]

    metrics = ok(api.get(f"{DEPLOY}/deployments/{d['id']}/metrics", params={"region": "eu"}))
    assert [(m["region"], m["region_code"]) for m in metrics["regions"]] == [
        ("eu-central", "eu"),
        ("uk-south", "eu"),
    ]
    locations = ok(api.get(f"{DEPLOY}/locations"))
    assert [(loc["region"], loc["region_code"], loc["region_type"]) for loc in locations] == [
        ("eu-central", "eu", "europe"),
        ("uk-south", "eu", "europe"),
        ("us-east", "na", "americas"),
    ]

    before = state(api, f"{DEPLOY}/deployments")
    r = api.post(f"{DEPLOY}/deploy", json={"bundle": bundle, "regions": ["us-east", "apac"]})
    doc = refused(api, before, r, 422, "regions[1]")
    assert doc["detail"] == (
        "regions[1]: region code 'apac' has no location with a live edge node (its locations: "
        "ap-east, ap-northeast, ap-south, ap-southeast, au-southeast)"
    )
    r = api.post(f"{DEPLOY}/deploy", json={"bundle": bundle, "regions": ["atlantis"]})
    refused(api, before, r, 422, "regions[0]")
    r = api.get(f"{DEPLOY}/deployments/{d['id']}/metrics", params={"region": "sa"})
    assert r.status_code == 422 and r.json()["field"] == "region", r.text
    assert "is not deployed in 'sa' (it is in eu-central, uk-south, us-east)" in r.text


# The SDK -----------------------------------------------------------------------------------


def test_sdk_takes_any_vocabulary_and_raises_naming_the_field(api: Api) -> None:
    import asyncio

    from edgeplane import GlobalOperations, InfrastructureManager, ProjectService
    from edgeplane.errors import Conflict, InvalidInput
    from edgeplane.model.enums import RegionCode, RegionType
    from edgeplane.sdk import embedded
    from edgeplane.sdk.client import Client
    from edgeplane.settings import Settings

    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
    manager, ops = InfrastructureManager(client=client), GlobalOperations(client=client)

    async def main() -> None:
        dc = await ops.create_data_center(
            name="EU", location="eu-west", tier=3, capacity={"cpu": 10, "memory": 10}
        )
        assert (dc.region, dc.location, dc.region_type) == (
            RegionCode.EU, "eu-west", RegionType.EUROPE,
        )  # fmt: skip
        server = await manager.create_server(
            name="S", type="edge", data_center_id=dc.id, capacity={"cpu": 1, "memory": 1}
        )
        assert (server.region, server.location, server.region_code) == (
            RegionType.EUROPE, "eu-west", RegionCode.EU,
        )  # fmt: skip
        # A broad region is never taken for its only location (a second one may come).
        with pytest.raises(InvalidInput) as refused:
            await manager.create_server(name="T", type="edge", region=RegionCode.SA, capacity={})
        assert refused.value.field == "location" and str(refused.value).endswith("one of sa-east")
        assert [r.code for r in await manager.list_regions(RegionType.MIDDLE_EAST_AFRICA)] == [
            "af-south", "me-central",
        ]  # fmt: skip
        with pytest.raises(InvalidInput) as refused:
            await ops.create_data_center(name="X", region=RegionCode.APAC, tier=1, capacity={})
        assert refused.value.field == "location"
        assert "ap-east, ap-northeast, ap-south, ap-southeast, au-southeast" in str(refused.value)
        with pytest.raises(InvalidInput) as refused:
            await manager.create_server(
                name="X", type="edge", region=RegionType.AMERICAS, location="eu-west",
                capacity={},
            )  # fmt: skip
        assert refused.value.field == "location"
        projects = ProjectService(client=client)
        assert (await projects.create_project("shop", "Shop")).id == "shop"
        assert (await projects.create_project("shop", exist_ok=True)).name == "Shop"
        with pytest.raises(Conflict):
            await projects.create_project("shop")
        assert [p.id for p in await projects.list_projects()] == ["default", "shop"]
        await projects.delete_project("shop")
        await client.aclose()

    try:
        asyncio.run(main())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
