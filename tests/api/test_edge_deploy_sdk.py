"""``EdgeDeploymentService`` embedded on the test database: uploads of directories and
archives, deploys that wait for the rollout, and the error paths."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.test_edge_deploy_api import DEPLOY, Node, add_site_domain, nodes, site, tar_of, upload
from conftest import Api
from edgeplane.errors import Conflict, EdgeplaneError, InvalidInput, NotFound
from edgeplane.model.edge_deployments import EdgeDeployment
from edgeplane.sdk.client import Client
from edgeplane.sdk.edge_service import (
    DeploymentFailed,
    DeploymentStrategy,
    DeploymentTimeout,
    EdgeDeploymentService,
)
from edgeplane.settings import Settings

Scenario = Callable[[EdgeDeploymentService], Coroutine[Any, Any, None]]


@pytest.fixture
def service(api: Api) -> Iterator[EdgeDeploymentService]:
    from edgeplane.sdk import embedded

    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
    yield EdgeDeploymentService(client=client)
    app = embedded._apps.pop(api.db.url, None)
    if app is not None:
        app.state.db.dispose()


def run(service: EdgeDeploymentService, scenario: Scenario) -> None:
    async def main() -> None:
        try:
            await scenario(service)
        finally:
            await service.client.aclose()

    asyncio.run(main())


def write_site(root: Path, version: str) -> Path:
    for name, data in site(version).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_the_public_names() -> None:
    import edgeplane

    assert edgeplane.EdgeDeploymentService is EdgeDeploymentService
    assert edgeplane.DeploymentStrategy is DeploymentStrategy
    assert [str(s) for s in DeploymentStrategy] == ["all", "closest", "cheapest"]
    assert "EdgeDeploymentService" in edgeplane.__all__
    assert "DeploymentStrategy" in edgeplane.__all__
    assert issubclass(DeploymentFailed, Conflict) and issubclass(DeploymentTimeout, TimeoutError)


def test_upload_archive_and_directory(
    api: Api, service: EdgeDeploymentService, tmp_path: Path
) -> None:
    archive = tmp_path / "site.tar"
    archive.write_bytes(tar_of(site("v1")))
    root = write_site(tmp_path / "dir", "v1")

    async def scenario(s: EdgeDeploymentService) -> None:
        seen: list[tuple[int, int]] = []
        bundle = await s.upload_bundle(archive, on_progress=lambda d, t: seen.append((d, t)))
        assert bundle.files == 2 and bundle.project_id == "default"
        assert seen and seen[-1] == (archive.stat().st_size, archive.stat().st_size)
        assert (await s.upload_bundle(str(archive))).id == bundle.id
        packed = await s.upload_bundle(root)
        assert packed.files == 2
        assert packed.source_bytes == bundle.source_bytes
        assert {b.id for b in await s.list_bundles()} == {bundle.id, packed.id}
        assert (await s.get_bundle(packed.id)).files == 2

    run(service, scenario)


def test_bundle_errors_name_the_file(
    api: Api, service: EdgeDeploymentService, tmp_path: Path
) -> None:
    root = write_site(tmp_path / "dir", "v1")
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", root / "assets" / "leak")
    not_archive = tmp_path / "notes.txt"
    not_archive.write_text("hello")
    bad_tar = tmp_path / "bad.tar"
    bad_tar.write_bytes(tar_of({"../up": b"x"}))

    async def scenario(s: EdgeDeploymentService) -> None:
        with pytest.raises(InvalidInput) as caught:
            await s.deploy_to_edge("default", bundle=root)
        assert caught.value.field == "bundle" and "leak" in caught.value.message
        with pytest.raises(InvalidInput) as caught:
            await s.upload_bundle(tmp_path / "missing")
        assert "no such file" in caught.value.message
        with pytest.raises(InvalidInput) as caught:
            await s.upload_bundle(not_archive)
        assert "notes.txt" in caught.value.message and "archive" in caught.value.message
        with pytest.raises(InvalidInput) as caught:
            await s.upload_bundle(bad_tar)  # refused by the control plane
        assert caught.value.field == "bundle" and "../up" in caught.value.message
        assert await s.list_bundles() == []

    run(service, scenario)


def test_deploy_errors(api: Api, service: EdgeDeploymentService, tmp_path: Path) -> None:
    nodes(api, ("eu-1", "eu-central"))
    archive = tmp_path / "site.tar"
    archive.write_bytes(tar_of(site("v1")))

    async def scenario(s: EdgeDeploymentService) -> None:
        with pytest.raises(Conflict) as caught:
            await s.deploy_to_edge("default", bundle=archive)
        assert caught.value.field == "domains"
        # The upload happened; the bundle is there for the next try.
        [bundle] = await s.list_bundles()
        add_site_domain(api)
        with pytest.raises(InvalidInput) as bad:
            await s.deploy_to_edge("default", ["xx-nowhere"], bundle=bundle.id)
        assert bad.value.field == "regions[0]"
        with pytest.raises(InvalidInput) as bad:
            await s.deploy_to_edge("default", strategy="fastest", bundle=bundle.id)
        assert bad.value.field == "strategy"
        with pytest.raises(NotFound):
            await s.deploy_to_edge("default", bundle="a" * 64)
        with pytest.raises(NotFound):
            await s.current_deployment()
        with pytest.raises(NotFound):
            await s.get_deployment("dep-nope")
        with pytest.raises(Conflict):
            await s.rollback()

    run(service, scenario)


def test_deploy_and_wait(api: Api, service: EdgeDeploymentService, tmp_path: Path) -> None:
    add_site_domain(api)
    made = nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))
    by_id = {n.id: n for n in made.values()}
    root = write_site(tmp_path / "dir", "v1")

    def activate_all(dep: EdgeDeployment) -> None:
        # What the nodes would do: the canary first, then the others.
        if dep.status == "canary" and dep.canary_node:
            by_id[dep.canary_node].report(dep.model_dump(), "active")
        elif dep.status == "rolling":
            for n in made.values():
                n.report(dep.model_dump(), "active")

    def fail_canary(dep: EdgeDeployment) -> None:
        if dep.status == "canary" and dep.canary_node:
            by_id[dep.canary_node].report(dep.model_dump(), "failed", "GET /healthz: 503")

    async def scenario(s: EdgeDeploymentService) -> None:
        seen: list[str] = []

        def progress(dep: EdgeDeployment) -> None:
            seen.append(dep.status)
            activate_all(dep)

        v1 = await s.deploy_to_edge(
            "default", strategy=DeploymentStrategy.ALL, bundle=root, wait=True, timeout=20,
            on_progress=progress,
        )  # fmt: skip
        assert v1.status == "active" and v1.version == 1
        assert v1.regions == ["eu-central", "us-east"]
        assert seen[0] == "canary" and seen[-1] == "active"
        assert all(p.active == p.nodes == 1 for p in v1.progress)
        assert (await s.current_deployment()).id == v1.id

        write_site(root, "v2")
        with pytest.raises(DeploymentFailed) as failed:
            await s.deploy_to_edge(
                "default", bundle=root, check_path="/healthz", wait=True, timeout=20,
                on_progress=fail_canary,
            )  # fmt: skip
        assert failed.value.deployment.status == "failed"
        assert "503" in failed.value.message and isinstance(failed.value, EdgeplaneError)
        assert (await s.current_deployment()).id == v1.id

        # Nobody activates it: the wait ends, the version goes on.
        v3 = await s.deploy_to_edge("default", ["us-east"])
        assert v3.bundle == v1.bundle and v3.status == "canary"  # the current bundle
        with pytest.raises(DeploymentTimeout) as slow:
            await s.wait_for(v3.id, 0.5)
        assert slow.value.deployment.status == "canary" and "us-east 0/1" in slow.value.message

        changed = await s.update_edge_config(v1.id, {"spa": True})
        assert changed.version == 4 and changed.options.spa and changed.bundle == v1.bundle
        cancelled = await s.get_deployment(v3.id)
        assert cancelled.status == "cancelled"
        with pytest.raises(DeploymentFailed) as gone:
            await s.wait_for(v3.id, 1)
        assert "cancelled" in gone.value.message and "version 4" in gone.value.message

        listed = await s.list_deployments()
        assert [d.version for d in listed] == [4, 3, 2, 1]
        again = await s.activate(v1.id)
        assert again.status == "rolling" and again.reactivates == v1.id

        metrics = await s.get_edge_metrics(v1.id)
        assert [r.region for r in metrics.regions] == ["eu-central", "us-east"]
        assert all(r.requests == 0 for r in metrics.regions)
        one = await s.get_edge_metrics(v1.id, region="eu-central")
        assert [r.region for r in one.regions] == ["eu-central"]

    run(service, scenario)


def test_get_edge_locations(api: Api, service: EdgeDeploymentService) -> None:
    made: dict[str, Node] = {}

    async def scenario(s: EdgeDeploymentService) -> None:
        assert await s.get_edge_locations() == []
        made.update(nodes(api, ("eu-1", "eu-central"), ("ap-1", "ap-northeast")))
        made["ap-1"].beat(healthy=False)
        locations = await s.get_edge_locations()
        assert [(loc.region, loc.status) for loc in locations] == [
            ("ap-northeast", "down"),
            ("eu-central", "up"),
        ]
        assert [n.name for n in locations[1].nodes] == ["eu-1"] and locations[1].nodes[0].live

    run(service, scenario)


def test_a_project_of_its_own(api: Api, tmp_path: Path) -> None:
    from edgeplane.sdk import embedded

    api.post("/api/v1/projects", json={"id": "shop"})
    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
    service = EdgeDeploymentService("shop", client=client)
    assert service.project_id == "shop"
    upload(api, tar_of(site("default project")))

    async def scenario(s: EdgeDeploymentService) -> None:
        archive = tmp_path / "site.tar"
        archive.write_bytes(tar_of(site("shop")))
        bundle = await s.upload_bundle(archive)
        assert bundle.project_id == "shop"
        assert [b.id for b in await s.list_bundles()] == [bundle.id]
        assert len(await s.list_bundles(project_id="default")) == 1

    try:
        run(service, scenario)
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
    assert api.get(f"{DEPLOY}/bundles", params={"project": "shop"}).status_code == 200
