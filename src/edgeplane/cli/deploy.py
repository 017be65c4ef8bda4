"""``edgeplane deploy DIR``: a static site to the edge; ``edgeplane deployment``: its versions.

``deploy`` packs a directory here (or takes an archive, or the id of an uploaded bundle),
uploads it, deploys it and follows the rollout region by region: one canary node first, then
every node of the chosen regions. Exit codes as everywhere (``edgeplane.cli.runtime``), and 1
when the version failed, was cancelled or was still rolling out at ``--timeout``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc
from edgeplane.errors import EdgeplaneError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from edgeplane.sdk.client import Client
    from edgeplane.sdk.edge_service import Archive

app = typer.Typer(
    help="Edge deployments: versions of the project's static site, rollback, locations.",
    no_args_is_help=True,
)

EDGE = f"{rt.BASE}/edge"
STRATEGIES = ("all", "closest", "cheapest")
POLL_S = 0.2
DONE = ("active",)
ENDED = ("failed", "cancelled", "superseded")

DEPLOYMENT_COLUMNS: list[Column] = [
    ("VERSION", "version"),
    ("ID", "id"),
    ("STATUS", "status"),
    ("BUNDLE", lambda d: d["bundle"][:12]),
    ("REGIONS", "regions"),
    ("STRATEGY", "strategy"),
    ("COST/MONTH", lambda d: _cost(d["cost_per_month"])),
    ("CREATED", "created_at"),
    ("ERROR", "error"),
]
PROGRESS_COLUMNS: list[Column] = [
    ("LOCATION", output.place("region")),
    ("STATE", "state"),
    ("NODES", "nodes"),
    ("ACTIVE", "active"),
    ("FAILED", "failed"),
    ("PENDING", "pending"),
]
LOCATION_COLUMNS: list[Column] = [
    ("LOCATION", output.place("region")),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("NODES", lambda r: f"{sum(1 for n in r['nodes'] if n['live'])}/{len(r['nodes'])} live"),
    ("LOAD req/min", "load"),
    ("REVISIONS", "revisions"),
    ("DEPLOYMENTS", "deployments"),
]
METRIC_COLUMNS: list[Column] = [
    ("LOCATION", output.place("region")),
    ("REQUESTS", "requests"),
    ("BYTES OUT", "bytes_out"),
    ("HIT RATIO", lambda r: "-" if r["hit_ratio"] is None else f"{r['hit_ratio'] * 100:.1f}%"),
    ("STATIC", "static"),
    ("4XX", "errors_4xx"),
    ("5XX", "errors_5xx"),
    ("P50 ms", "p50_ms"),
    ("P95 ms", "p95_ms"),
    ("COUNTRIES", "countries"),
]
BUNDLE_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("FILES", "files"),
    ("SIZE", lambda b: _size(b["size"])),
    ("SOURCE", lambda b: _size(b["source_bytes"])),
    ("COMPRESSED", "compressed_files"),
    ("CREATED", "created_at"),
    ("BY", "created_by"),
]

DeploymentId = Annotated[str, typer.Argument(metavar="ID", help="a deployment (version) id")]
Wait = Annotated[
    bool, typer.Option("--wait", help="follow the rollout until the version is active")
]
Timeout = Annotated[float, typer.Option("--timeout", help="seconds to follow the rollout at most")]


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def _path(deployment_id: str, *rest: str) -> str:
    return "/".join([f"{EDGE}/deployments/{quote(deployment_id, safe='')}", *rest])


def _split(values: list[str] | None) -> list[str] | None:
    """Repeatable and comma-separated: ``--regions a,b --regions c``."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


# Rendering --------------------------------------------------------------------------------


def render_deployment(doc: Doc) -> None:
    output.details(
        {
            "id": doc["id"],
            "version": doc["version"],
            "status": doc["status"],
            "bundle": doc["bundle"],
            "strategy": doc["strategy"],
            "regions": doc["regions"],
            "cost per month": _cost(doc.get("cost_per_month")),
            "spa": doc["options"]["spa"],
            "origin paths": doc["options"]["origin_paths"],
            "check path": doc["options"]["check_path"],
            "canary node": doc.get("canary_node"),
            "reactivates": doc.get("reactivates"),
            "error": doc.get("error"),
            "activated": doc.get("activated_at"),
            "finished": doc.get("finished_at"),
            "created_at": doc["created_at"],
        }
    )
    if doc.get("progress"):
        output.blank()
        output.table(doc["progress"], PROGRESS_COLUMNS, title="regions")


