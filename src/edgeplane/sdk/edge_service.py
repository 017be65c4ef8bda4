"""``EdgeDeploymentService``: a project's static site on the edge nodes of chosen regions.

A deploy is a **bundle** (a directory packed here, an archive uploaded as it is, or the id of
one uploaded before) and a **version**: the regions a strategy chooses and how the edge serves
the bundle. A version goes ``canary`` (one node) → ``rolling`` → ``active``, or ``failed`` /
``cancelled``; the version it replaces becomes ``superseded``. ``wait=True`` (or
``wait_for``) follows it until it is active and raises ``DeploymentFailed`` when it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import TypeAdapter

from edgeplane.errors import Conflict, EdgeplaneError, InvalidInput, RemoteError
from edgeplane.model.edge_deployments import (
    Bundle,
    ConfigUpdate,
    Deployed,
    EdgeDeployment,
    EdgeLocation,
    EdgeMetrics,
)
from edgeplane.sdk.client import body_of
from edgeplane.sdk.service import ProjectService

if TYPE_CHECKING:
    from edgeplane.bundles.limits import BundleLimits
    from edgeplane.bundles.pack import PackResult

BASE = "/api/v1/infrastructure/edge"
BUNDLE_ID = re.compile(r"^[0-9a-f]{64}$")
UPLOAD_CHUNK = 1 << 20
UPLOAD_TIMEOUT_S = 600.0  # the control plane checks and precompresses the bundle first
POLL_S = 0.2

# (bytes sent, bytes in all) while a bundle uploads.
UploadProgress = Callable[[int, int], None]
# Every state of a version seen while waiting for it.
DeployProgress = Callable[[EdgeDeployment], None]


class DeploymentStrategy(StrEnum):
    """How ``deploy_to_edge`` chooses among the candidate regions."""

    ALL = "all"  # every candidate region
    CLOSEST = "closest"  # the nearest region of each user location
    CHEAPEST = "cheapest"  # the fewest regions that keep every location within the target


class DeploymentFailed(Conflict):
    """A version ended ``failed`` or ``cancelled`` (the edge went back to the active one);
    ``deployment`` is its last state, ``message`` says why."""

    type_slug = "deployment-failed"
    title = "Edge deployment failed"

    def __init__(self, deployment: EdgeDeployment) -> None:
        reason = deployment.error or f"the version was {deployment.status}"
        super().__init__(
            f"version {deployment.version} {deployment.status}: {reason}", field="deployment"
        )
        self.deployment = deployment


class DeploymentTimeout(EdgeplaneError, TimeoutError):
    """A version was still rolling out when the wait ended (it goes on without us)."""

    status = 504
    type_slug = "deployment-timeout"
    title = "Edge deployment still in progress"

    def __init__(self, deployment: EdgeDeployment, timeout: float) -> None:
        waiting = ", ".join(
            f"{p.region} {p.active}/{p.nodes}" for p in deployment.progress if p.state != "done"
        )
        super().__init__(
            f"version {deployment.version} is still {deployment.status} after {timeout:g}s"
            + (f" (active nodes: {waiting})" if waiting else ""),
            field="deployment",
        )
        self.deployment = deployment


@dataclass(frozen=True)
class Archive:
    """A bundle ready to upload: the archive, and what was packed when it was a directory."""

    path: Path
    size: int
    packed: PackResult | None = None


def _refused(message: str) -> InvalidInput:
    return InvalidInput(message, field="bundle")


def _pack(root: Path, out: Path, limits: BundleLimits) -> PackResult:
    from edgeplane.bundles.errors import BundleError
    from edgeplane.bundles.pack import pack_directory

    try:
        return pack_directory(root, out, limits)
    except BundleError as exc:
        # The file at fault as the user knows it: under the directory they named.
        message = f"{root / exc.path}: {exc.reason}" if exc.path else exc.reason
        raise _refused(message) from None


def _check_archive(path: Path) -> None:
    from edgeplane.bundles.pack import is_archive

    if not is_archive(path):
        raise _refused(f"{path}: not a tar, tar.gz or zip archive (nor a directory)")


def archive_of(source: str | Path, work: Path, limits: BundleLimits) -> Archive:
    """``source`` as an archive to upload (blocking): a directory is packed into
    ``work/bundle.tar``, an archive is used as it is. ``InvalidInput`` (field ``bundle``)
    names the file at fault: a link out of the directory, a file over the limits, ..."""
    path = Path(source).expanduser()
    if path.is_dir():
        out = work / "bundle.tar"
        packed = _pack(path, out, limits)
        return Archive(path=out, size=out.stat().st_size, packed=packed)
    if not path.exists():
        raise _refused(f"{path}: no such file or directory")
    if not path.is_file():
        raise _refused(f"{path}: not a directory or a file")
    _check_archive(path)
    return Archive(path=path, size=path.stat().st_size)


@contextlib.asynccontextmanager
async def prepared(source: str | Path, limits: BundleLimits) -> AsyncIterator[Archive]:
    """``archive_of`` in a temporary directory, removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="edgeplane-bundle-"))
    try:
        yield await asyncio.to_thread(archive_of, source, work, limits)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


