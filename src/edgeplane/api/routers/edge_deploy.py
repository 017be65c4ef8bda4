"""Edge deployments: bundles, deploys, versions, rollback, locations and regional metrics."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from edgeplane.api.deps import Ctx
from edgeplane.api.problems import refuses
from edgeplane.bundles import limits as bundle_limits
from edgeplane.errors import InvalidInput, PayloadTooLarge
from edgeplane.model.common import DateTime, Output
from edgeplane.model.edge_deployments import (
    Bundle,
    ConfigUpdate,
    Deployed,
    DeployRequest,
    EdgeDeployment,
    EdgeLocation,
    EdgeMetrics,
)
from edgeplane.model.enums import Role
from edgeplane.services import bundles, edge_deployments

router = APIRouter(prefix="/api/v1/infrastructure/edge", tags=["edge deployments"])


class BundleUploaded(Output):
    bundle: Bundle
    created: bool


SHM = Path("/dev/shm")


def _work_root(ctx: Ctx, limits: bundle_limits.BundleLimits) -> Path:
    """Where an upload is unpacked and built: memory (``/dev/shm``) when it has room for the
    largest bundle three times over (the upload, its files, the node archive), else the
    control plane's home. Thousands of small files are written and read back there."""
    try:
        if SHM.is_dir() and shutil.disk_usage(SHM).free > 3 * limits.max_total_bytes:
            return SHM
    except OSError:
        pass
    home = ctx.settings.home
    home.mkdir(parents=True, exist_ok=True)
    return home


async def _receive(request: Request, into: Path, limit: int) -> None:
    size = 0
    with into.open("wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"bundle: the upload is larger than the limit of {limit >> 20} MiB",
                    field="bundle",
                )
            f.write(chunk)
    if size == 0:
        raise InvalidInput.at("bundle", "the upload is empty: send a tar, tar.gz or zip archive")


@router.post(
    "/bundles",
    response_model=BundleUploaded,
    status_code=201,
    responses={
        200: {"model": BundleUploaded, "description": "the same content was uploaded"},
        413: {"description": "the upload is larger than EDGEPLANE_BUNDLE_MAX_BYTES"},
    },
    summary="Upload a bundle (the request body: a tar, tar.gz or zip archive)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "a tar, tar.gz or zip archive of the site's files",
            "content": {
                media: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                for media in (
                    "application/x-tar",
                    "application/gzip",
                    "application/zip",
                    "application/octet-stream",
                )
            },
        }
    },
)
async def upload_bundle(ctx: Ctx, request: Request, response: Response) -> BundleUploaded:
    """Validate the archive (sizes, paths, links), precompress it (gzip, brotli) and store it
    content-addressed: the bundle's id is the sha256 of the archive edge nodes fetch.

    The answer's ``Server-Timing`` header says what each step took, in ms: ``receive``,
    ``extract``, ``earlier`` (the project's previous archive, whose variants of unchanged files
    are reused), ``build``, ``store`` (the database), ``keep`` (the archive kept for the next
    build and for the nodes' downloads)."""
    ctx.actor.require(ctx.project, Role.EDITOR)
    limits = ctx.settings.bundle_limits
    work = Path(tempfile.mkdtemp(prefix="edgeplane-bundle-", dir=_work_root(ctx, limits)))
    try:
        upload = work / "upload"
        started = time.perf_counter()
        # The archive holds the files plus headers and maybe compression: allow some slack.
        await _receive(request, upload, limits.max_total_bytes + (64 << 20))
        received = time.perf_counter()
        kept = bundles.kept_dir(ctx.settings.home, ctx.project)
        built = await run_in_threadpool(bundles.build_upload, upload, work / "build", limits, kept)

        def save() -> tuple[Bundle, bool]:
            with ctx.write() as tx:
                return bundles.save(tx, built)

        saving = time.perf_counter()
        try:
            bundle, created = await run_in_threadpool(save)
        except BaseException:
            await run_in_threadpool(bundles.discard, built)
            raise
        stored = time.perf_counter()
        await run_in_threadpool(bundles.keep, built, kept)
        timings = {
            "receive": (received - started) * 1000,
            **built.timings,
            "store": (stored - saving) * 1000,
            "keep": (time.perf_counter() - stored) * 1000,
        }
    finally:
        await run_in_threadpool(shutil.rmtree, work, True)
    response.status_code = 201 if created else 200
    response.headers["Server-Timing"] = ", ".join(f"{k};dur={v:.1f}" for k, v in timings.items())
    return BundleUploaded(bundle=bundle, created=created)


@router.get("/bundles", response_model=list[Bundle])
def list_bundles(ctx: Ctx) -> list[Bundle]:
    with ctx.read() as tx:
        return bundles.list_bundles(tx)


