"""Edge functions at work through the real API: invocations and console lines reported by a
registered node (edge token), the series of source ``function`` through /api/v1/metrics (by
region, selected by function), the console read with ``after`` / ``level`` / ``node`` /
``version``, its retention (age, per-function cap), the metrics summary per region and in
total, hourly rollups; then the SDK and the CLI (``function logs|metrics``, ``logs
--function``, ``--follow`` stopped by SIGINT)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import Api, Cli
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS
from edgeplane.services import function_obs, retention
from edgeplane.services.jobs import control_plane_jobs
from edgeplane.services.log_retention import LogRetention
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.function_obs_tables import FunctionHourRow, FunctionLogRow
from edgeplane.store.function_tables import FunctionRow
from edgeplane.store.tables import utcnow

EDGE = "/api/v1/edge"
FN = "/api/v1/infrastructure/functions"
PROTOCOL = {"Edgeplane-Protocol": "3"}
BUCKETS = len(UPSTREAM_MS_BUCKETS) + 1


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    if field is not None:
        assert doc.get("field") == field, doc
    return doc


class Node:
    def __init__(self, api: Api, token: str, name: str, region: str) -> None:
        self.api = api
        self.token = token
        self.name = name
        body = {"name": name, "region": region, "http_port": 8080, "protocol": 3,
                "functions": True}  # fmt: skip
        self.id = str(ok(api.client.post(f"{EDGE}/nodes", json=body, headers=self.headers()))["id"])

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **PROTOCOL}

    def traffic(self, *minutes: dict[str, Any]) -> Any:
        path = f"{EDGE}/nodes/{self.id}/function-traffic"
        return self.api.client.post(path, json={"minutes": list(minutes)}, headers=self.headers())

    def logs(self, *lines: dict[str, Any], dropped: int = 0) -> Any:
        return self.api.client.post(f"{EDGE}/nodes/{self.id}/function-logs",
                                    json={"lines": list(lines), "dropped": dropped},
                                    headers=self.headers())  # fmt: skip


def histogram(**at_ms: int) -> list[int]:
    """Counts at the buckets holding the given times: histogram(ms5=3, ms300=1)."""
    out = [0] * BUCKETS
    for key, n in at_ms.items():
        ms = float(key[2:])
        out[next(i for i, b in enumerate(UPSTREAM_MS_BUCKETS) if b >= ms)] += n
    return out


def minute(at: datetime, fn: str = "default/hello", invocations: int = 10,
           errors: dict[str, int] | None = None, duration: list[int] | None = None,
           ) -> dict[str, Any]:  # fmt: skip
    errors = errors or {}
    return {
        "site": fn.partition("/")[0],
        "function": fn,
        "minute": at.replace(second=0, microsecond=0).isoformat(),
        "invocations": invocations,
        "errors": errors,
        "statuses": {"2xx": invocations - sum(errors.values()), "5xx": sum(errors.values())},
        "duration_ms": duration if duration is not None else histogram(ms5=invocations),
    }


def line(msg: str, *, level: str = "log", version: int | None = 1, fn: str = "default/hello",
         at: datetime | None = None, rid: str | None = "req-1") -> dict[str, Any]:  # fmt: skip
    return {"function": fn, "version": version, "at": (at or utcnow()).isoformat(),
            "level": level, "message": msg, "request_id": rid}  # fmt: skip


def add_function(api: Api, name: str = "hello", project: str = "default") -> None:
    with api.db.transaction(LOCAL, project) as tx:
        tx.session.add(FunctionRow(project_id=project, name=name))


@pytest.fixture
def nodes(api: Api) -> dict[str, Node]:
    add_function(api)
    add_function(api, "other")
    token = ok(api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}), 201)["token"]
    return {
        name: Node(api, token, name, region)
        for name, region in (("eu-1", "eu-central"), ("eu-2", "eu-central"), ("us-1", "us-east"))
    }


def series(api: Api, name: str, **params: Any) -> dict[str, list[float]]:
    doc = ok(api.get("/api/v1/metrics", params={"series": name, **params}))
    return {r["object"]: [p["value"] for p in r["points"]] for r in doc["results"]}


def test_invocations_become_series_and_a_summary(api: Api, nodes: dict[str, Node]) -> None:
    now = utcnow() - timedelta(minutes=2)
    eu1, eu2, us1 = nodes["eu-1"], nodes["eu-2"], nodes["us-1"]
    ok(eu1.traffic(minute(now, invocations=10, errors={"exception": 1},
                          duration=histogram(ms5=8, ms300=2))), 204)  # fmt: skip
    ok(eu2.traffic(minute(now, invocations=10, errors={"timeout": 2, "unavailable": 1},
                          duration=histogram(ms5=5, ms5000=5))), 204)  # fmt: skip
    ok(us1.traffic(minute(now, invocations=20), minute(now, "default/other", 4)), 204)
    # A minute sent again replaces what was sent before for it.
    ok(us1.traffic(minute(now, invocations=20, errors={"memory": 2})), 204)

    by_region = series(api, "function_invocations", function="hello", group_by="region",
                       since="15m", step=900)  # fmt: skip
    assert by_region == {"eu-central": [20.0], "us-east": [20.0]}
    assert series(api, "function_invocations", since="15m", step=900) == {
        "hello": [40.0], "other": [4.0],
    }  # fmt: skip
    assert series(api, "function_errors", function="hello", group_by="node", since="15m",
                  step=900) == {"eu-1": [1.0], "eu-2": [3.0], "us-1": [2.0]}  # fmt: skip
    rate = series(api, "function_error_rate", function="hello", group_by="region", since="15m",
                  step=900)  # fmt: skip
    assert rate == {"eu-central": [20.0], "us-east": [10.0]}
    p99 = series(api, "function_duration_p99_ms", function="hello", region="eu-central",
                 since="15m", step=900)  # fmt: skip
    assert list(p99) == ["hello"] and 3000 < p99["hello"][0] <= 5000
    assert series(api, "function_duration_p50_ms", function="hello", since="15m",
                  step=900)["hello"][0] <= 5  # fmt: skip
    assert series(api, "function_invocations", group_by="project", since="15m", step=900) == {
        "default": [44.0]
    }
    # The catalog states them; a traffic selector is refused for them.
    catalog = {s["name"]: s for s in ok(api.get("/api/v1/metrics/series"))}
    assert catalog["function_error_rate"]["objects"] == ["function", "region", "node", "project"]
    assert catalog["function_errors"]["selectors"] == ["function", "node", "region"]
    problem(api.get("/api/v1/metrics", params={"series": "function_errors", "domain": "x"}),
            422, "selector.domain")  # fmt: skip
    problem(api.get("/api/v1/metrics", params={"series": "requests", "function": "x"}),
            422, "selector.function")  # fmt: skip

    # What alert rules compare: the value over a window.
    with api.db.read(LOCAL, "default") as tx:
        from edgeplane.services import series as series_service

        assert series_service.current(tx, "default", "function_error_rate", {"function": "hello"},
                                      window_s=600) == {"hello": 15.0}  # fmt: skip

    doc = ok(api.get(f"{FN}/hello/metrics", params={"since": "15m"}))
    assert doc["function"] == "hello"
    total = doc["total"]
    assert total["invocations"] == 40 and total["error_count"] == 6
    assert total["errors"] == {"exception": 1, "timeout": 2, "memory": 2, "unavailable": 1}
    assert total["error_rate"] == 15.0 and total["statuses"] == {"2xx": 34, "5xx": 6}
    assert total["p50_ms"] is not None and total["p95_ms"] <= total["p99_ms"] <= 5000
    regions = {r["region"]: r for r in doc["regions"]}
    assert set(regions) == {"eu-central", "us-east"}
    assert regions["eu-central"]["invocations"] == 20 and regions["eu-central"]["error_rate"] == 20
    assert regions["us-east"]["errors"]["memory"] == 2
    assert regions["eu-central"]["region_code"] is not None
    only = ok(api.get(f"{FN}/hello/metrics", params={"since": "15m", "region": "us-east"}))
    assert [r["region"] for r in only["regions"]] == ["us-east"]
    assert only["total"]["invocations"] == 20
    quiet = ok(api.get(f"{FN}/hello/metrics", params={"since": "15m", "region": "ap-southeast"}))
    assert quiet["regions"] == [] and quiet["total"]["invocations"] == 0
    assert quiet["total"]["error_rate"] is None and quiet["total"]["p50_ms"] is None
    problem(api.get(f"{FN}/hello/metrics", params={"region": "atlantis"}), 422, "region")
    problem(api.get(f"{FN}/hello/metrics", params={"since": "2d"}), 422, "since")
    problem(api.get(f"{FN}/nope/metrics"), 404)


def test_a_bad_traffic_report_is_refused_naming_the_field(api: Api, nodes: dict[str, Node]
                                                           ) -> None:  # fmt: skip
    node = nodes["eu-1"]
    now = utcnow()
    problem(node.traffic({**minute(now), "duration_ms": [1, 2]}), 422, "minutes.0.duration_ms")
    problem(node.traffic(minute(now), minute(now)), 422, "minutes.1")
    problem(node.traffic({**minute(now), "statuses": {"9xx": 1}}), 422, "minutes.0.statuses")
    assert node.traffic({**minute(now), "errors": {"boom": 1}}).status_code == 422
    assert node.traffic({**minute(now), "function": "no-slash"}).status_code == 422
    # People's tokens cannot report; an unknown node is 404.
    assert api.post(f"{EDGE}/nodes/{node.id}/function-traffic",
                    json={"minutes": []}).status_code in (401, 403)  # fmt: skip
    r = api.client.post(f"{EDGE}/nodes/edge-nope/function-logs", json={"lines": []},
                        headers=node.headers())  # fmt: skip
    assert r.status_code == 404
    # Fields a newer agent adds are ignored.
    r = node.traffic({**minute(now), "future": 1})
    assert r.status_code == 204 and r.headers.get("Edgeplane-Protocol") == "3"


def test_console_lines_are_read_newest_first_and_followed(api: Api, nodes: dict[str, Node]
                                                          ) -> None:  # fmt: skip
    eu1, us1 = nodes["eu-1"], nodes["us-1"]
    t0 = utcnow()
    ok(eu1.logs(line("starting", level="info"), line("x is undefined\n  at fetch (fn.js:3)",
                                                     level="error", rid="req-2"),
                line("odd", level="debug", version=None, rid=None), dropped=4), 204)  # fmt: skip
    ok(us1.logs(line("from us", level="warn", version=2), line("other's", fn="default/other")),
       204)  # fmt: skip
    page = ok(api.get(f"{FN}/hello/logs"))
    assert page["function"] == "hello"
    messages = [x["message"] for x in page["items"]]
    assert messages == ["from us", "odd", "x is undefined\n  at fetch (fn.js:3)", "starting"]
    first = page["items"][-1]
    assert (first["node"], first["node_id"], first["version"], first["level"]) == (
        "eu-1", eu1.id, 1, "info",
    )  # fmt: skip
    assert first["request_id"] == "req-1" and t0 - timedelta(seconds=1) <= datetime.fromisoformat(
        first["at"]
    )
    assert page["next_after"] == page["items"][0]["id"]

    def msgs(**params: Any) -> list[str]:
        return [x["message"] for x in ok(api.get(f"{FN}/hello/logs", params=params))["items"]]

    assert msgs(level="warn") == ["from us", "x is undefined\n  at fetch (fn.js:3)"]
    assert msgs(level="error") == ["x is undefined\n  at fetch (fn.js:3)"]
    assert msgs(level="log") == ["from us", "x is undefined\n  at fetch (fn.js:3)", "starting"]
    assert msgs(node="us-1") == ["from us"] and msgs(node="nowhere") == []
    assert msgs(version=2) == ["from us"]
    assert msgs(limit=1) == ["from us"]
    assert [x["message"] for x in ok(api.get(f"{FN}/other/logs"))["items"]] == ["other's"]

    # Following: after=next_after gives what arrived since, oldest first, a page at a time.
    after = page["next_after"]
    assert ok(api.get(f"{FN}/hello/logs", params={"after": after})) == {
        "function": "hello", "items": [], "next_after": after,
    }  # fmt: skip
    ok(eu1.logs(*(line(f"n{i}", level="error" if i % 2 else "log") for i in range(5))), 204)
    got = ok(api.get(f"{FN}/hello/logs", params={"after": after, "limit": 3}))
    assert [x["message"] for x in got["items"]] == ["n0", "n1", "n2"]
    rest = ok(api.get(f"{FN}/hello/logs", params={"after": got["next_after"]}))
    assert [x["message"] for x in rest["items"]] == ["n3", "n4"]
    errors = ok(api.get(f"{FN}/hello/logs", params={"after": after, "level": "error"}))
    assert [x["message"] for x in errors["items"]] == ["n1", "n3"]
    assert errors["next_after"] == rest["next_after"]  # the lines looked at are passed over

    problem(api.get(f"{FN}/hello/logs", params={"level": "loud"}), 422)
    problem(api.get(f"{FN}/hello/logs", params={"limit": 0}), 422)
    problem(api.get(f"{FN}/nope/logs"), 404)
    problem(api.get(f"{FN}/Bad_Name/logs"), 422, "name")
    # A bad line refuses the report whole.
    problem(eu1.logs(line("ok"), {**line("x"), "level": "loud"}), 422)
    problem(eu1.logs({**line("x"), "message": "y" * 3000}), 422)
    assert len(msgs(limit=1000)) == 9

    # Only the project's viewers read them.
    viewer = api.token("viewer")
    assert api.get(f"{FN}/hello/logs", token=viewer).status_code == 200
    ok(api.post("/api/v1/projects", json={"id": "elsewhere"}), 201)
    stranger = api.token("viewer", project="elsewhere")
    assert api.get(f"{FN}/hello/logs", token=stranger).status_code == 403
    r = api.get(f"{FN}/hello/logs", token=stranger, params={"project": "elsewhere"})
    assert r.status_code == 404  # no such function there


def _settings(api: Api, **kw: Any) -> Settings:
    return replace(Settings(home=Path(api.tmp) / "home", database_url=api.db.url), **kw)


def stored(api: Api) -> int:
    with api.db.read(LOCAL, "default") as tx:
        return int(tx.session.scalar(select(func.count()).select_from(FunctionLogRow)) or 0)


def test_console_retention_by_age_and_per_function(api: Api, nodes: dict[str, Node]) -> None:
    node = nodes["eu-1"]
    old = utcnow() - timedelta(days=8)
    ok(node.logs(*(line(f"old{i}", at=old) for i in range(3)),
                 *(line(f"a{i}") for i in range(5))), 204)  # fmt: skip
    job = LogRetention(function_obs.LINES)
    settings = _settings(api, function_log_per_function=3)
    assert job(api.db, settings) == 3 + 2
    assert [x["message"] for x in ok(api.get(f"{FN}/hello/logs"))["items"]] == ["a4", "a3", "a2"]
    assert job(api.db, settings) == 0  # nothing new: no function looked at
    ok(node.logs(*(line(f"b{i}", fn="default/other") for i in range(4))), 204)
    assert job(api.db, replace(settings, function_log_per_function=2)) == 2
    assert len(ok(api.get(f"{FN}/hello/logs"))["items"]) == 3  # hello received nothing since
    assert Settings().function_log_retention_s == 7 * 86400
    assert Settings().function_log_per_function == 10_000
    assert job(api.db, replace(settings, function_log_retention_s=0)) == 5
    assert stored(api) == 0


def test_the_retention_job_and_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPLANE_FUNCTION_LOG_RETENTION", "3600")
    monkeypatch.setenv("EDGEPLANE_FUNCTION_LOG_PER_FUNCTION", "500")
    settings = Settings.from_env()
    assert (settings.function_log_retention_s, settings.function_log_per_function) == (3600, 500)
    from threading import Event

    from edgeplane.store.db import Database

    jobs = control_plane_jobs(Database("sqlite://"), settings, Event())
    job = next(j for j in jobs if j.name == "function log retention")
    assert job.interval_s == function_obs.RETENTION_EVERY_S


def test_hours_are_rolled_up_and_read_for_old_ranges(api: Api, nodes: dict[str, Node]) -> None:
    node = nodes["eu-1"]
    hour = (utcnow() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    ok(node.traffic(minute(hour + timedelta(minutes=1), invocations=3, errors={"timeout": 1}),
                    minute(hour + timedelta(minutes=30), invocations=5)), 204)  # fmt: skip
    assert retention.roll_up_functions(api.db) >= 1
    with api.db.read(LOCAL, "default") as tx:
        rows = [(r.name, r.hour.astimezone(UTC), r.invocations, r.errors)
                for r in tx.session.scalars(select(FunctionHourRow))]  # fmt: skip
    assert rows == [("hello", hour, 8, {"timeout": 1})]
    with api.db.read(LOCAL, "default") as tx:
        assert function_obs.rolled_until(tx) == hour + timedelta(hours=1)
    # Whole-hour steps read the rollups.
    got = series(api, "function_invocations", since="7d", step=3600)
    assert got == {"hello": [8.0]}
    doc = ok(api.get(f"{FN}/hello/metrics", params={"since": "30d"}))
    assert doc["total"]["invocations"] == 8 and doc["total"]["errors"]["timeout"] == 1
    # Minutes past their retention go once rolled up; hours later.
    removed = retention.prune_functions(api.db, _settings(api, metrics_minute_retention_s=3600))
    assert removed == {"function_minutes": 2, "function_hours": 0}
    assert series(api, "function_invocations", since="7d", step=3600) == {"hello": [8.0]}


def test_the_sdk_and_the_cli(api: Api, nodes: dict[str, Node], cli: Cli) -> None:
    from edgeplane import FunctionService, MonitoringService

    eu1 = nodes["eu-1"]
    ok(eu1.logs(line("hello world", level="info"), line("bad thing", level="error", version=2)),
       204)  # fmt: skip
    ok(eu1.traffic(minute(utcnow() - timedelta(minutes=1), invocations=7,
                          errors={"exception": 1})), 204)  # fmt: skip

    async def read() -> Any:
        service = FunctionService()
        monitoring = MonitoringService()
        try:
            page = await service.logs("hello", level="warn")
            more = await service.logs("hello", after=page.next_after)
            metrics = await service.metrics("hello", since="15m")
            points = await monitoring.metrics("function_invocations", function="hello",
                                              group_by="region", since="15m")  # fmt: skip
            return page, more, metrics, points
        finally:
            await service.client.aclose()
            await monitoring.client.aclose()

    page, more, metrics, points = asyncio.run(read())
    assert [x.message for x in page.items] == ["bad thing"] and more.items == []
    assert metrics.total.invocations == 7 and metrics.total.errors["exception"] == 1
    assert [r["object"] for r in points["results"]] == ["eu-central"]

    table = cli.run("function", "logs", "hello").stdout.splitlines()
    assert table[0].split() == ["TIME", "NODE", "VERSION", "LEVEL", "MESSAGE"]
    assert [row.split()[2:] for row in table[1:]] == [
        ["eu-1", "1", "info", "hello", "world"],
        ["eu-1", "2", "error", "bad", "thing"],
    ]
    doc = cli.json("function", "logs", "hello", "--level", "error")
    assert [x["message"] for x in doc["items"]] == ["bad thing"]
    assert "--level" in cli.fails("function", "logs", "hello", "--level", "loud", code=2)
    assert "not found" in cli.fails("function", "logs", "nope", code=1)
    # edgeplane logs --function: the same lines; exactly one of DOMAIN and --function.
    same = cli.run("logs", "--function", "hello", "-n", "1").stdout.splitlines()
    assert same[0].split()[:2] == ["TIME", "NODE"] and same[1].split()[-2:] == ["bad", "thing"]
    assert "exactly one" in cli.fails("logs", code=2)
    assert "exactly one" in cli.fails("logs", "shop.test", "--function", "hello", code=2)
    assert "--status" in cli.fails("logs", "--function", "hello", "--status", "5xx", code=2)
    assert "--level" in cli.fails("logs", "shop.test", "--level", "warn", code=2)

    shown = cli.run("function", "metrics", "hello", "--since", "15m").stdout
    assert "eu-central" in shown and "(all)" in shown and "14.29%" in shown
    doc = cli.json("function", "metrics", "hello")
    assert doc["total"]["invocations"] == 7
    points = cli.json("metrics", "query", "function_errors", "--function", "hello", "--by", "node")
    assert [r["object"] for r in points["results"]] == ["eu-1"]


@pytest.mark.timeout(60)
def test_follow_prints_new_lines_and_stops_on_sigint(api: Api, nodes: dict[str, Node]) -> None:
    eu1 = nodes["eu-1"]
    ok(eu1.logs(line("before")), 204)
    env = {
        **os.environ,
        "EDGEPLANE_HOME": str(api.tmp / "home"),
        "EDGEPLANE_DATABASE_URL": api.db.url,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    for name in ("EDGEPLANE_URL", "EDGEPLANE_TOKEN", "EDGEPLANE_PROJECT"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeplane", "function", "logs", "hello", "-f"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        seen = [proc.stdout.readline() for _ in range(2)]
        assert seen[0].split()[:2] == ["TIME", "NODE"] and seen[1].rstrip().endswith("before")
        ok(eu1.logs(line("after", level="warn")), 204)
        deadline = time.monotonic() + 20
        arrived = proc.stdout.readline()
        assert time.monotonic() < deadline and arrived.split()[-2:] == ["warn", "after"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_deleted_functions_invocations_and_lines_go_with_it(api: Api, nodes: dict[str, Node]
                                                              ) -> None:  # fmt: skip
    eu1 = nodes["eu-1"]
    old = (utcnow() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    ok(eu1.traffic(minute(old, invocations=7), minute(old, "default/other", 3)), 204)
    assert retention.roll_up_functions(api.db) >= 1  # hours hold them too
    ok(eu1.traffic(minute(utcnow() - timedelta(minutes=2), invocations=2)), 204)
    ok(eu1.logs(line("hello's"), line("other's", fn="default/other")), 204)
    assert series(api, "function_invocations", since="7d", step=7 * 86400) == {
        "hello": [9.0], "other": [3.0],
    }  # fmt: skip
    ok(api.delete(f"{FN}/hello"), 204)
    add_function(api)  # a new function of the same name starts with nothing
    assert ok(api.get(f"{FN}/hello/logs"))["items"] == []
    assert series(api, "function_invocations", since="7d", step=7 * 86400) == {"other": [3.0]}
    assert series(api, "function_invocations", since="7d", step=3600) == {"other": [3.0]}
    assert [x["message"] for x in ok(api.get(f"{FN}/other/logs"))["items"]] == ["other's"]