def _summary(doc: Doc) -> str:
    shown = {p["region"]: output.place("region")(p) for p in doc.get("progress") or ()}
    regions = ", ".join(shown.get(r, r) for r in doc["regions"]) or "no region"
    nodes = sum(p["nodes"] for p in doc.get("progress") or ())
    served = f" on {nodes} node{'s' if nodes != 1 else ''}" if nodes else ""
    return (
        f"version {doc['version']} {doc['status']} in {regions}{served} "
        f"({doc['id']}, bundle {doc['bundle'][:12]}, {_cost(doc.get('cost_per_month'))} "
        "per month)"
    )


def render_deployed(doc: Doc) -> None:
    deployment = doc["deployment"]
    output.line(_summary(deployment), "green" if deployment["status"] == "active" else None)
    if deployment["status"] == "canary" and deployment.get("canary_node"):
        output.note(f"canary node {deployment['canary_node']}; then the rest of the regions")


# Following a rollout ----------------------------------------------------------------------


class RegionBars:
    """One progress bar per region (its live nodes, those serving the version), on stderr."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress: Progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}", markup=False),
            console=output.stderr,
            disable=not enabled,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.status: str | None = None

    def __enter__(self) -> RegionBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, doc: Doc) -> None:
        if doc["status"] != self.status:
            self.status = doc["status"]
            where = f" (canary {doc['canary_node']})" if doc["status"] == "canary" else ""
            self.progress.console.print(
                f"version {doc['version']}: {doc['status']}{where}", markup=False
            )
        label = output.place("region")
        width = max((len(label(p)) for p in doc.get("progress") or ()), default=0)
        for p in doc.get("progress") or ():
            state = p["state"] + (f", {p['failed']} failed" if p["failed"] else "")
            task = self.tasks.get(p["region"])
            if task is None:
                task = self.progress.add_task(label(p).ljust(width), total=p["nodes"], state=state)
                self.tasks[p["region"]] = task
            self.progress.update(task, total=p["nodes"], completed=p["active"], state=state)


async def follow(c: Client, doc: Doc, timeout: float, *, show: bool) -> tuple[Doc, bool]:
    """Poll a version until it is active, ended or ``timeout``: (its last state, timed out)."""
    deadline = time.monotonic() + timeout
    with RegionBars(show) as bars:
        while True:
            bars.update(doc)
            if doc["status"] in DONE or doc["status"] in ENDED:
                return doc, False
            if time.monotonic() >= deadline:
                return doc, True
            await asyncio.sleep(POLL_S)
            doc = await c.request("GET", _path(doc["id"]))


def finish(doc: Doc, timed_out: bool, timeout: float, as_json: bool, quiet: bool = False) -> None:
    """The answer of a command that waited: the summary, or the failure and exit code 1."""
    deployment = doc["deployment"]
    rt.emit(doc, as_json, render_deployed, quiet=quiet, key="deployment.id")
    status = deployment["status"]
    if status == "active" or (status == "superseded" and deployment.get("activated_at")):
        return
    if timed_out:
        rt.fail(
            f"version {deployment['version']} is still {status} after {timeout:g}s; it goes "
            f"on: follow it with `edgeplane deployment show {deployment['id']}`",
            1,
        )
    rt.fail(
        f"version {deployment['version']} {status}: {deployment.get('error') or 'no reason given'}",
        1,
    )


def _act(
    ctx: typer.Context,
    method: str,
    path: str,
    body: Any,
    *,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """A request that answers ``Deployed`` (a new version), followed with ``wait``."""

    async def run(c: Client) -> tuple[Doc, bool]:
        doc = await c.request(method, path, json=body)
        if not wait:
            return doc, False
        last, timed_out = await follow(c, doc["deployment"], timeout, show=not as_json)
        return {**doc, "deployment": last}, timed_out

    doc, timed_out = rt.call(ctx, run)
    if wait:
        finish(doc, timed_out, timeout, as_json)
    else:
        rt.emit(doc, as_json, render_deployed)


# edgeplane deploy -------------------------------------------------------------------------


@contextmanager
def _archive(source: Path, show: bool) -> Iterator[Archive]:
    """The archive to upload (a directory packed into a temporary one); bad input exits 2."""
    from edgeplane.sdk.edge_service import archive_of
    from edgeplane.settings import Settings

    try:
        limits = Settings.from_env().bundle_limits
    except ValueError as exc:
        rt.fail(str(exc), 2)
    work = Path(tempfile.mkdtemp(prefix="edgeplane-deploy-"))
    try:
        try:
            if source.is_dir() and show:
                with output.stderr.status(f"packing {source}", spinner="dots"):
                    archive = archive_of(source, work, limits)
            else:
                archive = archive_of(source, work, limits)
        except EdgeplaneError as exc:
            rt.fail(exc.message, 2)
        if archive.packed is not None and show:
            output.note(
                f"packed {archive.packed.files} files ({_size(archive.packed.bytes)}) "
                f"into {_size(archive.size)}"
            )
        yield archive
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _upload(c: Client, archive: Archive, show: bool) -> Doc:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TransferSpeedColumn,
    )

    from edgeplane.sdk.edge_service import EdgeDeploymentService

    service = EdgeDeploymentService(client=c)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=output.stderr,
        transient=True,
        disable=not show or not output.stderr.is_terminal,  # a log gets the notes only
    ) as bars:
        task = bars.add_task("uploading", total=archive.size)

        def sent(done: int, total: int) -> None:
            text = "checking the bundle" if done >= total else "uploading"
            bars.update(task, completed=done, description=text)

        bundle, created = await service.upload_archive(archive, on_progress=sent)
    doc = bundle.model_dump(mode="json")
    if show:
        how = "uploaded" if created else "already uploaded:"
        output.note(
            f"bundle {bundle.id[:12]} {how} {bundle.files} files, "
            f"{bundle.compressed_files} precompressed"
        )
    return {"bundle": doc, "created": created}


def deploy(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            metavar="DIR_OR_ARCHIVE",
            help="the site's directory, a tar / tar.gz / zip archive, or an uploaded bundle id",
            show_default=False,
        ),
    ],
    regions: Annotated[
        list[str] | None,
        typer.Option(
            "--regions",
            "--region",
            help="candidate locations (eu-central,us-east); a region code (eu) or type (europe) "
            "stands for its locations with a live node",
        ),
    ] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="all, closest or cheapest")] = "all",
    location: Annotated[
        list[str] | None,
        typer.Option(
            "--location",
            help="where users are (closest / cheapest): DE, US@3, 'LAT,LON' or 'LAT,LON@WEIGHT'; "
            "repeatable (default: the project's traffic)",
        ),
    ] = None,
    latency_target: Annotated[
        float | None, typer.Option("--latency-target", help="ms (cheapest)")
    ] = None,
    max_regions: Annotated[
        int | None, typer.Option("--max-regions", help="at most this many regions")
    ] = None,
    spa: Annotated[
        bool | None,
        typer.Option("--spa/--no-spa", help="single-page app: unknown paths get /index.html"),
    ] = None,
    origin_path: Annotated[
        list[str] | None,
        typer.Option("--origin-path", help="a path prefix sent to the origin (/api/); repeatable"),
    ] = None,
    check_path: Annotated[
        str | None, typer.Option("--check-path", help="a path each node checks (/healthz)")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="return once the version is created")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="seconds to follow the rollout at most")
    ] = 300.0,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="print only the new version's id (no progress; still waits)"
        ),
    ] = False,
    as_json: o.Json = False,
) -> None:
    """Deploy a static site to the edge: pack, upload, then roll out (a canary node first)."""
    from edgeplane.sdk.edge_service import is_bundle_id

    if strategy not in STRATEGIES:
        rt.fail(f"--strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}", 2)
    if timeout <= 0:
        rt.fail("--timeout: must be a positive number of seconds", 2)
    show = not (as_json or quiet)
    body = rt.compact(
        regions=_split(regions),
        strategy=strategy,
        locations=list(location) if location else None,
        latency_target_ms=latency_target,
        max_regions=max_regions,
        spa=spa,
        origin_paths=list(origin_path) if origin_path else None,
        check_path=check_path,
    )

    async def run(c: Client, archive: Archive | None) -> tuple[Doc, bool]:
        uploaded: Doc = {}
        if archive is not None:
            uploaded = await _upload(c, archive, show)
            body["bundle"] = uploaded["bundle"]["id"]
        else:
            body["bundle"] = source
        doc = await c.request("POST", f"{EDGE}/deploy", json=body)
        doc = {**uploaded, **doc}
        if no_wait:
            return doc, False
        last, timed_out = await follow(c, doc["deployment"], timeout, show=show)
        return {**doc, "deployment": last}, timed_out

    if is_bundle_id(source):
        doc, timed_out = rt.call(ctx, lambda c: run(c, None))
    else:
        with _archive(Path(source), show) as archive:
            doc, timed_out = rt.call(ctx, lambda c: run(c, archive))
    if no_wait:
        rt.emit(doc, as_json, render_deployed, quiet=quiet, key="deployment.id")
        return
    finish(doc, timed_out, timeout, as_json, quiet=quiet)


# edgeplane deployment ---------------------------------------------------------------------


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option("--limit", help="at most (1-1000)")] = None,
    as_json: o.Json = False,
) -> None:
    """The project's versions, newest first."""
    rt.listing(ctx, as_json, f"{EDGE}/deployments", DEPLOYMENT_COLUMNS, title="deployments",
               params=rt.compact(limit=limit))  # fmt: skip


