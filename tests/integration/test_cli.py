"""The ``edgeplane`` CLI as a user runs it: the installed console script, in real processes.

Embedded mode (state under a temporary ``EDGEPLANE_HOME``) unless a test starts a control
plane. Each process costs about a second in embedded mode, so read-only commands that do not
depend on each other run in parallel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from processes import clean_env, free_port, start_up

EDGEPLANE = shutil.which("edgeplane", path=str(Path(sys.executable).parent))
LONDON = "81.2.69.142"  # GeoLite2: Willesden, GB

pytestmark = pytest.mark.skipif(EDGEPLANE is None, reason="the edgeplane script is not installed")


@dataclass
class Cli:
    env: dict[str, str]
    cwd: Path | None = None

    def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        assert EDGEPLANE is not None
        done = subprocess.run(
            [EDGEPLANE, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        """The one JSON document a ``--json`` command prints."""
        return json.loads(self.run(*args, "--json").stdout)

    def fails(self, *args: str, code: int = 1) -> str:
        """The error message of a command that must fail, with nothing on stdout."""
        done = self.run(*args, code=code)
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        return done.stderr


def cli_at(home: Path) -> Cli:
    return Cli(clean_env(EDGEPLANE_HOME=str(home), COLUMNS="200"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """Two data centers (Frankfurt, Ashburn), an edge server with a CDN service in each, a
    load balancer and a DR config, all created through the CLI."""
    cli = cli_at(tmp_path_factory.mktemp("cli") / "home")
    region = cli.json(
        "region", "create", "test-north", "--name", "North", "--lat", "60", "--lon", "10"
    )
    assert (region["code"], region["area"]) == ("test-north", "europe")  # inferred
    for dc, region_code, location in (("fra-1", "EU", "eu-central"), ("iad-1", "na", "us-east")):
        created = cli.json(
            "dc", "create", "--id", dc, "--name", dc, "--region", region_code,
            "--location", location, "--tier", "3",
            "--cpu", "64", "--memory", "256", "--storage", "10000",
        )  # fmt: skip
        assert created["tier"] == 3 and created["capacity"]["cpu"] == 64
    for server, area, location, dc in (
        ("eu-edge-1", "europe", "eu-central", "fra-1"),
        ("us-edge-1", "americas", "us-east", "iad-1"),
    ):
        created = cli.json(
            "server", "create", "--id", server, "--name", server, "--type", "EDGE",
            "--region", area, "--location", location, "--data-center", dc,
            "--cpu", "8", "--memory", "32", "--storage", "500", "--label", "tier=gold",
        )  # fmt: skip
        assert created["type"] == "edge" and created["labels"] == {"tier": "gold"}
    service = cli.json(
        "service", "create", "--id", "cdn-eu", "--server", "eu-edge-1", "--type", "cdn",
        "--setting", "default_ttl=600", "--setting", "caching=aggressive",
    )  # fmt: skip
    assert service["settings"]["default_ttl"] == 600
    assert service["settings"]["caching"] == "aggressive"
    cli.json("service", "create", "--id", "cdn-us", "--server", "us-edge-1", "--type", "cdn")
    lb = cli.json(
        "lb", "create", "--id", "web-lb", "--name", "web", "--type", "least_connections",
        "--endpoint", "eu-edge-1", "--endpoint", "10.0.0.9:8080",
        "--hc-path", "/healthz", "--hc-interval", "10",
    )  # fmt: skip
    assert lb["algorithm"] == "least_conn"
    assert lb["health_check"]["path"] == "/healthz" and lb["health_check"]["interval_s"] == 10
    dr = cli.json(
        "dr", "create", "--id", "dr-1", "--name", "EU to US", "--primary", "fra-1",
        "--backup", "iad-1", "--rpo", "15", "--rto", "60",
    )  # fmt: skip
    assert (dr["primary_dc"], dr["backup_dc"], dr["rpo"], dr["rto"]) == ("fra-1", "iad-1", 15, 60)
    yield cli


def test_lists_shows_and_route(world: Cli) -> None:
    """Read-only commands, in parallel: --json documents for scripts, tables for people."""
    json_commands = [
        ["region", "list"],
        ["dc", "list", "--region", "eu"],
        ["server", "list", "--limit", "1", "--all"],
        ["service", "list", "--server", "eu-edge-1"],
        ["lb", "list"],
        ["dr", "list"],
        ["route", LONDON, "cdn"],
    ]
    text_commands = [
        ["datacenter", "show", "fra-1"],
        ["servers", "list", "--limit", "1"],
        ["route", LONDON, "cdn"],
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        docs = pool.map(lambda args: world.json(*args), json_commands)
        texts = pool.map(lambda args: world.run(*args), text_commands)
        regions, dcs, servers, services, lbs, drs, decision = docs
        dc_text, servers_text, route_text = texts

    assert "test-north" in [r["code"] for r in regions]
    assert [d["id"] for d in dcs["items"]] == ["fra-1"]
    assert dcs["items"][0]["allocated"] == {"cpu": 8.0, "memory": 32.0, "storage": 500.0}
    # --all walks the pages (here of one server each) into one document.
    assert [s["id"] for s in servers["items"]] == ["eu-edge-1", "us-edge-1"]
    assert servers["next_cursor"] is None
    assert [s["id"] for s in services["items"]] == ["cdn-eu"]
    assert [lb["endpoints"] for lb in lbs["items"]] == [["eu-edge-1", "10.0.0.9:8080"]]
    assert [d["id"] for d in drs["items"]] == ["dr-1"]

    # A client in London is sent to Frankfurt, not to Virginia.
    assert decision["id"] == "eu-edge-1"
    assert decision["client"]["country"] == "GB"
    assert 0 < decision["distance_km"] < 1500
    assert "eu-edge-1" in route_text.stdout and decision["reason"] in route_text.stdout

    rows = {line.split()[0]: line.split()[1:] for line in dc_text.stdout.splitlines() if line}
    assert rows["tier"] == ["3"]
    assert rows["allocated"] == ["8", "32", "500"]
    assert rows["free"] == ["56", "224", "9500"]  # 64-8 cores, 256-32 GB, 10000-500 GB
    header, *lines = servers_text.stdout.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "TYPE"]
    assert [line.split()[0] for line in lines] == ["eu-edge-1"]
    assert "2/8" in lines[0]  # the CDN service reserves 2 of its 8 cores
    assert "--cursor eu-edge-1" in servers_text.stderr


def test_bad_input_names_the_field_and_creates_nothing(world: Cli) -> None:
    before = world.json("audit", "--limit", "1")["items"][0]["id"]
    dc = ["dc", "create", "--id", "bad", "--name", "Bad", "--location", "eu-central"]
    server = ["server", "create", "--id", "bad", "--name", "Bad", "--location", "eu-central"]
    service = ["service", "create", "--server", "eu-edge-1", "--type", "cdn"]
    cases = [
        ([*dc, "--region", "eu", "--tier", "7"], "tier"),
        ([*server, "--type", "mainframe", "--region", "europe"], "type"),
        ([*server, "--type", "edge", "--region", "europe", "--cpu", "-4"], "capacity.cpu"),
        ([*service, "--setting", "caching=9"], "settings.caching"),
        (["dc", "show", "nowhere"], "not found"),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = list(pool.map(lambda case: world.fails(*case[0]), cases))
    for (_, field), message in zip(cases, errors, strict=True):
        assert message.startswith("error: ") and field in message, message
    assert world.json("audit", "--limit", "1")["items"][0]["id"] == before
    # Malformed options are usage errors (2), caught before any request.
    assert "KEY=VALUE" in world.fails("server", "update", "eu-edge-1", "--label", "x", code=2)
    assert "nothing to change" in world.fails("dc", "update", "fra-1", code=2)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The CLI against a control plane started by ``edgeplane up``, with the admin token."""
    cp = start_up(tmp_path_factory.mktemp("cli-remote") / "home")
    try:
        yield Cli(clean_env(EDGEPLANE_URL=cp.url, EDGEPLANE_TOKEN=cp.token))
    finally:
        cp.stop()


