"""``edgeplane dr ...`` and ``GlobalOperations``' DR methods, embedded on the test database:
modes and objectives on create, status, failover and failback (with their refusals), the
timeline, and a drill followed to its report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from api.test_dr_live import topology
from conftest import Api, Cli
from edgeplane.errors import Conflict
from edgeplane.sdk.client import Client
from edgeplane.sdk.global_operations import GlobalOperations
from edgeplane.settings import Settings

# The CLI and the SDK over the API: the database under it is tests/api/test_dr_live.py's
# concern (both there).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

def test_the_cli_creates_shows_moves_and_drills(api: Api, cli: Cli) -> None:
    topology(api)
    doc = cli.json(
        "dr",
        "create",
        "--id",
        "dr-2",
        "--name",
        "two",
        "--primary",
        "dc-b",
        "--backup",
        "dc-a",
        "--rpo",
        "0.5",
        "--rto",
        "0.05",
        "--failover-mode",
        "confirmed",
        "--no-drills",
    )
    assert (doc["rto"], doc["failover_mode"], doc["drill_every_days"]) == (0.05, "confirmed", None)
    doc = cli.json("dr", "update", "dr-2", "--drill-every", "7", "--failback-mode", "confirmed")
    assert (doc["drill_every_days"], doc["failback_mode"]) == (7, "confirmed")
    err = cli.fails("dr", "update", "dr-2", "--failover-mode", "often", code=1)
    assert "failover_mode" in err
    listed = cli.run("dr", "list").stdout
    assert "FAILOVER" in listed and "confirmed" in listed and "7 d" in listed

    shown = cli.run("dr", "status", "dr-web").stdout
    assert "dr-web: normal, traffic on the primary" in shown and "not observed yet" in shown
    assert cli.json("dr", "status", "dr-web")["active_dc"] == "dc-a"
    err = cli.fails("dr", "failover", "dr-web", "--reason", "test", code=1)
    assert "confirm with --yes" in err
    moved = cli.run("dr", "failover", "dr-web", "--reason", "dc-a maintenance", "--yes").stdout
    assert "dr-web: failed_over, traffic on the backup" in moved and "forced" in moved
    err = cli.fails("dr", "failover", "dr-web", "--reason", "again", "--yes", code=1)
    assert "on the backup data center already" in err
    back = cli.json("dr", "failback", "dr-web")
    assert (back["status"], back["active"]) == ("normal", "primary")
    events = cli.json("dr", "events", "dr-web")["items"]
    assert [e["kind"] for e in events] == ["failback", "forced", "switched", "forced"]
    assert events[1]["message"].endswith(": failback from the command line")
    assert "dc-a maintenance" in cli.run("dr", "events", "dr-web").stdout

    # A drill with no live edge node cannot see traffic served: it fails (exit 1) after its
    # seven steps, the primary restored, and says why.
    result = cli.run("dr", "drill", "dr-web", code=1)
    assert "drill drill-" in result.stderr and "recovery_initiation: ok" in result.stderr
    out = result.stdout
    for step in ("alert_assessment", "impact_analysis", "service_restoration", "documentation"):
        assert step in out
    assert "no live edge node" in out and "RTO" in out and "FAIL" in out
    drills = cli.json("dr", "drills", "dr-web")["items"]
    assert len(drills) == 1 and drills[0]["status"] == "failed"
    report = cli.run("dr", "drills", "dr-web", drills[0]["id"]).stdout
    assert "MEASURED s" in report and "TARGET s" in report
    assert cli.json("dr", "status", "dr-web")["status"] == "normal"
    err = cli.fails("dr", "drill", "nope", code=1)
    assert "nope" in err


@pytest.fixture
def ops(api: Api) -> Iterator[GlobalOperations]:
    from edgeplane.sdk import embedded

    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
    yield GlobalOperations(client=client)
    app = embedded._apps.pop(api.db.url, None)
    if app is not None:
        app.state.db.dispose()


def test_the_sdk_reads_moves_and_drills(api: Api, ops: GlobalOperations) -> None:
    topology(api, failback_mode="confirmed")

    async def scenario() -> None:
        try:
            status = await ops.dr_status("dr-web")
            assert (status.status, status.failback_mode) == ("normal", "confirmed")
            status = await ops.failover("dr-web", "planned switch")
            assert (status.status, status.active, status.manual) == ("failed_over", "backup", True)
            with pytest.raises(Conflict, match="backup data center already"):
                await ops.failover("dr-web", "again")
            status = await ops.failback("dr-web", "done")
            assert status.active == "primary"
            page = await ops.dr_events("dr-web", limit=2)
            assert [e.kind for e in page.items] == ["failback", "forced"] and page.next_cursor
            drill = await ops.run_drill("dr-web", wait=True)
            assert drill.status == "failed" and len(drill.steps) == 7
            assert drill.steps[3].step == "recovery_initiation" and drill.steps[3].ok
            assert (await ops.get_drill("dr-web", drill.id)).id == drill.id
            assert [d.id for d in (await ops.list_drills("dr-web")).items] == [drill.id]
            cfg = await ops.create_dr_config("three", "dc-b", "dc-a", rpo=0.1, rto=0.25)
            assert (cfg.rpo, cfg.rto, cfg.failover_mode) == (0.1, 0.25, "automatic")
        finally:
            await ops.client.aclose()

    asyncio.run(scenario())
