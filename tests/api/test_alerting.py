"""Alert rules, the rule engine, notification channels, deliveries and silences, on the real
app and database; notifications go to a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conftest import Api
from edgeplane.notify.signing import verify
from edgeplane.services import notifications
from edgeplane.services.alert_engine import Engine
from edgeplane.store.tables import utcnow

SERVER = {
    "id": "web-1",
    "name": "Web 1",
    "type": "primary",
    "region": "europe",
    "location": "eu-central",
    "capacity": {"cpu": 8, "memory": 32, "storage": 500},
}


class Receiver:
    """A webhook receiver: keeps every request (headers, body); answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _headers, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def problem(r: Any, status: int = 422) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    return json.dumps(r.json())


def cpu(api: Api, value: float, at: datetime) -> None:
    body = {"cpu_percent": value, "memory_percent": 30, "at": at.isoformat()}
    r = api.post("/api/v1/infrastructure/servers/web-1/metrics", json=body)
    assert r.status_code == 200, r.text


# Rules ------------------------------------------------------------------------------------


def test_every_project_has_the_shipped_rules(api: Api) -> None:
    rules = {r["id"]: r for r in api.get("/api/v1/alerts/rules").json()}
    assert rules["cpu-high"]["series"] == "cpu_percent"
    assert (rules["cpu-high"]["comparison"], rules["cpu-high"]["threshold"]) == (">", 80)
    assert rules["memory-low"]["threshold"] == 20
    assert rules["storage-high"]["threshold"] == 85
    assert rules["network-latency-high"]["threshold"] == 200
    assert rules["response-time-high"]["threshold"] == 500
    assert rules["error-rate-high"]["threshold"] == 1
    assert rules["throughput-low"]["enabled"] is False
    assert all(r["builtin"] for r in rules.values())
    r = api.delete("/api/v1/alerts/rules/cpu-high")
    assert "disable it instead" in problem(r, 409)
    r = api.patch("/api/v1/alerts/rules/cpu-high", json={"threshold": 90})
    assert r.status_code == 200 and r.json()["threshold"] == 90


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"series": "cpu_percnt"}, "series"),
        ({"threshold": "high"}, "threshold"),
        ({"comparison": "~"}, "comparison"),
        ({"for_s": -5}, "for_s"),
        ({"window_s": 10}, "window_s"),
        ({"selector": {"pool": "x"}}, "selector.pool"),
        ({"channels": ["nowhere"]}, "channels.0"),
        ({"severity": "bad"}, "severity"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    body = {
        "id": "busy",
        "name": "Busy",
        "series": "cpu_percent",
        "comparison": ">",
        "threshold": 50,
        **change,
    }
    text = problem(api.post("/api/v1/alerts/rules", json=body))
    assert field in text, text
    assert api.get("/api/v1/alerts/rules/busy").status_code == 404


# Channels ---------------------------------------------------------------------------------


def test_channel_secrets_are_write_only(api: Api, receiver: Receiver) -> None:
    body = {
        "id": "ops",
        "name": "Ops hook",
        "config": {"kind": "webhook", "url": receiver.url, "secret": "s3cret-value"},
    }
    r = api.post("/api/v1/alerts/channels", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["config"]["secret"] == "set"
    assert "s3cret-value" not in api.get("/api/v1/alerts/channels").text
    r = api.post("/api/v1/alerts/channels/ops/test")
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    headers, body_bytes = receiver.requests[-1]
    assert verify("s3cret-value", body_bytes, headers, utcnow().timestamp())
    assert json.loads(body_bytes)["event"] == "test"
    r = api.post(
        "/api/v1/alerts/channels",
        json={"id": "bad", "name": "Bad", "config": {"kind": "webhook", "url": "ftp://x"}},
    )
    assert "config.webhook.url" in problem(r) or "url" in problem(r)
    assert api.get("/api/v1/alerts/channels/bad").status_code == 404


def test_an_unreachable_webhook_is_a_delivery_error_with_retries(api: Api) -> None:
    api.post(
        "/api/v1/alerts/channels",
        json={
            "id": "gone",
            "name": "Gone",
            "config": {"kind": "webhook", "url": "http://127.0.0.1:9/x"},
        },
    )
    r = api.post("/api/v1/alerts/channels/gone/test")
    assert r.status_code == 200
    assert r.json()["ok"] is False and "unreachable" in r.json()["error"]
    fired = fire_cpu_rule(api)
    notifications.deliver_due(api.db)
    [note] = api.get(f"/api/v1/alerts/{fired}/notifications").json()
    assert note["status"] == "pending" and note["attempts"] == 1
    assert "unreachable" in note["last_error"] and len(note["log"]) == 1
    assert note["next_attempt_at"] is not None
    # retried when due, with its backoff (5 s, then 15 s ...)
    later = datetime.fromisoformat(note["next_attempt_at"]) + timedelta(seconds=1)
    notifications.deliver_due(api.db, now=later)
    [note] = api.get(f"/api/v1/alerts/{fired}/notifications").json()
    assert note["attempts"] == 2 and len(note["log"]) == 2


# The engine -------------------------------------------------------------------------------


def fire_cpu_rule(api: Api) -> str:
    """CPU samples above 80 % for longer than the rule's for_s (300 s): one firing alert."""
    api.post("/api/v1/infrastructure/servers", json=SERVER)
    t0 = utcnow() - timedelta(seconds=400)
    cpu(api, 95, t0)
    cpu(api, 96, t0 + timedelta(seconds=310))
    engine = Engine(api.db)
    assert engine.evaluate(now=t0 + timedelta(seconds=1)).pending >= 1
    assert engine.evaluate(now=t0 + timedelta(seconds=200)).fired == 0
    assert engine.evaluate(now=t0 + timedelta(seconds=311)).fired == 1
    [alert] = api.get("/api/v1/alerts?state=firing&rule=cpu-high").json()
    assert alert["object_id"] == "web-1" and alert["severity"] == "warning"
    assert alert["value"] == 96 and alert["threshold"] == 80  # the samples in the window
    return str(alert["id"])


def test_cpu_over_the_threshold_fires_once_and_resolves(api: Api, receiver: Receiver) -> None:
    api.post(
        "/api/v1/alerts/channels",
        json={"id": "hook", "name": "Hook", "config": {"kind": "webhook", "url": receiver.url}},
    )
    alert_id = fire_cpu_rule(api)
    t0 = datetime.fromisoformat(api.get(f"/api/v1/alerts/{alert_id}").json()["started_at"])
    engine = Engine(api.db)
    for s in (320, 330):  # still over: no second incident, no second message
        cpu(api, 97, t0 + timedelta(seconds=s))
        assert engine.evaluate(now=t0 + timedelta(seconds=s + 1)).fired == 0
    notifications.deliver_due(api.db)
    assert [b["event"] for b in receiver.bodies()] == ["firing"]
    assert receiver.bodies()[0]["alert_id"] == alert_id
    # under the threshold: resolved, one resolved message
    for s in (340, 350, 360, 370, 380, 390, 400, 410, 420, 430, 440):
        cpu(api, 5, t0 + timedelta(seconds=s))
    assert engine.evaluate(now=t0 + timedelta(seconds=445)).resolved == 1
    notifications.deliver_due(api.db, now=t0 + timedelta(seconds=446))
    assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
    alert = api.get(f"/api/v1/alerts/{alert_id}").json()
    assert alert["state"] == "resolved" and alert["resolved_at"]
    assert api.get("/api/v1/alerts?state=firing").json() == []
    # acknowledged by someone, once
    r = api.post(f"/api/v1/alerts/{alert_id}/acknowledge")
    assert r.status_code == 200 and r.json()["acknowledged_by"]


def test_a_silence_suppresses_delivery_and_is_shown(api: Api, receiver: Receiver) -> None:
    api.post(
        "/api/v1/alerts/channels",
        json={"id": "hook", "name": "Hook", "config": {"kind": "webhook", "url": receiver.url}},
    )
    r = api.post(
        "/api/v1/alerts/silences",
        json={
            "rule": "cpu-high",
            "starts_at": (utcnow() - timedelta(hours=1)).isoformat(),  # the engine's clock
            "duration_s": 7200,
            "comment": "maintenance",
        },
    )
    assert r.status_code == 201 and r.json()["active"] is True, r.text
    alert_id = fire_cpu_rule(api)
    notifications.deliver_due(api.db)
    assert receiver.requests == []
    assert api.get(f"/api/v1/alerts/{alert_id}").json()["silenced"] is True
    [note] = api.get(f"/api/v1/alerts/{alert_id}/notifications").json()
    assert note["status"] == "silenced"
    r = api.post("/api/v1/alerts/silences", json={"duration_s": -1})
    assert "duration_s" in problem(r)
    r = api.post("/api/v1/alerts/silences", json={})
    assert "ends_at" in problem(r)


# Series -------------------------------------------------------------------------------------


def test_metrics_query_and_its_refusals(api: Api) -> None:
    api.post("/api/v1/infrastructure/servers", json=SERVER)
    now = utcnow()
    for i in range(5):
        cpu(api, 10 + i * 10, now - timedelta(minutes=5 - i))
    r = api.get("/api/v1/metrics?series=cpu_percent&since=1h&step=3600")
    assert r.status_code == 200, r.text
    [result] = r.json()["results"]
    assert result["object"] == "web-1"
    assert sum(p["value"] for p in result["points"]) / len(result["points"]) > 0
    catalog = {s["name"] for s in api.get("/api/v1/metrics/series").json()}
    assert {"requests", "hit_ratio", "cpu_percent", "origin_up"} <= catalog
    assert "series" in problem(api.get("/api/v1/metrics?series=nope"))
    assert "since" in problem(api.get("/api/v1/metrics?series=requests&since=2w"))
    assert "step" in problem(api.get("/api/v1/metrics?series=requests&step=1"))
    assert "server" in problem(api.get("/api/v1/metrics?series=requests&server=x"))


# The CLI ------------------------------------------------------------------------------------


def test_cli_rules_channels_silences_and_series(
    cli: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = {r["id"]: r for r in cli.json("alert", "rule", "list")}
    assert rules["cpu-high"]["threshold"] == 80
    made = cli.json("alert", "rule", "create", "busy", "--series", "cpu_percent", "--when",
                    "> 90", "--for", "60")  # fmt: skip
    assert (made["comparison"], made["threshold"], made["for_s"]) == (">", 90, 60)
    err = cli.fails("alert", "rule", "create", "odd", "--series", "nope", "--when", "> 1", code=1)
    assert "series" in err
    monkeypatch.setenv("HOOK_SECRET", "from-the-environment")
    channel = cli.json("alert", "channel", "create", "hook", "--webhook", receiver.url,
                       "--secret-env", "HOOK_SECRET")  # fmt: skip
    assert channel["config"]["secret"] == "set"
    sent = cli.json("alert", "channel", "test", "hook")
    assert sent["ok"] is True
    headers, body = receiver.requests[-1]
    assert verify("from-the-environment", body, headers, utcnow().timestamp())
    silence = cli.json("alert", "silence", "create", "--rule", "busy", "--for", "600")
    assert silence["active"] is True and silence["rule"] == "busy"
    assert [s["id"] for s in cli.json("alert", "silence", "list", "--active")] == [silence["id"]]
    names = {s["name"] for s in cli.json("metrics", "list")}
    assert "response_time_p95_ms" in names
    assert cli.json("alert", "list") == []


# The SDK ------------------------------------------------------------------------------------


def test_sdk_rules_channels_and_series(api: Api, receiver: Receiver) -> None:
    import asyncio

    from edgeplane import MonitoringService
    from edgeplane.errors import InvalidInput
    from edgeplane.sdk import embedded
    from edgeplane.sdk.client import Client
    from edgeplane.settings import Settings

    service = MonitoringService(client=Client(Settings(home=api.tmp / "home",
                                                       database_url=api.db.url)))  # fmt: skip

    async def scenario() -> None:
        rule = await service.create_rule("slow", "response_time_p95_ms", ">", 800, for_s=60)
        assert rule.threshold == 800 and rule.for_s == 60
        assert "slow" in {r.id for r in await service.rules()}
        with pytest.raises(InvalidInput) as err:
            await service.create_rule("odd", "nope", ">", 1)
        assert "series" in str(err.value)
        channel = await service.create_channel("hook", {"kind": "webhook", "url": receiver.url})
        assert channel.kind == "webhook"
        assert (await service.test_channel("hook")).ok
        silence = await service.silence(duration_s=60, rule="slow")
        assert silence.active
        assert "cpu_percent" in {s["name"] for s in await service.series()}
        assert (await service.metrics("requests", since="1h"))["results"] == []
        assert await service.alerts() == []

    try:
        asyncio.run(scenario())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