async def _chunks(path: Path, size: int, progress: UploadProgress | None) -> AsyncIterator[bytes]:
    sent = 0
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, UPLOAD_CHUNK):
            yield chunk
            sent += len(chunk)
            if progress is not None:
                progress(sent, size)


def is_bundle_id(value: str | Path) -> bool:
    """A string of 64 hex digits that is not also a path here."""
    return (
        isinstance(value, str) and BUNDLE_ID.match(value) is not None and not Path(value).exists()
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def site_archive(node_archive: Path, out: Path) -> int:
    """Write a tar of the site's files alone (no manifest, no precompressed variants) from a
    bundle's node archive: uploaded to any control plane, it builds the same node archive,
    so the same bundle id. The number of files."""
    from edgeplane.bundles.build import FILES, MANIFEST

    with tarfile.open(node_archive, "r:") as src, tarfile.open(out, "w:") as dst:
        first = src.next()
        if first is None or first.name != MANIFEST:
            raise _refused(f"{node_archive}: not a bundle's archive (no {MANIFEST} first)")
        manifest_file = src.extractfile(first)
        assert manifest_file is not None
        files = set(json.loads(manifest_file.read())["files"])
        written = 0
        for member in src:
            name = member.name.removeprefix(FILES)
            if not member.isfile() or name not in files or not member.name.startswith(FILES):
                continue  # a .gz / .br variant the control plane made
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = member.size, 0o644, 0
            dst.addfile(info, src.extractfile(member))
            written += 1
    return written


class EdgeDeploymentService(ProjectService):
    """Edge deployments of a project, embedded or against a control plane (``EDGEPLANE_URL``).

    Methods that take ``project_id`` act in that project; the others in ``project_id`` given
    here (default ``default``).
    """

    # Bundles ------------------------------------------------------------------------------

    async def upload_archive(
        self,
        archive: Archive,
        project_id: str | None = None,
        *,
        on_progress: UploadProgress | None = None,
    ) -> tuple[Bundle, bool]:
        """Upload a prepared archive: (the bundle, whether it is new to the project)."""
        doc = await self.client.request(
            "POST",
            f"{BASE}/bundles",
            params={"project": project_id or self.project_id},
            content=_chunks(archive.path, archive.size, on_progress),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(archive.size),
            },
            timeout=UPLOAD_TIMEOUT_S,
        )
        return Bundle.model_validate(doc["bundle"]), bool(doc["created"])

    async def upload_bundle(
        self,
        path: str | Path,
        project_id: str | None = None,
        *,
        on_progress: UploadProgress | None = None,
    ) -> Bundle:
        """Upload a directory (packed first) or a tar, tar.gz or zip archive. The same
        content uploaded again is the same bundle (its id is the archive's sha256)."""
        async with prepared(path, self.client.settings.bundle_limits) as archive:
            bundle, _ = await self.upload_archive(archive, project_id, on_progress=on_progress)
        return bundle

    async def get_bundle(self, bundle_id: str, *, project_id: str | None = None) -> Bundle:
        doc = await self._call("GET", f"{BASE}/bundles/{quote(bundle_id, safe='')}", project_id)
        return Bundle.model_validate(doc)

    async def list_bundles(self, *, project_id: str | None = None) -> list[Bundle]:
        doc = await self._call("GET", f"{BASE}/bundles", project_id)
        return TypeAdapter(list[Bundle]).validate_python(doc)

    async def download_bundle(
        self,
        bundle_id: str,
        path: str | Path,
        *,
        project_id: str | None = None,
        site: bool = False,
    ) -> Path:
        """Write the archive of a bundle the project uploaded to ``path`` (replaced whole,
        only once complete): the node archive as the control plane keeps it, whose sha256
        (checked here) is ``bundle_id``; with ``site``, a tar of the site's files alone
        (``site_archive``), which uploaded to any control plane is this same bundle."""
        target = Path(path).expanduser()
        part = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        archive = f"{BASE}/bundles/{quote(bundle_id, safe='')}/archive"
        try:
            with part.open("wb") as f:
                await self.client.download(
                    archive,
                    f,
                    params={"project": project_id or self.project_id},
                    timeout=UPLOAD_TIMEOUT_S,
                )
            digest = await asyncio.to_thread(_sha256, part)
            if digest != bundle_id:
                raise RemoteError(
                    f"the archive downloaded for bundle {bundle_id} has the sha256 {digest}: "
                    "it was damaged on the way; download it again",
                    status=502,
                    field="bundle",
                )
            if site:
                work = part.with_name(part.name + ".site")
                try:
                    await asyncio.to_thread(site_archive, part, work)
                    os.replace(work, target)
                finally:
                    work.unlink(missing_ok=True)
            else:
                os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        return target

    # Deploying ----------------------------------------------------------------------------

    async def deploy_to_edge(
        self,
        project_id: str | None,
        regions: Sequence[str] | None = None,
        strategy: DeploymentStrategy | str = DeploymentStrategy.ALL,
        *,
        bundle: str | Path | None = None,
        locations: Sequence[str | dict[str, Any]] | None = None,
        latency_target_ms: float | None = None,
        max_regions: int | None = None,
        spa: bool | None = None,
        origin_paths: Sequence[str] | None = None,
        check_path: str | None = None,
        wait: bool = False,
        timeout: float = 120,
        on_progress: DeployProgress | None = None,
    ) -> EdgeDeployment:
        """Deploy a new version to the edge.

        ``bundle``: a directory (packed and uploaded), an archive (uploaded as it is), the id
        of an uploaded bundle, or None for the project's current bundle. ``regions``: the
        candidates (default: every region with a live node), of which ``strategy`` keeps all,
        the closest to ``locations`` (country codes ``DE``, ``DE@3``, ``'lat,lon[@weight]'``;
        default: the project's traffic) or the fewest within ``latency_target_ms``.

        The version starts on one canary node; with ``wait`` this returns once it is active
        everywhere and raises ``DeploymentFailed`` when it failed or was cancelled
        (``DeploymentTimeout`` after ``timeout`` seconds), else at once.
        """
        project = project_id or self.project_id
        bundle_id: str | None = None
        if bundle is not None:
            if is_bundle_id(bundle):
                bundle_id = str(bundle)
            else:
                bundle_id = (await self.upload_bundle(bundle, project)).id
        body: dict[str, Any] = {"strategy": str(strategy)}
        optional: dict[str, Any] = {
            "bundle": bundle_id,
            "regions": None if regions is None else list(regions),
            "locations": None if locations is None else list(locations),
            "latency_target_ms": latency_target_ms,
            "max_regions": max_regions,
            "spa": spa,
            "origin_paths": None if origin_paths is None else list(origin_paths),
            "check_path": check_path,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        doc = await self._call("POST", f"{BASE}/deploy", project, body)
        deployment = Deployed.model_validate(doc).deployment
        if not wait:
            return deployment
        return await self.wait_for(
            deployment.id, timeout, project_id=project, on_progress=on_progress
        )

    async def wait_for(
        self,
        deployment_id: str,
        timeout: float = 120,
        *,
        project_id: str | None = None,
        interval: float = POLL_S,
        on_progress: DeployProgress | None = None,
    ) -> EdgeDeployment:
        """Poll a version until it is active (returned); ``DeploymentFailed`` when it failed
        or was cancelled, ``DeploymentTimeout`` when it is still rolling out at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            deployment = await self.get_deployment(deployment_id, project_id=project_id)
            if on_progress is not None:
                on_progress(deployment)
            if deployment.status == "active" or (
                deployment.status == "superseded" and deployment.activated_at is not None
            ):
                return deployment
            if deployment.status in ("failed", "cancelled", "superseded"):
                raise DeploymentFailed(deployment)
            if time.monotonic() >= deadline:
                raise DeploymentTimeout(deployment, timeout)
            await asyncio.sleep(max(0.0, min(interval, deadline - time.monotonic())))

    async def update_edge_config(
        self,
        deployment_id: str,
        config: ConfigUpdate | dict[str, Any],
        *,
        project_id: str | None = None,
    ) -> EdgeDeployment:
        """A new version of ``deployment_id`` with other serving options (spa, origin_paths,
        check_path) or regions; returns it (it rolls out like a deploy)."""
        path = f"{BASE}/deployments/{quote(deployment_id, safe='')}"
        doc = await self._call("PATCH", path, project_id, body_of(config))
        return Deployed.model_validate(doc).deployment

    async def activate(
        self, deployment_id: str, *, project_id: str | None = None
    ) -> EdgeDeployment:
        """Make an earlier version current again: a new version, on every node at once."""
        path = f"{BASE}/deployments/{quote(deployment_id, safe='')}/activate"
        doc = await self._call("POST", path, project_id)
        return Deployed.model_validate(doc).deployment

    async def rollback(self, *, project_id: str | None = None) -> EdgeDeployment:
        """Reactivate the version that was active before the current one."""
        doc = await self._call("POST", f"{BASE}/rollback", project_id)
        return Deployed.model_validate(doc).deployment

    # Reading ------------------------------------------------------------------------------

    async def get_deployment(
        self, deployment_id: str, *, project_id: str | None = None
    ) -> EdgeDeployment:
        """One version with its progress per region (live nodes, active, failed, pending)."""
        path = f"{BASE}/deployments/{quote(deployment_id, safe='')}"
        return EdgeDeployment.model_validate(await self._call("GET", path, project_id))

    async def list_deployments(
        self, *, limit: int = 100, project_id: str | None = None
    ) -> list[EdgeDeployment]:
        """The versions, newest first."""
        doc = await self._call("GET", f"{BASE}/deployments", project_id, limit=limit)
        return TypeAdapter(list[EdgeDeployment]).validate_python(doc)

    async def current_deployment(self, *, project_id: str | None = None) -> EdgeDeployment:
        """The version being rolled out, else the active one (``NotFound`` when none)."""
        doc = await self._call("GET", f"{BASE}/deployments/current", project_id)
        return EdgeDeployment.model_validate(doc)

    async def get_edge_locations(self, *, project_id: str | None = None) -> list[EdgeLocation]:
        """Every region with edge nodes: where it is, its nodes, status, load, revisions and
        the project's versions it serves."""
        doc = await self._call("GET", f"{BASE}/locations", project_id)
        return TypeAdapter(list[EdgeLocation]).validate_python(doc)

    async def get_edge_metrics(
        self,
        deployment_id: str,
        region: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        project_id: str | None = None,
    ) -> EdgeMetrics:
        """Requests, bytes, p50 / p95, errors and hit ratio per region while the version
        served (within [start, end) when given); only ``region`` when given."""
        path = f"{BASE}/deployments/{quote(deployment_id, safe='')}/metrics"
        doc = await self._call("GET", path, project_id, region=region, start=start, end=end)
        return EdgeMetrics.model_validate(doc)