def test_update_report_and_delete(remote: Cli) -> None:
    # Remote mode here: the commands are the same, and a process costs half as much.
    remote.json(
        "dc", "create", "--id", "d1", "--name", "D1", "--region", "eu", "--location", "eu-west",
        "--tier", "2", "--cpu", "16", "--memory", "64", "--storage", "1000",
    )  # fmt: skip
    remote.json(
        "server", "create", "--id", "s1", "--name", "S1", "--type", "primary", "--region",
        "europe", "--location", "eu-west", "--dc", "d1", "--cpu", "4", "--label", "a=1",
    )  # fmt: skip
    dc = remote.json("dc", "update", "d1", "--tier", "4", "--cpu", "32")
    # Only the dimension given changes: memory and storage keep their values.
    assert dc["tier"] == 4 and dc["capacity"] == {"cpu": 32, "memory": 64, "storage": 1000}
    server = remote.json(
        "server", "update", "s1", "--status", "maintenance", "--label", "b=2", "--unlabel", "a"
    )
    assert server["status"] == "maintenance" and server["labels"] == {"b": "2"}
    server = remote.json("server", "report", "s1", "--cpu-percent", "42", "--memory-percent", "50")
    assert server["metrics"]["cpu_percent"] == 42
    assert "used by 1 server" in remote.fails("dc", "delete", "d1")
    assert [m["memory_percent"] for m in remote.json("server", "metrics", "s1")] == [50]
    assert remote.json("server", "delete", "s1") == {"id": "s1", "deleted": True}
    assert remote.run("dc", "delete", "d1").stdout == "deleted data center d1\n"
    assert "not found" in remote.fails("dc", "show", "d1")


