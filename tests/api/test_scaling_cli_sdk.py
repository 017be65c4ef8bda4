"""``edgeplane scale group ...`` and ``ScalingService``, embedded on the test database: the
flags stored as the API's policies and schedule, the group in words, a manual action in the
history, malformed flags refused naming the flag, and the SDK's calls. No controller runs
here: no instance ever starts (tests/integration/test_scaling.py runs real ones)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.test_scaling_api import INV, SG, ok
from conftest import Api, Cli
from edgeplane.errors import Conflict
from edgeplane.model.scaling import LocalTemplate, ScheduledFloor, StepPolicy, TargetTracking
from edgeplane.sdk.client import Client
from edgeplane.sdk.scaling_service import ScalingService
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.scaling_tables import ScalingInstanceRow

# The CLI and the SDK over the API: the API on both databases is tests/api/test_scaling_api.py.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

COMMAND = "edgeplane demo-origin --port {port}"


def topology(api: Api, *lbs: str) -> None:
    ok(api.post(f"{INV}/datacenters", json={
        "id": "dc1", "name": "DC 1", "tier": 3, "location": "us-east",
        "capacity": {"cpu": 64, "memory": 256, "storage": 2000},
    }), 201)  # fmt: skip
    for lb in lbs or ("web",):
        ok(api.post(f"{INV}/loadbalancer", json={"id": lb, "backends": []}), 201)


def create(*flags: str, group: str = "web", lb: str = "web") -> list[str]:
    return ["scale", "group", "create", group, "--lb", lb, "--dc", "dc1", *flags]


def test_the_cli_creates_a_group_from_its_flags(api: Api, cli: Cli) -> None:
    topology(api)
    doc = cli.json(*create(
        "--command", COMMAND, "--env", "MODE=test", "--min", "1", "--max", "5",
        "--target-rps", "40",
        "--step", "cpu_percent>80=+1", "--step", "upstream_latency_ms>500=2",
        "--step", "cpu_percent>95=+3", "--step", "cpu_percent<20=-1",
        "--schedule", "0 9 * * 1-5@2h=3", "--schedule", "30 18 * * *@90m=2",
        "--schedule-tz", "Europe/Paris", "--scale-in-window", "120", "--cooldown", "15",
        "--capacity", "cpu=0.5,memory=2",
    ))  # fmt: skip
    assert (doc["id"], doc["desired"], doc["status"]) == ("web", 1, "steady")

    stored = ok(api.get(f"{SG}/web"))
    assert stored["policies"] == [
        {"type": "target_tracking", "metric": "requests_per_second", "target": 40.0},
        {"type": "step", "metric": "cpu_percent", "steps": [
            {"above": 80.0, "below": None, "change": 1},
            {"above": 95.0, "below": None, "change": 3},
            {"above": None, "below": 20.0, "change": -1},
        ]},
        {"type": "step", "metric": "upstream_latency_ms", "steps": [
            {"above": 500.0, "below": None, "change": 2},
        ]},
    ]  # fmt: skip
    assert stored["schedule"] == [
        {"cron": "0 9 * * 1-5", "duration_minutes": 120, "min_size": 3,
         "timezone": "Europe/Paris", "name": None},
        {"cron": "30 18 * * *", "duration_minutes": 90, "min_size": 2,
         "timezone": "Europe/Paris", "name": None},
    ]  # fmt: skip
    assert stored["template"]["command"] == COMMAND
    assert stored["template"]["env"] == {"MODE": "test"}
    assert (stored["min_size"], stored["max_size"]) == (1, 5)
    assert (stored["scale_in_stabilization_s"], stored["cooldown_s"]) == (120.0, 15.0)
    assert stored["instance_capacity"] == {"cpu": 0.5, "memory": 2.0, "storage": 0.0}

    shown = cli.run("scale", "group", "show", "web")
    text = shown.stdout
    for words in (
        "web: steady",
        "0 serving / 1 desired",
        "min 1, max 5",
        f"local: {COMMAND}",
        "requests_per_second target 40 per instance",
        "cpu_percent steps: above 80 +1, above 95 +3, below 20 -1",
        "upstream_latency_ms steps: above 500 +2",
        "at least 3 from '0 9 * * 1-5' for 2h (Europe/Paris)",
        "at least 2 from '30 18 * * *' for 1h30m (Europe/Paris)",
        "scale out 0 s, scale in 120 s, tolerance 0.1",
        "0 of 3 in a row",
        "last action 1: scale_out 0 → 1 (created with 1 instance(s)), running",
    ):
        assert words in text, (words, text)
    assert "no instances" in shown.stderr
    listed = cli.run("scale", "group", "list").stdout
    assert "web" in listed and "0/1" in listed and "1-5" in listed
    assert [g["id"] for g in cli.json("scale", "group", "list")["items"]] == ["web"]


def test_set_desired_is_a_manual_action_in_the_history(api: Api, cli: Cli) -> None:
    topology(api)
    cli.run(*create("--command", COMMAND, "-q"))
    doc = cli.json("scale", "group", "set", "web", "--desired", "3")
    assert doc["desired"] == 3 and doc["last_action"]["trigger"].startswith("desired set to 3")
    assert "1 → 3" in cli.run("scale", "group", "set", "web", "--max", "6").stdout

    history = cli.run("scale", "group", "history", "web").stdout
    for words in ("STEPS", "scale_out", "desired set to 3 by", "1 → 3", "0 → 1", "triggered +0.0s"):
        assert words in history, (words, history)
    page = cli.json("scale", "group", "history", "web", "--limit", "1")
    assert [a["to_size"] for a in page["items"]] == [3] and page["next_cursor"]
    assert "more: --cursor" in cli.run("scale", "group", "history", "web", "--limit", "1").stderr
    every = cli.json("scale", "group", "history", "web", "--limit", "1", "--all")
    assert [a["to_size"] for a in every["items"]] == [3, 1]

    # A policy flag replaces the policies; --no-schedule removes the schedule.
    doc = cli.json("scale", "group", "set", "web", "--target-cpu", "70", "--no-schedule")
    assert doc["policies"] == [{"type": "target_tracking", "metric": "cpu_percent", "target": 70}]
    assert doc["schedule"] == [] and doc["max_size"] == 6 and doc["desired"] == 3
    doc = cli.json("scale", "group", "set", "web", "--schedule", "0 8 * * *@45=2")
    assert doc["schedule"][0]["duration_minutes"] == 45 and doc["policies"][0]["target"] == 70
    assert cli.json("scale", "group", "set", "web", "--no-policies")["policies"] == []
    assert "none (manual)" in cli.run("scale", "group", "show", "web").stdout

    assert "nothing to change" in cli.fails("scale", "group", "set", "web", code=2)
    err = cli.fails("scale", "group", "set", "web", "--desired", "9", code=1)
    assert "desired" in err and "max_size" in err
    assert "not stopped" in cli.fails("scale", "group", "resume", "web", code=1)
    assert "no instances" in cli.run("scale", "group", "instances", "web").stderr
    assert cli.json("scale", "group", "instances", "web", "--ended") == []


def test_the_template_comes_from_a_file(api: Api, cli: Cli, tmp_path: Path) -> None:
    topology(api)
    file = tmp_path / "origin.yaml"
    file.write_text(f"command: {COMMAND}\nenv:\n  MODE: file\n  PORT: '{{port}}'\n")
    doc = cli.json(*create("--template", str(file), "--env", "MODE=flag", "--min", "0"))
    assert doc["template"]["env"] == {"MODE": "flag", "PORT": "{port}"}
    assert doc["policies"] == [  # no policy flag: the API's default
        {"type": "target_tracking", "metric": "requests_per_second", "target": 50.0}
    ]
    assert doc["desired"] == 0 and doc["last_action"] is None
    (tmp_path / "bad.yaml").write_text("- a list\n")
    err = cli.fails(*create("--template", str(tmp_path / "bad.yaml"), group="g2"), code=2)
    assert "--template" in err and "mapping" in err


@pytest.mark.parametrize(
    ("flags", "flag", "words"),
    [
        (["--step", "cpu_percent>>80=+1"], "--step", "METRIC>VALUE=+N"),
        (["--step", "cpu_percent>80"], "--step", "METRIC>VALUE=+N"),
        (["--step", "disk_iops>80=+1"], "--step", "cpu_percent"),
        (["--schedule", "0 9 * * *=3"], "--schedule", "CRON@DURATION=MIN"),
        (["--schedule", "0 9 * * *@2 hours=3"], "--schedule", "CRON@DURATION=MIN"),
        (["--schedule", "0 9 * * *@2h"], "--schedule", "CRON@DURATION=MIN"),
        (["--capacity", "cpu=lots"], "--capacity", "NAME=NUMBER"),
        (["--env", "MODE"], "--env", "KEY=VALUE"),
        (["--schedule-tz", "UTC"], "--schedule-tz", "--schedule"),
    ],
)
def test_malformed_flags_are_refused_naming_the_flag(
    api: Api, cli: Cli, flags: list[str], flag: str, words: str
) -> None:
    topology(api)
    err = cli.fails(*create("--command", COMMAND, *flags), code=2)
    assert flag in err and words in err, err
    assert ok(api.get(SG))["items"] == []


def test_what_the_api_refuses_names_the_field(api: Api, cli: Cli) -> None:
    topology(api)
    err = cli.fails(*create(), code=2)
    assert "--command" in err and "--template" in err
    err = cli.fails(*create("--command", COMMAND, "--min", "5", "--max", "2"), code=1)
    assert "min_size" in err and "above max_size" in err
    err = cli.fails(*create("--command", "python3 -m http.server"), code=1)
    assert "template" in err and "{port}" in err
    err = cli.fails(*create("--command", COMMAND, "--schedule", "at nine@1h=2"), code=1)
    assert "schedule.0.cron" in err
    err = cli.fails(*create("--command", COMMAND, "--step", "cpu_percent>80=0"), code=1)
    assert "change must not be 0" in err
    assert ok(api.get(SG))["items"] == []


def test_delete_says_whether_it_drains_or_went(api: Api, cli: Cli) -> None:
    topology(api, "web", "api")
    cli.run(*create("--command", COMMAND))
    cli.run(*create("--command", COMMAND, "--min", "0", group="api", lb="api"))
    # what a controller would have started (none runs here)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(ScalingInstanceRow(
            project_id="default", id="web-1", group_id="web", state="serving",
            host="127.0.0.1", port=9001, cpu_percent=12.5,
        ))  # fmt: skip
    table = cli.run("scale", "group", "instances", "web").stdout
    assert "web-1" in table and "127.0.0.1:9001" in table and "12.5" in table
    out = cli.run("scale", "group", "delete", "web").stdout
    assert "web is deleting: it drains and removes its 1 instance(s)" in out
    shown = cli.json("scale", "group", "show", "web")
    assert (shown["status"], shown["desired"]) == ("deleting", 0)
    assert "deleted scaling group api" in cli.run("scale", "group", "delete", "api").stdout
    assert cli.json("scale", "group", "list")["items"][0]["id"] == "web"
    assert "api" in cli.fails("scale", "group", "show", "api", code=1)


@pytest.fixture
def scaling(api: Api) -> Iterator[ScalingService]:
    from edgeplane.sdk import embedded

    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
    yield ScalingService(client=client)
    app = embedded._apps.pop(api.db.url, None)
    if app is not None:
        app.state.db.dispose()


def test_the_sdk_creates_scales_reads_and_deletes(api: Api, scaling: ScalingService) -> None:
    import edgeplane

    assert edgeplane.ScalingService is ScalingService and "ScalingService" in edgeplane.__all__
    topology(api)

    async def scenario() -> None:
        try:
            group = await scaling.create_group(
                "web",
                "dc1",
                LocalTemplate(command=COMMAND),
                group_id="web",
                max_size=5,
                policies=[
                    TargetTracking(metric="cpu_percent", target=60),
                    StepPolicy(metric="requests_per_second", steps=[{"above": 500, "change": 2}]),
                ],
                schedule=[ScheduledFloor(cron="0 9 * * *", duration_minutes=60, min_size=2)],
            )
            assert (group.id, group.driver, group.desired, group.max_size) == ("web", "local", 1, 5)
            assert isinstance(group.policies[1], StepPolicy)
            assert group.policies[1].steps[0].above == 500
            assert group.schedule[0].min_size == 2
            got = await scaling.get_group("web")
            assert got.policies == group.policies and got.last_action is not None
            assert [g.id for g in (await scaling.list_groups()).items] == ["web"]

            scaled = await scaling.set_desired("web", 3)
            assert scaled.desired == 3 and scaled.last_action is not None
            assert scaled.last_action.trigger.startswith("desired set to 3")
            page = await scaling.actions("web", limit=1)
            assert [(a.from_size, a.to_size) for a in page.items] == [(1, 3)] and page.next_cursor
            assert [a.kind for a in (await scaling.actions("web")).items] == ["scale_out"] * 2
            changed = await scaling.update_group("web", cooldown_s=5, min_size=2)
            assert (changed.cooldown_s, changed.min_size, changed.desired) == (5, 2, 3)
            assert await scaling.instances("web") == []
            assert await scaling.instances("web", ended=True) == []
            with pytest.raises(Conflict, match="not stopped"):
                await scaling.resume("web")
            assert await scaling.delete_group("web") is None  # no instance: gone at once
            assert (await scaling.list_groups()).items == []
        finally:
            await scaling.client.aclose()

    asyncio.run(scenario())
