"""Bot settings and counts over HTTP and the SDK: validation with the field named and no partial
state, the site's BotSpec in the snapshot with a key per project (never answered), and the
summary of the nodes' counts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import Api
from edgeplane.model.bots import BotSettings
from edgeplane.protocol.config import NodeSpec
from edgeplane.sdk.cdn_service import CDNService
from edgeplane.sdk.client import Client
from edgeplane.settings import Settings
from edgeplane.snapshot.bots import bot_key
from edgeplane.snapshot.build import snapshot
from edgeplane.snapshot.load import load_state
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import EdgeAnalyticsRow
from secret_keys import TEST_SECRETS

CDN = "/api/v1/infrastructure/cdn"
BOTS = f"{CDN}/bots"
SETTINGS = f"{BOTS}/settings"
NODE = NodeSpec(id="node-1", name="n1", region="eu-central")
GOOD = {"name": "google", "user_agent": "Googlebot", "addresses": ["66.249.64.0/19"]}


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def problem(r: Any, field: str, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    assert doc["field"] == field, doc
    return doc


def configure(api: Api, bots: dict[str, Any], project: str = "default") -> Any:
    body = {"origins": [{"url": "http://127.0.0.1:9"}], "security": {"bots": bots}}
    headers = {**api.headers(), "X-Edgeplane-Project": project}
    return api.client.post(CDN, json=body, headers=headers)


def test_settings_are_validated_and_replaced_whole(api: Api) -> None:
    c = api.client
    assert ok(c.get(SETTINGS, headers=api.headers())) == BotSettings().model_dump(mode="json")
    r = c.put(SETTINGS, json={"mode": "block"}, headers=api.headers())
    assert r.status_code == 404 and "configure the CDN first" in r.json()["detail"]
    bad = [
        ({"mode": "maybe"}, "security.bots.mode"),
        ({"good_bots": [{**GOOD, "addresses": ["x"]}]}, "security.bots.good_bots.0.addresses.0"),
        ({"good_bots": [{**GOOD, "user_agent": 'G"bot'}]}, "security.bots.good_bots.0.user_agent"),
        ({"good_bots": [{**GOOD, "addresses": []}]}, "security.bots.good_bots.0.addresses"),
        ({"good_bots": [GOOD, GOOD]}, "security.bots"),
        ({"behaviour": {"max_error_ratio": 2}}, "security.bots.behaviour.max_error_ratio"),
        ({"difficulty": 40}, "security.bots.difficulty"),
        ({"challenge": "captcha"}, "security.bots.challenge"),
        ({"extra": 1}, "security.bots.extra"),
    ]  # fmt: skip
    for bots, field in bad:
        problem(configure(api, bots), field)
    assert c.get(CDN, headers=api.headers()).status_code == 404  # nothing was stored
    settings = {"mode": "challenge", "good_bots": [GOOD], "behaviour": {"action": "detect"}}
    stored = ok(configure(api, settings), 201)["cdn_deployment"]["security"]["bots"]
    assert stored["mode"] == "challenge" and stored["challenge"] == "javascript"
    assert stored["good_bots"] == [GOOD]
    problem(c.put(SETTINGS, json={"automated": "sometimes"}, headers=api.headers()), "automated")
    assert ok(c.get(SETTINGS, headers=api.headers())) == stored  # unchanged
    changed = ok(c.put(SETTINGS, json={"mode": "block"}, headers=api.headers()))
    assert changed["mode"] == "block" and changed["good_bots"] == []  # a PUT replaces
    assert ok(c.get(CDN, headers=api.headers()))["security"]["bots"] == changed
    assert ok(c.get(CDN, headers=api.headers()))["origins"]  # the rest of the config stays


def test_the_snapshot_holds_a_key_per_project_and_no_bots_when_off(api: Api) -> None:
    for project in ("other", "quiet"):
        ok(api.client.post("/api/v1/projects", json={"id": project}, headers=api.headers()), 201)
    ok(configure(api, {"mode": "block", "good_bots": [GOOD]}), 201)
    ok(configure(api, {"automated": "challenge"}, "other"), 201)
    ok(configure(api, {}, "quiet"), 201)
    for project, name in (("default", "a"), ("other", "b"), ("quiet", "c")):
        headers = {**api.headers(), "X-Edgeplane-Project": project}
        body = {"domain": f"{name}.localhost"}
        ok(api.client.post("/api/v1/infrastructure/domains", json=body, headers=headers), 201)
    with api.db.read(LOCAL, "default") as tx:
        config = snapshot(load_state(tx.session, tx.secrets), NODE, 1)
    sites = {s.id: s for s in config.sites}
    a, b = sites["default"].bots, sites["other"].bots
    assert a is not None and b is not None and sites["quiet"].bots is None
    assert a.key == bot_key(TEST_SECRETS, "default") and b.key == bot_key(TEST_SECRETS, "other")
    assert len(a.key) == 64 and a.key != b.key
    assert a.mode == "block" and a.good_bots[0].addresses == ("66.249.64.0/19",)
    assert "key" not in repr(a) and a.key not in repr(config)
    assert "bots" not in sites["quiet"].model_dump()  # unused: dumps (and hashes) as before
    for path in (CDN, BOTS, SETTINGS, "/api/v1/audit"):
        assert a.key not in api.client.get(path, headers=api.headers()).text


def test_the_summary_adds_up_the_nodes_counts(api: Api) -> None:
    ok(configure(api, {"mode": "challenge"}), 201)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = [
        ("n1", now - timedelta(minutes=2), 100, {"bad:challenge": 7, "bad:pass": 2}),
        ("n2", now - timedelta(minutes=2), 50, {"bad:challenge": 3, "automated:detect": 4}),
        ("n1", now - timedelta(minutes=1), 10, {"impostor:block": 1, "odd": 5, "x:y": 2}),
        ("n1", now - timedelta(hours=3), 999, {"bad:challenge": 999}),  # outside the hour
    ]
    with api.db.transaction(LOCAL, "default") as tx:
        for node, minute, requests, bots in rows:
            tx.session.add(
                EdgeAnalyticsRow(
                    node_id=node, domain="a.localhost", minute=minute, project_id="default",
                    requests=requests, bots=bots,
                )
            )  # fmt: skip
    doc = ok(api.client.get(BOTS, headers=api.headers()))
    assert doc["enabled"] is True and doc["settings"]["mode"] == "challenge"
    assert (doc["requests"], doc["bot_requests"]) == (160, 17)
    assert (doc["challenged"], doc["blocked"]) == (10, 1)
    assert [(c["bot_class"], c["action"], c["requests"]) for c in doc["counts"]] == [
        ("bad", "challenge", 10),
        ("automated", "detect", 4),
        ("bad", "pass", 2),
        ("impostor", "block", 1),
    ]
    assert (
        ok(api.client.get(BOTS, params={"timeframe": "6h"}, headers=api.headers()))["bot_requests"]
        == 17 + 999
    )
    problem(api.client.get(BOTS, params={"timeframe": "2y"}, headers=api.headers()), "timeframe")

    async def sdk() -> tuple[Any, Any]:
        service = CDNService(
            client=Client(Settings(home=api.tmp / "home", database_url=api.db.url))
        )
        try:
            summary = await service.get_bot_summary(timeframe="1h")
            settings = await service.set_bot_settings({"mode": "detect", "automated": "block"})
            return summary, settings
        finally:
            await service.client.aclose()

    from edgeplane.sdk import embedded

    try:
        summary, settings = asyncio.run(sdk())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
    assert summary.bot_requests == 17 and summary.blocked == 1
    assert (settings.mode, settings.automated) == ("detect", "block")
    assert json.loads(api.client.get(SETTINGS, headers=api.headers()).text)["automated"] == "block"
