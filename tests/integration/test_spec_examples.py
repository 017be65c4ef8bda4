"""The usage guides of specs 000 and 001 run as written, embedded and against `edgeplane up`."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import ControlPlane, clean_env, start_up

from edgeplane.sdk.client import Client
from edgeplane.sdk.global_operations import GlobalOperations
from edgeplane.sdk.infrastructure_manager import InfrastructureManager
from edgeplane.settings import Settings

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(params=["embedded", "remote"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment the example runs in: a local home, or a running control plane."""
    home = tmp_path / "home"
    if request.param == "embedded":
        yield clean_env(EDGEPLANE_HOME=str(home))
        return
    cp: ControlPlane = start_up(home)
    try:
        yield clean_env(
            EDGEPLANE_URL=cp.url, EDGEPLANE_TOKEN=cp.token, EDGEPLANE_HOME=str(tmp_path / "unused")
        )
    finally:
        assert cp.stop() == 0, cp.output()


def _client(env: dict[str, str]) -> Client:
    settings = Settings(
        home=Path(env["EDGEPLANE_HOME"]),
        url=env.get("EDGEPLANE_URL"),
        token=env.get("EDGEPLANE_TOKEN"),
    )
    return Client(settings)


def _run(example: str, env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout.splitlines()


def test_infrastructure_manager_guide(target: dict[str, str]) -> None:
    manager = InfrastructureManager(client=_client(target))

    async def prepare() -> None:
        await manager.create_server(
            id="server-123",
            name="US East Edge",
            type="edge",
            region="americas",
            location="us-east",
            capacity={"cpu": 16, "memory": 64, "storage": 500},
        )
        await manager.client.aclose()

    asyncio.run(prepare())
    lines = _run("spec_000_infrastructure_manager.py", target)
    assert len(lines) == 3, lines
    assert re.fullmatch(r"Server created: srv-[0-9a-f]{12}", lines[0])
    assert re.fullmatch(r"Service created: svc-[0-9a-f]{12}", lines[1])
    # server-123 is the only server offering the cdn service; 1.2.3.4 is in the US.
    assert lines[2] == "Routed to server: server-123"

    async def check() -> None:
        server_id = lines[0].split(": ")[1]
        created = await manager.get_server(server_id)
        assert (created.name, created.type.value, created.location) == (
            "US East Primary",
            "primary",
            "us-east",
        )
        assert created.capacity.cpu == 80.0
        services = await manager.list_services(server_id="server-123")
        assert [s.settings["caching"] for s in services.items] == ["aggressive"]
        await manager.client.aclose()

    asyncio.run(check())


def test_global_operations_guide(target: dict[str, str]) -> None:
    client = _client(target)
    manager = InfrastructureManager(client=client)
    ops = GlobalOperations(client=client)

    async def prepare() -> None:
        for endpoint in ("endpoint1", "endpoint2"):
            await manager.create_server(
                id=endpoint,
                name=endpoint,
                type="primary",
                region="americas",
                location="us-east",
                capacity={"cpu": 8, "memory": 32, "storage": 200},
            )
        for dc_id, location in (("dc-na-1", "us-east"), ("dc-na-2", "us-west")):
            await ops.create_data_center(
                id=dc_id,
                name=dc_id,
                region="na",
                location=location,
                tier=3,
                capacity={"cpu": 500, "memory": 2000, "storage": 5000},
            )
        await client.aclose()

    asyncio.run(prepare())
    lines = _run("spec_001_global_operations.py", target)
    assert len(lines) == 3, lines
    assert re.fullmatch(r"Data center created: dc-[0-9a-f]{12}", lines[0])
    assert re.fullmatch(r"Load balancer created: lb-[0-9a-f]{12}", lines[1])
    assert re.fullmatch(r"DR config created: dr-[0-9a-f]{12}", lines[2])

    async def check() -> None:
        lb = await ops.get_load_balancer(lines[1].split(": ")[1])
        assert (lb.name, lb.algorithm.value, lb.endpoints) == (
            "NA Load Balancer",
            "round_robin",
            ["endpoint1", "endpoint2"],
        )
        dr = await ops.get_dr_config(lines[2].split(": ")[1])
        assert (dr.primary_dc, dr.backup_dc, dr.rpo, dr.rto) == ("dc-na-1", "dc-na-2", 15, 60)
        dc = await ops.get_data_center(lines[0].split(": ")[1])
        assert (dc.tier.value, dc.region.value, dc.capacity.memory) == (3, "na", 4000)
        await client.aclose()

    asyncio.run(check())