@router.get("/bundles/{bundle_id}", response_model=Bundle)
def get_bundle(ctx: Ctx, bundle_id: str) -> Bundle:
    with ctx.read() as tx:
        return bundles.get(tx, bundle_id)


@router.get(
    "/bundles/{bundle_id}/archive",
    response_class=StreamingResponse,
    summary="Download a bundle's archive (the node archive; its sha256 is the bundle's id)",
    responses={
        200: {
            "description": "the archive the edge nodes fetch: manifest.json, then the files "
            "under files/ with their .gz and .br variants",
            "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
        },
        404: {"description": "the project has no such bundle"},
    },
)
def download_bundle(ctx: Ctx, bundle_id: str) -> StreamingResponse:
    """The archive of a bundle the project uploaded, streamed from where the control plane
    keeps it (the archive it kept after the build, else the database's slices)."""
    with ctx.read() as tx:
        bundle = bundles.get(tx, bundle_id)
        kept = bundles.kept_archive(tx, ctx.settings.home, bundle_id)
    return StreamingResponse(
        bundles.chunks(ctx.db, bundle_id) if kept is None else bundles.file_chunks(kept),
        media_type="application/x-tar",
        headers={
            "Content-Length": str(bundle.size),
            "ETag": f'"{bundle_id}"',
            "Content-Disposition": f'attachment; filename="{bundle_id}.tar"',
        },
    )


@router.post("/deploy", response_model=Deployed, status_code=202, summary="Deploy to edge")
def deploy(ctx: Ctx, body: DeployRequest) -> Deployed:
    """A new version in the regions the strategy chooses: rolled out to one node first, checked,
    then to the rest of the regions; follow it at ``GET /edge/deployments/{id}``."""
    with ctx.write() as tx:
        deployment = edge_deployments.deploy(tx, body)
    return Deployed(deployment=deployment, regions_deployed=deployment.regions)


@router.get("/deployments", response_model=list[EdgeDeployment], summary="The versions")
def list_deployments(
    ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[EdgeDeployment]:
    with ctx.read() as tx:
        return edge_deployments.list_versions(tx, limit)


@router.get("/deployments/current", response_model=EdgeDeployment)
def current_deployment(ctx: Ctx) -> EdgeDeployment:
    with ctx.read() as tx:
        return edge_deployments.current(tx)


@router.api_route("/deployments/current", methods=["PATCH"], include_in_schema=False)
@refuses
def _current_other_methods() -> None:
    """``current`` names the active version for reading only (PATCH takes a version's id)."""
    raise HTTPException(405)


@router.get("/deployments/{deployment_id}", response_model=EdgeDeployment)
def get_deployment(ctx: Ctx, deployment_id: str) -> EdgeDeployment:
    with ctx.read() as tx:
        return edge_deployments.get(tx, deployment_id)


@router.patch(
    "/deployments/{deployment_id}",
    response_model=Deployed,
    status_code=202,
    summary="A new version with other serving options or regions (update_edge_config)",
)
def update_config(ctx: Ctx, deployment_id: str, body: ConfigUpdate) -> Deployed:
    with ctx.write() as tx:
        deployment = edge_deployments.update_config(tx, deployment_id, body)
    return Deployed(deployment=deployment, regions_deployed=deployment.regions)


@router.post(
    "/deployments/{deployment_id}/activate",
    response_model=Deployed,
    status_code=202,
    summary="Make an earlier version current again, everywhere at once",
)
def activate(ctx: Ctx, deployment_id: str) -> Deployed:
    with ctx.write() as tx:
        deployment = edge_deployments.reactivate(tx, deployment_id)
    return Deployed(deployment=deployment, regions_deployed=deployment.regions)


@router.post(
    "/rollback",
    response_model=Deployed,
    status_code=202,
    summary="Reactivate the version that was active before the current one",
)
def rollback(ctx: Ctx) -> Deployed:
    with ctx.write() as tx:
        deployment = edge_deployments.rollback(tx)
    return Deployed(deployment=deployment, regions_deployed=deployment.regions)


@router.get("/locations", response_model=list[EdgeLocation], summary="The edge locations")
def locations(ctx: Ctx) -> list[EdgeLocation]:
    with ctx.read() as tx:
        return edge_deployments.locations(tx)


@router.get("/deployments/{deployment_id}/metrics", response_model=EdgeMetrics)
def metrics(
    ctx: Ctx,
    deployment_id: str,
    region: str | None = None,
    start: DateTime | None = None,
    end: DateTime | None = None,
) -> EdgeMetrics:
    """Requests, bytes, p50 / p95, errors and hit ratio per region while the version served."""
    with ctx.read() as tx:
        return edge_deployments.metrics(tx, deployment_id, region, start, end)