def test_projects_tokens_and_identity(remote: Cli) -> None:
    assert remote.json("whoami")["roles"] == {"default": "admin"}
    assert remote.json("project", "create", "acme", "--name", "Acme")["id"] == "acme"
    assert remote.json("--project", "acme", "server", "list") == {
        "items": [],
        "next_cursor": None,
    }
    issued = remote.run("token", "create", "--name", "ci", "--role", "acme=viewer").stdout
    secret = issued.split("store it now):\n", 1)[1].strip()
    assert secret.startswith("ep_")
    listed = remote.run("token", "list", "--json").stdout
    assert secret not in listed and '"ci"' in listed
    viewer = Cli({**remote.env, "EDGEPLANE_TOKEN": secret, "EDGEPLANE_PROJECT": "acme"})
    assert viewer.json("whoami")["roles"] == {"acme": "viewer"}
    dc = ["dc", "create", "--name", "x", "--region", "eu", "--location", "eu-west", "--tier", "1"]
    assert "editor role" in viewer.fails(*dc)
    assert "unknown token" in remote.fails("--token", "ep_wrong", "whoami")
    no_token = {k: v for k, v in remote.env.items() if k != "EDGEPLANE_TOKEN"}
    assert "EDGEPLANE_TOKEN" in Cli(no_token).fails("whoami")
    unreachable = Cli(
        clean_env(EDGEPLANE_URL=f"http://127.0.0.1:{free_port()}", EDGEPLANE_TOKEN="x")
    )
    assert "cannot reach" in unreachable.fails("region", "list", code=3)


def test_help_lists_every_noun(tmp_path: Path) -> None:
    cli = cli_at(tmp_path / "home")
    text = cli.run("--help").stdout
    for noun in ("region", "datacenter", "dc", "server", "servers", "service", "lb", "dr"):
        assert noun in text
    for noun in ("route", "project", "token", "audit", "whoami", "init", "up", "serve"):
        assert noun in text
    assert "Usage: edgeplane server list" in cli.run("server", "list", "--help").stdout
    assert "Usage: edgeplane servers list" in cli.run("servers", "list", "--help").stdout
    assert "edgeplane serve" in cli.run("server", "--help").stdout
    assert "Usage: edgeplane serve " in cli.run("serve", "--help").stdout
    assert not (tmp_path / "home").exists()  # help touches no state


@pytest.mark.parametrize(
    "args", [["server"], ["servers"], ["server", "--port", "8800"], ["server", "--home", "x"]]
)
def test_server_is_the_inventory_noun_not_the_control_plane(
    tmp_path: Path, args: list[str]
) -> None:
    """`edgeplane server` without a verb (or with the control plane's options) says that the
    control plane is `edgeplane serve`, exits 2 and creates no state, in the working
    directory or anywhere."""
    cli = Cli(clean_env(COLUMNS="200"), cwd=tmp_path)
    message = cli.fails(*args, code=2)
    assert "`edgeplane serve`" in message and "needs a verb" in message
    assert "list" in message and "create" in message
    assert list(tmp_path.iterdir()) == []


def test_no_command_creates_state_in_the_working_directory(tmp_path: Path) -> None:
    """Without a control plane URL, --home or EDGEPLANE_HOME, a command needs ./.edgeplane
    to exist: it does not make a second, empty state beside a running control plane's."""
    cli = Cli(clean_env(COLUMNS="200"), cwd=tmp_path)
    for args in (["server", "list"], ["region", "list"], ["lb", "create", "--name", "x"]):
        message = cli.fails(*args)
        assert "no Edgeplane state in" in message and "EDGEPLANE_URL" in message
        assert "edgeplane init" in message
    for args in (["--version"], ["serve", "--help"], ["up", "--help"], ["edge", "--help"]):
        cli.run(*args)
    cli.run("nonsense", code=2)
    assert list(tmp_path.iterdir()) == []
    # `init` creates it on purpose; then commands work on it.
    cli.run("init")
    assert [p.name for p in tmp_path.iterdir()] == [".edgeplane"]
    assert cli.json("server", "list") == {"items": [], "next_cursor": None}


# The commands below against a server (an embedded CLI builds the whole API at each start: about
# 2.5 s a command here, the world above proves that mode end to end).


