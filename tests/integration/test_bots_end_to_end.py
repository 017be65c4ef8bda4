"""Bot protection end to end: a real control plane, a real edge node (nginx with njs and its
agent) and an origin. Settings go through the API and the CLI; a scanner is blocked, a browser
served; a client that asks for many distinct paths fast is flagged by the agent and challenged
within seconds; the counts show in the node's metrics, the API and ``edgeplane bots status``;
the cookie key never shows in an answer or a log."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import origin_set
from processes import ControlPlane, clean_env, start_up

from edgeplane.node.nginx.render_bots import NJS_MODULE
from edgeplane.secrets import SecretBox
from edgeplane.snapshot.bots import bot_key

pytestmark = [
    pytest.mark.integration,
    pytest.mark.serial,
    pytest.mark.skipif(not Path(NJS_MODULE).exists(), reason="libnginx-mod-http-js missing"),
]

EDGEPLANE = shutil.which("edgeplane", path=str(Path(sys.executable).parent))
DOMAIN = "bots.localhost"
CDN = "/api/v1/infrastructure/cdn"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"
SQLMAP = "sqlmap/1.7.2#stable (https://sqlmap.org)"
SCANNER = "127.0.0.7"  # the client that crawls fast (a source address of its own)
MAX_PATHS = 15


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def node(cp: ControlPlane, admin: Api, tmp_module: Path) -> Iterator[EdgeAgent]:
    agent = new_agent(cp, admin, tmp_module, "edge-bots", analytics_interval=1.0).start()
    try:
        wait_for(
            lambda: any(
                n["name"] == "edge-bots" and n["applied_revision"] is not None
                for n in admin.nodes()
            ),
            30,
            "the node registered and applied",
        )
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="module")
def site(admin: Api, node: EdgeAgent) -> Iterator[str]:
    with origin_set() as origins:
        origin = origins.start("shop")
        admin.ok("POST", "/api/v1/infrastructure/domains", json={"domain": DOMAIN})
        bots = {
            "mode": "block",
            "behaviour": {"action": "challenge", "max_paths": MAX_PATHS, "flag_s": 120},
            "challenge": "cookie",
        }
        body = {"origins": [{"url": origin.url}], "security": {"force_https": False, "bots": bots}}
        admin.ok("POST", CDN, json=body)
        wait_for(lambda: send(node, "/", SQLMAP).status_code == 403, 20, "scanners blocked")
        yield DOMAIN


def send(
    node: EdgeAgent, path: str, ua: str = BROWSER, source: str | None = None
) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(transport=transport, timeout=10) as c:
        return c.get(f"{node.url}{path}", headers={"Host": DOMAIN, "User-Agent": ua})


def metric(node: EdgeAgent, klass: str, action: str) -> float:
    text = node.scrape().text
    m = re.search(
        rf'^edgeplane_bot_requests_total\{{action="{action}",class="{klass}",project="default"\}}'
        r" (\S+)$",
        text,
        re.M,
    )
    return float(m.group(1)) if m else 0.0


def counts(admin: Api) -> dict[str, int]:
    doc = admin.ok("GET", f"{CDN}/bots", params={"timeframe": "1h"})
    return {f"{c['bot_class']}:{c['action']}": c["requests"] for c in doc["counts"]}


def test_scanners_are_blocked_and_a_fast_crawler_is_flagged_then_challenged(
    admin: Api, node: EdgeAgent, site: str
) -> None:
    r = send(node, "/page")
    assert r.status_code == 200 and r.headers["x-origin"] == "shop"
    for n in range(3):
        r = send(node, f"/admin.php?id={n}", SQLMAP)
        assert (r.status_code, r.text) == (403, "blocked\n")
    # many distinct paths fast from one address: flagged by the agent, then challenged
    for n in range(MAX_PATHS + 5):
        send(node, f"/crawl/{n}", source=SCANNER)

    def challenged() -> bool:
        r = send(node, "/next", source=SCANNER)
        return r.status_code == 307 and r.headers.get("x-edgeplane-challenge") == "cookie"

    wait_for(challenged, 10, "the crawler challenged", every=0.2)
    assert send(node, "/next").status_code == 200  # other clients are served
    assert "flagged on site default" in node.output()

    wait_for(lambda: metric(node, "bad", "block") >= 3, 10, "bad:block in the node's metrics")
    wait_for(lambda: metric(node, "behaviour", "challenge") >= 1, 10, "behaviour:challenge")
    found = wait_for(
        lambda: (
            (c := counts(admin)).get("bad:block", 0) >= 3
            and c.get("behaviour:challenge", 0) >= 1
            and c
        ),
        20,
        "the counts in the API",
        every=0.5,
    )
    doc = admin.ok("GET", f"{CDN}/bots")
    assert doc["enabled"] is True and doc["settings"]["mode"] == "block"
    assert doc["blocked"] == found["bad:block"] and doc["requests"] >= doc["bot_requests"] > 0


@pytest.mark.skipif(EDGEPLANE is None, reason="the edgeplane script is not installed")
def test_the_cli_shows_and_changes_the_settings(
    cp: ControlPlane, admin: Api, node: EdgeAgent, site: str
) -> None:
    assert EDGEPLANE is not None
    env = clean_env(EDGEPLANE_URL=cp.url, EDGEPLANE_TOKEN=cp.token, COLUMNS="200")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [EDGEPLANE, "bots", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done

    status = json.loads(cli("status", "--json").stdout)
    now = admin.ok("GET", f"{CDN}/bots")
    assert status["counts"] and status["settings"] == now["settings"]
    table = cli("status").stdout
    assert "bad" in table and "block" in table and "CLASS" in table
    cli("set", "--mode", "challenge", "--challenge", "javascript", "--difficulty", "4")
    settings = admin.ok("GET", f"{CDN}/bots/settings")
    assert (settings["mode"], settings["challenge"], settings["difficulty"]) == (
        "challenge",
        "javascript",
        4,
    )
    assert settings["behaviour"]["max_paths"] == MAX_PATHS  # what was not given stays
    wait_for(
        lambda: send(node, "/", SQLMAP).headers.get("x-edgeplane-challenge") == "javascript",
        20,
        "the new mode served",
    )


def test_the_cookie_key_is_never_shown(
    cp: ControlPlane, admin: Api, node: EdgeAgent, site: str, tmp_module: Path
) -> None:
    key = bot_key(SecretBox((tmp_module / "cp" / "secret.key").read_text()), "default")
    answers: list[Any] = [
        admin.ok("GET", CDN),
        admin.ok("GET", f"{CDN}/bots"),
        admin.ok("GET", f"{CDN}/bots/settings"),
        admin.ok("GET", "/api/v1/audit", params={"kind": "cdn_config"}),
    ]
    assert "bots" in json.dumps(answers[-1])  # the audit trail holds the settings
    for doc in answers:
        assert key not in json.dumps(doc)
    assert key not in node.output()
    for log in tmp_module.glob("*.log"):
        assert key not in log.read_text(errors="replace"), log
    # but the node has it: its nginx verifies cookies with it
    assert key in (node.prefix / "current" / "access.conf").read_text()