@app.command("show")
def show(ctx: typer.Context, deployment_id: DeploymentId, as_json: o.Json = False) -> None:
    """One version and its progress per region."""
    rt.request(ctx, as_json, "GET", _path(deployment_id), render=render_deployment)


@app.command("current")
def current(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The version being rolled out, else the active one."""
    rt.request(ctx, as_json, "GET", f"{EDGE}/deployments/current", render=render_deployment)


@app.command("rollback")
def rollback(
    ctx: typer.Context, wait: Wait = False, timeout: Timeout = 120.0, as_json: o.Json = False
) -> None:
    """Reactivate the version that was active before the current one (a new version)."""
    _act(ctx, "POST", f"{EDGE}/rollback", None, wait=wait, timeout=timeout, as_json=as_json)


@app.command("activate")
def activate(
    ctx: typer.Context,
    deployment_id: DeploymentId,
    wait: Wait = False,
    timeout: Timeout = 120.0,
    as_json: o.Json = False,
) -> None:
    """Make an earlier version current again, on every node at once (a new version)."""
    _act(ctx, "POST", _path(deployment_id, "activate"), None, wait=wait, timeout=timeout,
         as_json=as_json)  # fmt: skip


@app.command("update")
def update(
    ctx: typer.Context,
    deployment_id: DeploymentId,
    spa: Annotated[bool | None, typer.Option("--spa/--no-spa", help="single-page app")] = None,
    origin_path: Annotated[
        list[str] | None,
        typer.Option("--origin-path", help="path prefixes sent to the origin (replace them)"),
    ] = None,
    no_origin_paths: Annotated[
        bool, typer.Option("--no-origin-paths", help="send no path to the origin")
    ] = False,
    check_path: Annotated[
        str | None, typer.Option("--check-path", help="a path each node checks")
    ] = None,
    regions: Annotated[
        list[str] | None, typer.Option("--regions", "--region", help="the regions, a,b")
    ] = None,
    wait: Wait = False,
    timeout: Timeout = 120.0,
    as_json: o.Json = False,
) -> None:
    """A new version of a deployment with other serving options or regions."""
    if origin_path and no_origin_paths:
        rt.fail("give --origin-path or --no-origin-paths, not both", 2)
    body = rt.compact(
        spa=spa,
        origin_paths=[] if no_origin_paths else (list(origin_path) if origin_path else None),
        check_path=check_path,
        regions=_split(regions),
    )
    if not body:
        rt.fail("nothing to change: give at least one option (see --help)", 2)
    _act(ctx, "PATCH", _path(deployment_id), body, wait=wait, timeout=timeout,
         as_json=as_json)  # fmt: skip


def render_metrics(doc: Doc) -> None:
    output.line(f"{doc['deployment_id']}: {output.fmt(doc['start'])} .. {output.fmt(doc['end'])}")
    output.table(doc["regions"], METRIC_COLUMNS, title="regions")


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    deployment_id: DeploymentId,
    region: Annotated[str | None, typer.Option("--region", help="this region only")] = None,
    start: Annotated[str | None, typer.Option("--start", help="ISO 8601 with a zone")] = None,
    end: Annotated[str | None, typer.Option("--end", help="ISO 8601 with a zone")] = None,
    as_json: o.Json = False,
) -> None:
    """Requests, bytes, hit ratio, errors and p50 / p95 per region while the version served."""
    params = rt.compact(region=region, start=start, end=end)
    rt.request(ctx, as_json, "GET", _path(deployment_id, "metrics"), params=params,
               render=render_metrics)  # fmt: skip


def locations(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The edge locations: regions with nodes, their status, load and the versions served."""
    rt.listing(ctx, as_json, f"{EDGE}/locations", LOCATION_COLUMNS, title="edge locations")


app.command("locations")(locations)


@app.command("bundles")
def bundles(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The project's uploaded bundles, newest first."""
    rt.listing(ctx, as_json, f"{EDGE}/bundles", BUNDLE_COLUMNS, title="bundles")