def test_cdn_and_lb_backends(tmp_path: Path, remote: Cli) -> None:
    cli = remote
    cli.json("lb", "create", "--id", "web", "--endpoint", "127.0.0.1:9001", "--retries", "2")
    added = cli.json("lb", "backend", "add", "web", "http://127.0.0.1:9002", "--weight", "300",
                     "--backup")  # fmt: skip
    assert (added["weight"], added["backup"]) == (300, True)
    assert cli.json("lb", "backend", "drain", "web", "127.0.0.1:9001")["state"] == "draining"
    table = cli.run("lb", "health", "web").stdout
    assert "http://127.0.0.1:9002" in table and "unknown" in table and "draining" in table

    rules = tmp_path / "cdn.yaml"
    rules.write_text(
        "origins:\n  - load_balancer: web\n"
        "cache_rules:\n  - pattern: /static/*\n    ttl: 600\n"
        "  - pattern: /api/*\n    bypass: true\n"
    )
    dep = cli.json("cdn", "configure", "-f", str(rules))["cdn_deployment"]
    assert [r["pattern"] for r in dep["cache_rules"]] == ["/static/*", "/api/*"]
    rule = cli.json("cdn", "rule", "add", "*.css", "--ttl", "60", "--query", "v", "--position", "0")
    assert rule["cache_key"]["query"] == ["v"]
    listed = cli.run("cdn", "rule", "list").stdout
    assert listed.index("*.css") < listed.index("/static/*") < listed.index("bypass")
    purged = cli.json("cdn", "purge", "/static/*", "--wait")
    assert purged["complete"] is True and purged["purged_count"] == 0
    assert "cache_rules.0.pattern" in cli.fails("cdn", "configure", "--rule", "static:60")
    assert "give paths" in cli.fails("cdn", "purge", code=2)


def test_domains_and_dns_records(tmp_path: Path, remote: Cli) -> None:
    cli = remote
    added = cli.run("domain", "add", "cli-owner.com").stdout
    assert "_edgeplane-challenge.cli-owner.com." in added and "verify" in added
    assert "public suffix" in cli.fails("domain", "add", "co.uk")
    cli.json("domain", "add", "shop.test", "--no-dns", "--lock")
    cli.json("dns", "set", "shop.test", "@", "MX", "10 mail.shop.test", "--ttl", "300")
    cli.json("dns", "set", "shop.test", "app", "A", "--proxied")
    records = tmp_path / "zone.yaml"
    records.write_text(
        "records:\n"
        "  - {name: '@', type: A, values: [192.0.2.1]}\n"
        "  - {name: www, type: CNAME, values: [shop.test]}\n"
    )
    doc = cli.json("dns", "apply", "shop.test", str(records))
    mine = {(r["name"], r["type"]) for r in doc["records"] if not r["managed"]}
    assert mine == {("@", "A"), ("www", "CNAME")}
    table = cli.run("dns", "list", "shop.test").stdout
    assert "192.0.2.1" in table and "SOA" in table and "_edgeplane-challenge" in table
    bad = cli.fails("dns", "set", "shop.test", "@", "CNAME", "x.example")
    assert "set[0].type" in bad and "apex" in bad
    assert "there is no A record at nope" in cli.fails("dns", "delete", "shop.test", "nope", "A")
    assert "locked" in cli.fails("domain", "delete", "shop.test")
    cli.json("domain", "update", "shop.test", "--unlock", "--dnssec")
    status = cli.json("domain", "status", "shop.test")
    assert status["dnssec"]["enabled"] and status["serial"] == doc["serial"] + 1
    assert "DS for the registrar" in cli.run("domain", "status", "shop.test").stdout
    verified = cli.json("domain", "verify", "shop.test")
    assert verified["verified"] is True
    listed = cli.run("domain", "list").stdout
    assert "cli-owner.com" in listed and "pending" in listed
    cli.run("domain", "delete", "shop.test")


def test_ca_export_prints_the_root_to_trust(tmp_path: Path, remote: Cli) -> None:
    import httpx
    from cryptography import x509

    # Remote: the PEM printed is the one GET /ca.pem serves.
    printed = remote.run("ca", "export").stdout
    served = httpx.get(f"{remote.env['EDGEPLANE_URL']}/api/v1/infrastructure/ca.pem", timeout=10)
    assert served.status_code == 200 and printed == served.text
    root = x509.load_pem_x509_certificate(printed.encode())
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True and root.issuer == root.subject
    out = tmp_path / "remote-root.pem"
    done = remote.run("ca", "export", "--out", str(out))
    assert done.stdout == "" and str(out) in done.stderr
    assert out.read_text() == printed

    # Embedded: created on first use, the same on every export.
    cli = cli_at(tmp_path / "home")
    first = cli.run("ca", "export").stdout
    assert first.startswith("-----BEGIN CERTIFICATE-----") and first != printed
    local = tmp_path / "root.pem"
    assert cli.run("ca", "export", "-o", str(local)).stdout == ""
    assert local.read_text() == first == cli.run("ca", "export").stdout
    assert "cannot write" in cli.fails("ca", "export", "--out", str(tmp_path / "no" / "x.pem"))
