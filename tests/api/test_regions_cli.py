"""The CLI side of regions and of scripting (in-process, embedded on the test database, SQLite
and PostgreSQL): locations shown with their parents, ``region list`` in three levels, region
options in any vocabulary with errors naming the field, and ``-q`` on every create command."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import Api, Cli

# The CLI / SDK / contract over the API: the API itself runs on both databases elsewhere.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


INV = "/api/v1/infrastructure"


def quiet(cli: Cli, *args: str) -> str:
    """What ``-q`` prints: one line, the new id."""
    out = cli.run(*args, "-q").stdout
    assert out.count("\n") == 1 and out.endswith("\n"), out
    return out.strip()


def test_region_list_shows_three_levels(cli: Cli) -> None:
    out = cli.run("region", "list").stdout
    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "REGION TYPE", "REGION CODE", "LOCATION", "NAME", "LAT", "LON",
    ]  # fmt: skip
    # Each level is named where it starts: americas > na > ca-central, then na's others.
    assert re.match(r"americas\s+na\s+ca-central\s", lines[1]), out
    assert re.match(r"\s+us-central\s", lines[2]), out
    assert re.match(r"\s+sa\s+sa-east\s", lines[5]), out
    assert re.match(r"europe\s+eu\s+eu-central\s", lines[6]), out
    assert len(lines) == 17
    out = cli.run("region", "list", "--region", "mea").stdout
    shown = re.findall(r"\b[a-z]{2}-[a-z]+\b", out)
    assert shown == ["af-south", "me-central"], out
    doc = cli.json("region", "list", "--region", "us-east")
    assert [(r["code"], r["region_code"], r["region_type"]) for r in doc] == [
        ("us-east", "na", "americas")
    ]
    err = cli.fails("region", "list", "--region", "atlantis", code=1)
    assert "region: unknown region 'atlantis'" in err


def test_a_location_created_from_the_cli_gets_its_parents(cli: Cli) -> None:
    assert quiet(cli, "region", "create", "co-bogota", "--name", "Bogota", "--lat", "4.71",
                 "--lon", "-74.07") == "co-bogota"  # fmt: skip
    doc = cli.json("region", "show", "co-bogota")
    assert (doc["region_code"], doc["region_type"]) == ("sa", "americas")
    doc = cli.json(
        "region", "create", "tr-west", "--name", "Istanbul", "--lat", "41", "--lon", "29",
        "--region-type", "europe",
    )  # fmt: skip
    assert (doc["region_code"], doc["region_type"]) == ("eu", "europe")
    err = cli.fails(
        "region", "create", "xx-1", "--name", "X", "--lat", "0", "--lon", "0",
        "--region-code", "na", "--region-type", "europe",
    code=1)  # fmt: skip
    assert "region_type: region code na lies in americas, not in europe" in err


def test_inventory_from_the_cli_derives_and_refuses_regions(cli: Cli) -> None:
    dc = quiet(cli, "dc", "create", "--name", "EU", "--location", "eu-central", "--tier", "3",
               "--cpu", "100", "--memory", "100", "--storage", "100")  # fmt: skip
    assert re.fullmatch(r"dc-[0-9a-f]{12}", dc)
    server = quiet(cli, "server", "create", "--name", "S", "--type", "edge", "--data-center", dc,
                   "--cpu", "1", "--memory", "1", "--storage", "1")  # fmt: skip
    doc = cli.json("server", "show", server)
    assert (doc["location"], doc["region"], doc["region_code"]) == ("eu-central", "europe", "eu")
    table = cli.run("server", "list").stdout
    assert "eu-central (eu, europe)" in table
    assert "eu-central (eu, europe)" in cli.run("dc", "list", "--region", "europe").stdout
    assert "no data centers" in cli.run("dc", "list", "--region", "apac").stderr
    err = cli.fails("dc", "create", "--name", "X", "--region", "eu", "--tier", "1", "--cpu", "1",
                    "--memory", "1", "--storage", "1", code=1)  # fmt: skip
    assert err.strip() == (
        "error: location: required: a data center needs a location in region code 'eu': one of "
        "eu-central, eu-north, eu-west, uk-south"
    )
    err = cli.fails("server", "create", "--name", "X", "--type", "edge", "--region", "asia",
                    "--location", "ap-east", "--cpu", "1", "--memory", "1", "--storage", "1",
                    code=1)  # fmt: skip
    assert "region: unknown region 'asia': expected a location such as us-east" in err
    err = cli.fails("lb", "create", "--region", "americas", code=1)
    assert "region: 'americas' is a region type; a load balancer's region is a region code" in err


def test_every_create_command_prints_only_the_id_with_q(cli: Cli, api: Api) -> None:
    created: dict[str, Any] = {}
    created["project"] = quiet(cli, "project", "create", "shop")
    created["token"] = quiet(cli, "token", "create", "--name", "ci", "--role", "shop=editor")
    assert created["project"] == "shop" and created["token"].startswith("ep_")
    edge_token = quiet(cli, "token", "create", "--name", "fra-1", "--edge")
    assert edge_token.startswith("ep_")
    size = ["--cpu", "90", "--memory", "90", "--storage", "900"]
    created["dc"] = quiet(cli, "dc", "create", "--id", "dc-1", "--name", "D", "--location",
                          "us-east", "--tier", "1", *size)  # fmt: skip
    created["dc2"] = quiet(cli, "dc", "create", "--name", "D2", "--location", "us-west",
                           "--tier", "1", *size)  # fmt: skip
    created["server"] = quiet(cli, "server", "create", "--id", "web-1", "--name", "W", "--type",
                              "primary", "--location", "us-east", *size)  # fmt: skip
    created["service"] = quiet(cli, "service", "create", "--server", "web-1", "--type", "cdn")
    created["lb"] = quiet(cli, "lb", "create", "--endpoint", "web-1", "--region", "us-east")
    created["dr"] = quiet(cli, "dr", "create", "--name", "DR", "--primary", "dc-1",
                          "--backup", created["dc2"], "--rpo", "15", "--rto", "60")  # fmt: skip
    created["domain"] = quiet(cli, "domain", "add", "app.localhost")
    created["rule"] = quiet(cli, "cdn", "rule", "add", "/static/*", "--ttl", "60")
    assert created["dc"] == "dc-1" and created["server"] == "web-1"
    assert created["domain"] == "app.localhost"
    for key, pattern in (("dc2", "dc"), ("service", "svc"), ("lb", "lb"), ("dr", "dr"),
                         ("rule", "rule")):  # fmt: skip
        assert re.fullmatch(rf"{pattern}-[0-9a-f]{{12}}", created[key]), (key, created)
    # The ids are the objects'.
    assert api.get(f"{INV}/loadbalancer/{created['lb']}").json()["region"] == "na"
    assert api.get(f"{INV}/dr-configs/{created['dr']}").status_code == 200
    assert api.get(f"{INV}/services/{created['service']}").json()["server_id"] == "web-1"
    # A refused create prints nothing on stdout, -q or not.
    err = cli.fails("server", "create", "--name", "X", "--type", "edge", "--region", "eu",
                    "--cpu", "1", "--memory", "1", "--storage", "1", "-q", code=1)  # fmt: skip
    assert "location: required" in err
